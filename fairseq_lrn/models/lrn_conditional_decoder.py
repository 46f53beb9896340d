"""The authors' decoder (``--decoder-style conditional``): zero's ``models/deepnmt.py`` decoder.

Layer 0 is zero's ``cond_rnn`` (:class:`~fairseq_lrn.modules.ConditionalLRN`): one state chain
through a lower and a higher LRN cell with the attention between them, serial over the target
steps in training. Then, as in ``deepnmt.py`` (the ``lrn`` repository's ``mt/deepnmt.py``, the
file the paper names)::

    layer 0:   y_0 = LN(e + dropout(W_0 h + b_0))    (e = target embeddings; LN(W_0 h + b_0) when
                                                      the sizes differ, as zero has no residual then)
    layer l>0: y_l = LN(y_{l-1} + dropout(W_l LRN_l([y_{l-1} ; c]) + b_l))    (an LRNBlock)
    output:    tanh(LN(W_o [y_L ; c]) + b_o) -> dropout -> softmax

(c: the contexts of layer 0; LN only with ``--layer-norm``, and the output LN only with
``--lrn-layer-norm-style whole``, zero's placement). Each layer has its own initial state,
projected from the encoder's final state (``--decoder-init-state``).

``--decoder-layers N`` counts layers as zero does: the conditional layer (two LRN cells) and N-1
blocks, the same N+1 LRNs as the parallel decoder with N.
"""

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from fairseq.models import FairseqIncrementalDecoder
from torch import Tensor, nn

from ..modules import Attention, ConditionalLRN, InitialStates, LRNBlock, ZeroAdditiveAttention
from .lrn_decoder import CACHE_KEY, LRNDecoder
from .lrn_encoder import EncoderOut


