"""The runners of ``--arch lrn`` models (LRN encoder, LRN decoder with attention): the parallel
decoder (:class:`LRNRunner`) and the authors' conditional decoder (:class:`LRNConditionalRunner`,
``--decoder-style conditional``).

Each computes its decoder's ``extract_features`` for one new token (the ``single_step`` path) with
the decoder's own modules. The one change is where the beams meet the attention: the ``beam``
queries of a sentence go to the attention module as that sentence's ``beam`` target positions, so
the keys and encoder states are used once per sentence instead of once per beam.
"""

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .model_runner import ModelRunner, State, linear_sharing


class LRNMemory(NamedTuple):
    """Per sentence: ``values (S, B, K)`` (the encoder states), ``keys (B, heads, S, a)``,
    ``padding_mask (B, S)`` or None, ``final_state (B, D)``."""

    values: Tensor
    keys: Tensor
    padding_mask: Optional[Tensor]
    final_state: Tensor


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

    def encode(self, src_tokens: Tensor, src_lengths: Tensor) -> LRNMemory:
        out = self.model.encoder(src_tokens, src_lengths)
        keys = self.attention.project_keys(out["encoder_out"])
        padding_mask = self.padding_mask_for_step(out["padding_mask"], src_tokens)
        return LRNMemory(out["encoder_out"], keys, padding_mask, out["final_state"])

    def start(self, memory: LRNMemory, beam: int) -> State:
        decoder = self.model.decoder
        B = memory.final_state.size(0)
        states = torch.tanh(decoder.init_state(memory.final_state)).view(B, -1, decoder.hidden_size)
        states = states.repeat_interleave(beam, dim=0)  # (N, L + 1, H)
        context = states.new_zeros(states.size(0), decoder.context_size) if decoder.input_feeding else None
        return states, context

    def select_sentences(self, memory: LRNMemory, keep: Tensor) -> LRNMemory:
        mask = None if memory.padding_mask is None else memory.padding_mask.index_select(0, keep)
        return LRNMemory(memory.values.index_select(1, keep), memory.keys.index_select(0, keep), mask,
                         memory.final_state.index_select(0, keep))

    def attend(self, query: Tensor, memory: LRNMemory) -> Tensor:
        """query ``(N, H)`` -> context ``(N, K)``: the rows of sentence b (its beams, ``N / B`` of
        them) are its query positions."""
        N, H = query.shape
        B = memory.keys.size(0)
        context, _ = self.attention(query.view(B, -1, H).transpose(0, 1), memory.keys,
                                    memory.values, memory.padding_mask)  # (N / B, B, K)
        return context.transpose(0, 1).reshape(N, -1)

    def step_features(self, tokens: Tensor, state: State, memory: LRNMemory) -> Tuple[Tensor, State]:
        decoder = self.model.decoder
        states, context = state
        x = decoder.embed_tokens(tokens[:, -1])  # (N, E); dropout is off in eval mode
        if decoder.input_feeding:
            x = torch.cat([x, context], -1)
        s = decoder.lower.step(x, states[:, 0])
        context = self.attend(s, memory)
        y, h = decoder.blocks[0].step(context, residual=s, h_prev=states[:, 1])
        new_states = [s, h]
        for k, block in enumerate(decoder.blocks[1:], start=2):
            y, h = block.step(torch.cat([y, context], -1), residual=y, h_prev=states[:, k])
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
