"""The runner of ``--arch transformer_lrn`` models (fairseq's Transformer encoder, LRN decoder layers).

It computes fairseq's ``TransformerDecoderBase.extract_features`` with incremental state (one new
token) through the decoder's own modules and :class:`~fairseq_lrn.modules.TransformerLRNDecoderLayer`'s
sub-layer composition. The encoder attention (fairseq's ``MultiheadAttention`` with static keys and
values) is done here with the module's weights and fairseq's arithmetic (``q_proj(x) * scaling``,
``q @ k^T``, padding masked to -inf, softmax in float32, ``@ v``, ``out_proj``), but with the keys
and values projected once per sentence and each sentence's ``beam`` queries as one batch of
queries against them (fairseq copies them per beam and reorders them every step).
"""

from typing import List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from ..errors import CheckpointError
from .fused_ops import (FusedTransformerLRNLayers, attention_keys, beam_attention, fused_transformer_lrn_layers,
                        lrn_layer_step, transformer_lrn_layers)
from .model_runner import ModelRunner, State


class TransformerLRNMemory(NamedTuple):
    """Per sentence and decoder layer: ``keys[i]``, ``values[i]`` ``(B, heads, S, head_dim)`` (the
    keys ``(B, heads, head_dim, S)`` with the runner's ``fused_ops``: ``fused_ops.attention_keys``);
    ``padding_mask (B, S)`` bool or None."""

    keys: List[Tensor]
    values: List[Tensor]
    padding_mask: Optional[Tensor]


def shared_encoder_attention(attention, query: Tensor, keys: Tensor, values: Tensor,
                             padding_mask: Optional[Tensor], fused: bool = False) -> Tensor:
    """fairseq ``MultiheadAttention`` (encoder-decoder, static k/v) for one step: query ``(N, C)``
    with ``N = B * beam`` rows (``beam`` per sentence), keys and values ``(B, heads, S, d)`` of the
    B sentences -> ``(N, C)`` after ``out_proj``; ``fused``: the attention between the
    projections compiled (:func:`~fairseq_lrn.translate.fused_ops.beam_attention`)."""
    context = beam_attention(attention.q_proj(query), keys, values, padding_mask, attention.scaling, fused)
    return attention.out_proj(context)


class TransformerLRNRunner(ModelRunner):
    """Per-row state: the LRN state of every decoder layer, ``(N, L, C)``."""

    def __init__(self, model):
        decoder = model.decoder
        if decoder.adaptive_softmax is not None:
            raise CheckpointError("fairseq-lrn-translate does not run models with an adaptive softmax "
                                  "(--adaptive-softmax-cutoff); use fairseq-generate")
        for layer in decoder.layers:
            mha = layer.encoder_attn
            if mha is None or mha.bias_k is not None or mha.add_zero_attn:
                raise CheckpointError("fairseq-lrn-translate needs a plain encoder attention in every "
                                      "decoder layer (no bias_kv / zero_attn); use fairseq-generate")
        super().__init__(model)
        # the layers' arguments of the compiled whole-layers step, found at the first fused step
        # (False: the layers are not of the form it computes)
        self._fused_layers = None

    def fused_layers(self) -> Optional[FusedTransformerLRNLayers]:
        """With :attr:`fused_ops`, what runs the decoder layers as one compiled call
        (:func:`~fairseq_lrn.translate.fused_ops.transformer_lrn_layers`), or None where the layers
        are not of the form it computes (they then run operation by operation)."""
        if not self.fused_ops:
            return None
        if self._fused_layers is None:
            self._fused_layers = fused_transformer_lrn_layers(self.model.decoder.layers) or False
        return self._fused_layers or None

    def encode(self, src_tokens: Tensor, src_lengths: Tensor) -> TransformerLRNMemory:
        out = self.model.encoder.forward_torchscript({"src_tokens": src_tokens, "src_lengths": src_lengths})
        enc = out["encoder_out"][0]  # (S, B, C)
        padding_mask = out["encoder_padding_mask"][0] if len(out["encoder_padding_mask"]) > 0 else None
        padding_mask = self.padding_mask_for_step(padding_mask, src_tokens)
        S, B, _ = enc.shape
        keys, values = [], []
        for layer in self.model.decoder.layers:
            mha = layer.encoder_attn
            for proj, into in ((mha.k_proj, keys), (mha.v_proj, values)):
                into.append(proj(enc).view(S, B, mha.num_heads, mha.head_dim).permute(1, 2, 0, 3).contiguous())
        keys = [attention_keys(k, self.fused_ops) for k in keys]
        return TransformerLRNMemory(keys, values, padding_mask)

    def start(self, memory: TransformerLRNMemory, beam: int) -> State:
        decoder = self.model.decoder
        N = memory.keys[0].size(0) * beam
        return (memory.keys[0].new_zeros(N, len(decoder.layers), decoder.layers[0].embed_dim),)

    def select_sentences(self, memory: TransformerLRNMemory, keep: Tensor) -> TransformerLRNMemory:
        mask = None if memory.padding_mask is None else memory.padding_mask.index_select(0, keep)
        return TransformerLRNMemory([k.index_select(0, keep) for k in memory.keys],
                                    [v.index_select(0, keep) for v in memory.values], mask)

    @property
    def traceable(self) -> bool:
        """Learned or sinusoidal target positions read the step number from ``tokens``' length,
        which a trace would freeze: such decoders run eagerly."""
        return self.model.decoder.embed_positions is None

    def step_features(self, tokens: Tensor, state: State, memory: TransformerLRNMemory) -> Tuple[Tensor, State]:
        decoder = self.model.decoder
        (h_prev,) = state
        x = decoder.embed_scale * decoder.embed_tokens(tokens[:, -1])  # (N, C)
        if decoder.quant_noise is not None:
            x = decoder.quant_noise(x)
        if decoder.project_in_dim is not None:
            x = decoder.project_in_dim(x)
        if decoder.embed_positions is not None:  # the position of the last token, as fairseq's incremental call
            x = x + decoder.embed_positions(tokens, incremental_state={}).reshape(-1, x.size(-1))
        if decoder.layernorm_embedding is not None:
            x = decoder.layernorm_embedding(x)
        fused = self.fused_layers()
        if fused is not None:
            x, h = transformer_lrn_layers(fused, x, h_prev, memory.keys, memory.values, memory.padding_mask)
            return self._output_features(x), (h,)
        new_states = []
        for i, layer in enumerate(decoder.layers):
            x, h = layer._sublayer(x, layer.lrn_layer_norm, lambda inp: (
                lrn_layer_step(layer.lrn, inp, h_prev[:, i], self.fused_ops),) * 2)
            new_states.append(h)
            x, _ = layer._sublayer(x, layer.encoder_attn_layer_norm, lambda q: (shared_encoder_attention(
                layer.encoder_attn, q, memory.keys[i], memory.values[i], memory.padding_mask, self.fused_ops), None))
            x, _ = layer._sublayer(x, layer.final_layer_norm,
                                   lambda inp: (layer.fc2(layer.activation_fn(layer.fc1(inp))), None))
        return self._output_features(x), (torch.stack(new_states, 1),)

    def _output_features(self, x: Tensor) -> Tensor:
        """The decoder's last layer norm and output dimension projection, where it has them."""
        decoder = self.model.decoder
        if decoder.layer_norm is not None:
            x = decoder.layer_norm(x)
        if decoder.project_out_dim is not None:
            x = decoder.project_out_dim(x)
        return x