class LRNConditionalDecoder(LRNDecoder):
    """Returns ``(logits (B, T, V), attention (B, T, S))``; see the module docstring.

    Shares :class:`LRNDecoder`'s output layer and beam reordering (not its layers: its
    ``__init__`` is not called). The incremental cache holds ``states (L, B, H)`` (the
    conditional layer's carried state, then one per block) and ``keys``.
    """

    def __init__(self, dictionary, embed_tokens: nn.Embedding, *,
                 hidden_size: int, out_embed_dim: int, num_layers: int,
                 encoder_output_size: int, encoder_state_size: int,
                 attention_type: str, attention_dim: int, attention_heads: int,
                 dropout_in: float, dropout_out: float,
                 activation: str, layer_norm: bool, impl: str, output_gate: bool = False,
                 layer_norm_style: str = "per_gate", init_state: str = "tanh_linear",
                 share_input_output_embed: bool, max_target_positions: int):
        """Keyword arguments as :class:`LRNDecoder`'s (no input feeding: the conditional layer
        feeds its state, which holds the context, to the next step), plus ``layer_norm_style``
        and ``init_state`` (see :class:`~fairseq_lrn.modules.InitialStates`). ``attention_type``
        additive is zero's (:class:`~fairseq_lrn.modules.ZeroAdditiveAttention`)."""
        FairseqIncrementalDecoder.__init__(self, dictionary)
        embed_dim = embed_tokens.embedding_dim
        K, H = encoder_output_size, hidden_size
        self.embed_tokens = embed_tokens
        self.padding_idx = embed_tokens.padding_idx
        self.dropout_in, self.dropout_out = dropout_in, dropout_out
        self.input_feeding = False
        self.hidden_size, self.context_size = H, K
        self.max_target_positions = max_target_positions
        zero_norm = layer_norm and layer_norm_style == "whole"
        if attention_type == "additive":
            attention = ZeroAdditiveAttention(H, K, attention_dim, attention_heads, layer_norm=zero_norm)
        else:
            attention = Attention(H, K, attention_dim, attention_type, attention_heads)
        cell = dict(activation=activation, layer_norm=layer_norm, layer_norm_style=layer_norm_style,
                    output_gate=output_gate)
        self.conditional = ConditionalLRN(embed_dim, H, attention, K, **cell)
        self.layer0_proj = nn.Linear(H, H)
        self.layer0_residual = embed_dim == H
        self.layer0_norm = nn.LayerNorm(H) if layer_norm else None
        self.blocks = nn.ModuleList(LRNBlock(H + K, H, H, dropout=dropout_out, impl=impl, **cell)
                                    for _ in range(num_layers - 1))
        self.init_state = InitialStates(encoder_state_size, H, num_layers, init_state, layer_norm)
        self.out_proj = nn.Linear(H + K, out_embed_dim, bias=not zero_norm)
        self.out_norm = nn.LayerNorm(out_embed_dim) if zero_norm else None
        nn.init.xavier_uniform_(self.layer0_proj.weight)
        nn.init.zeros_(self.layer0_proj.bias)
        if share_input_output_embed:
            self.output_projection = None
        else:
            self.output_projection = nn.Linear(out_embed_dim, len(dictionary), bias=False)
            nn.init.normal_(self.output_projection.weight, 0, out_embed_dim ** -0.5)

    def extract_features(self, prev_output_tokens: Tensor, encoder_out: EncoderOut,
                         incremental_state=None) -> Tuple[Tensor, Tensor]:
        """Returns features ``(B, T, out_embed_dim)`` and attention ``(B, T, S)``."""
        single_step = incremental_state is not None  # one new token: one step of every layer
        if single_step:
            prev_output_tokens = prev_output_tokens[:, -1:]
        x = F.dropout(self.embed_tokens(prev_output_tokens.t()), self.dropout_in, self.training)  # (T, B, E)
        cache = self.get_incremental_state(incremental_state, CACHE_KEY) if single_step else None
        if cache is None:
            final_state = encoder_out["final_state"]
            cache = {"states": self.init_state(final_state),
                     "keys": self.conditional.attention.project_keys(encoder_out["encoder_out"])}
        memory = (cache["keys"], encoder_out["encoder_out"], encoder_out["padding_mask"])
        states = cache["states"]
        if single_step:
            h, context, attn = self.conditional.step(x[0], states[0], *memory)
            out, block_states = self.step_above(x[0], h, context, states[1:])
            self.set_incremental_state(incremental_state, CACHE_KEY, {
                "states": torch.stack([h, *block_states], 0), "keys": cache["keys"], "context": None})
            return out.unsqueeze(1), attn.unsqueeze(1)
        padding_mask = prev_output_tokens.t().eq(self.padding_idx)
        padding_mask = padding_mask if padding_mask.any() else None
        h, contexts, attn, _ = self.conditional(x, states[0], *memory, padding_mask=padding_mask)
        y = self.layer0_output(x, h)
        for k, block in enumerate(self.blocks, start=1):
            y, _ = block(torch.cat([y, contexts], -1), residual=y, h0=states[k], padding_mask=padding_mask)
        return self.output_features(y, contexts).transpose(0, 1), attn

    def step_above(self, x: Tensor, h: Tensor, context: Tensor, states: Tensor) -> Tuple[Tensor, list]:
        """One target step of everything above the conditional layer, for incremental decoding:
        the step's embedded input ``x (B, E)``, the conditional layer's new state ``h (B, H)`` and
        context ``(B, K)``, and the blocks' previous states (indexable: ``states[k] (B, H)`` for
        block k) -> the output features ``(B, out_embed_dim)`` and the blocks' new states (a list
        of ``(B, H)``)."""
        y = self.layer0_output(x, h)
        block_states = []
        for k, block in enumerate(self.blocks):
            y, last = block.step(torch.cat([y, context], -1), residual=y, h_prev=states[k].to(y.dtype))
            block_states.append(last)
        return self.output_features(y, context), block_states

    def layer0_output(self, x: Tensor, h: Tensor) -> Tensor:
        """Layer 0's output ``y_0 (..., H)`` from the embedded inputs ``x (..., E)`` and the
        conditional layer's states ``h (..., H)`` (see the module docstring)."""
        y = self.dropout_out_layer0(self.layer0_proj(h))
        if self.layer0_residual:
            y = x + y
        return y if self.layer0_norm is None else self.layer0_norm(y)

    def output_features(self, y: Tensor, contexts: Tensor) -> Tensor:
        """``tanh(LN(W_o [y ; c]) + b_o)`` (dropout in training): ``(..., out_embed_dim)``."""
        out = self.out_proj(torch.cat([y, contexts], -1))
        if self.out_norm is not None:
            out = self.out_norm(out)
        return F.dropout(torch.tanh(out), self.dropout_out, self.training)

    def dropout_out_layer0(self, y: Tensor) -> Tensor:
        """zero drops out a layer's output only where it is added to a residual."""
        return F.dropout(y, self.dropout_out, self.training) if self.layer0_residual else y
