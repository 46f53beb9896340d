"""The runners of ``--arch lrn`` models (LRN encoder, LRN decoder with attention): the parallel
decoder (:class:`LRNRunner`) and the authors' conditional decoder (:class:`LRNConditionalRunner`,
``--decoder-style conditional``).

Each computes its decoder's ``extract_features`` for one new token (the ``single_step`` path) with
the decoder's own modules. The one change is where the beams meet the attention: the ``beam``
queries of a sentence go to the attention module as that sentence's ``beam`` target positions, so
the keys and encoder states are used once per sentence instead of once per beam.
"""

import math
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from ..modules.attention import Attention
from .fused_ops import attention_keys, beam_attention, lrn_layer_step
from .model_runner import ModelRunner, State, linear_sharing


class LRNMemory(NamedTuple):
    """Per sentence: ``values (S, B, K)`` (the encoder states), ``keys (B, heads, S, a)``,
    ``padding_mask (B, S)`` or None, ``final_state (B, D)``; with the fused attention
    (:meth:`LRNRunner.fused_attention`) the keys transposed (``fused_ops.attention_keys``) and
    ``head_values (B, heads, S, K / heads)``, the encoder states split per head (else None)."""

    values: Tensor
    keys: Tensor
    padding_mask: Optional[Tensor]
    final_state: Tensor
    head_values: Optional[Tensor] = None


class LRNRunner(ModelRunner):
    """Per-row state: ``states (N, L + 1, H)`` (the lower cell, then each block) and, with input
    feeding, ``context (N, K)``."""

    def __init__(self, model):
        decoder = model.decoder
        super().__init__(model, None if decoder.output_projection is not None
                         else linear_sharing(decoder.embed_tokens.weight))

    @property
    def attention(self):
        """The decoder's attention module (not registered again here: int8 mode must see it once)."""
        return self.model.decoder.attention

    @property
    def fused_attention(self) -> bool:
        """Whether the steps attend with ``fused_ops.beam_attention`` (:attr:`fused_ops`, and a
        general or dot attention: ``softmax(q k^T / sqrt(d)) v`` per head)."""
        return self.fused_ops and isinstance(self.attention, Attention) and self.attention.kind in ("general", "dot")

    def encode(self, src_tokens: Tensor, src_lengths: Tensor) -> LRNMemory:
        out = self.model.encoder(src_tokens, src_lengths)
        keys = self.attention.project_keys(out["encoder_out"])
        padding_mask = self.padding_mask_for_step(out["padding_mask"], src_tokens)
        if not self.fused_attention:
            return LRNMemory(out["encoder_out"], keys, padding_mask, out["final_state"])
        S, B, K = out["encoder_out"].shape
        heads = self.attention.heads
        head_values = out["encoder_out"].view(S, B, heads, K // heads).permute(1, 2, 0, 3).contiguous()
        return LRNMemory(out["encoder_out"], attention_keys(keys, True), padding_mask, out["final_state"], head_values)

    def start(self, memory: LRNMemory, beam: int) -> State:
        decoder = self.model.decoder
        B = memory.final_state.size(0)
        states = torch.tanh(decoder.init_state(memory.final_state)).view(B, -1, decoder.hidden_size)
        states = states.repeat_interleave(beam, dim=0)  # (N, L + 1, H)
        context = states.new_zeros(states.size(0), decoder.context_size) if decoder.input_feeding else None
        return states, context

    def select_sentences(self, memory: LRNMemory, keep: Tensor) -> LRNMemory:
        mask = None if memory.padding_mask is None else memory.padding_mask.index_select(0, keep)
        head_values = None if memory.head_values is None else memory.head_values.index_select(0, keep)
        return LRNMemory(memory.values.index_select(1, keep), memory.keys.index_select(0, keep), mask,
                         memory.final_state.index_select(0, keep), head_values)

    def attend(self, query: Tensor, memory: LRNMemory) -> Tensor:
        """query ``(N, H)`` -> context ``(N, K)``: the rows of sentence b (its beams, ``N / B`` of
        them) are its query positions."""
        N, H = query.shape
        B = memory.keys.size(0)
        if memory.head_values is not None:  # fused_attention
            attention = self.attention
            q = query if attention.query_proj is None else attention.query_proj(query)
            return beam_attention(q, memory.keys, memory.head_values, memory.padding_mask,
                                  1 / math.sqrt(attention.head_dim), fused=True)
        context, _ = self.attention(query.view(B, -1, H).transpose(0, 1), memory.keys,
                                    memory.values, memory.padding_mask)  # (N / B, B, K)
        return context.transpose(0, 1).reshape(N, -1)

    def block_step(self, block, x: Tensor, residual: Tensor, h_prev: Tensor) -> Tuple[Tensor, Tensor]:
        """``block.step(x, residual, h_prev)`` of an :class:`~fairseq_lrn.modules.lrn.LRNBlock`,
        its cell fused where :attr:`fused_ops` (:func:`~fairseq_lrn.translate.fused_ops.lrn_layer_step`)."""
        h = lrn_layer_step(block.lrn, x, h_prev, self.fused_ops)
        return block._output(h, residual), h

    def step_features(self, tokens: Tensor, state: State, memory: LRNMemory) -> Tuple[Tensor, State]:
        decoder = self.model.decoder
        states, context = state
        x = decoder.embed_tokens(tokens[:, -1])  # (N, E); dropout is off in eval mode
        if decoder.input_feeding:
            x = torch.cat([x, context], -1)
        s = lrn_layer_step(decoder.lower, x, states[:, 0], self.fused_ops)
        context = self.attend(s, memory)
        y, h = self.block_step(decoder.blocks[0], context, residual=s, h_prev=states[:, 1])
        new_states = [s, h]
        for k, block in enumerate(decoder.blocks[1:], start=2):
            y, h = self.block_step(block, torch.cat([y, context], -1), residual=y, h_prev=states[:, k])
            new_states.append(h)
        features = torch.tanh(decoder.out_proj(torch.cat([y, context], -1)))
        return features, (torch.stack(new_states, 1), context if decoder.input_feeding else None)


class LRNConditionalRunner(LRNRunner):
    """The runner of the authors' decoder (:class:`~fairseq_lrn.models.lrn_conditional_decoder.
    LRNConditionalDecoder`). Per-row state: ``states (N, L, H)``: the conditional layer's carried
    state, then one per block (no input feeding: the carried state holds the context)."""

    @property
    def attention(self):
        return self.model.decoder.conditional.attention

    def start(self, memory: LRNMemory, beam: int) -> State:
        states = self.model.decoder.init_state(memory.final_state).transpose(0, 1)  # (B, L, H)
        return (states.repeat_interleave(beam, dim=0),)

    def step_features(self, tokens: Tensor, state: State, memory: LRNMemory) -> Tuple[Tensor, State]:
        decoder = self.model.decoder
        (states,) = state
        x = decoder.embed_tokens(tokens[:, -1])  # (N, E); dropout is off in eval mode
        h, context = decoder.conditional.step_with(x, states[:, 0], lambda s: self.attend(s, memory))
        features, block_states = decoder.step_above(x, h, context, states[:, 1:].unbind(1))
        return features, (torch.stack([h, *block_states], 1),)
