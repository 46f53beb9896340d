"""LRN decoder with attention, incremental (one token at a time) for beam search.

Layer 0 is "conditional": a lower LRN reads the target embeddings, its states attend over
the encoder, and a higher LRN (an :class:`LRNBlock`, residual = lower states) reads the
contexts. Upper layers read ``[y ; context]``. Output: ``tanh(W [y ; context])`` -> dropout
-> softmax over the vocabulary (optionally tied to the target embeddings).

Without input feeding (the default) every projection and the attention run over all target
positions at once; only the elementwise recurrences are serial. With input feeding the
lower LRN also reads the previous step's context, which makes training loop over time.

Target padding (``--left-pad-target True``) is masked as in the encoder: a padded step carries
every LRN's state (and, with input feeding, the context) unchanged, so a left-padded target
trains exactly as beam search decodes it. Right padding (fairseq's default) comes after every
real step and cannot change a real output, so it is not masked (the faster path).
"""

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from fairseq.models import FairseqIncrementalDecoder
from torch import Tensor, nn

from ..modules import Attention, LRNBlock, LRNLayer
from .lrn_encoder import EncoderOut

CACHE_KEY = "lrn_cache"


def _run_block(block: LRNBlock, x: Tensor, residual: Tensor, h0: Tensor,
               single_step: bool, padding_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """``block`` over x ``(T, B, in)`` with ``residual (T, B, H)`` from h0 ``(B, H)``: its
    recurrence (padded steps of ``padding_mask (T, B)`` carry the state), or with
    ``single_step`` (T == 1) one cell step. Returns ``y (T, B, H)`` and the last state ``(B, H)``."""
    if not single_step:
        return block(x, residual=residual, h0=h0, padding_mask=padding_mask)
    y, h = block.step(x[0], residual=residual[0], h_prev=h0)
    return y.unsqueeze(0), h


class LRNDecoder(FairseqIncrementalDecoder):
    """Returns ``(logits (B, T, V), attention (B, T, S))``; see the module docstring.

    With ``output_gate`` every LRN (the lower cell and each block's) is an oLRN.
    The incremental cache holds ``states (L+1, B, H)`` (lower cell, then one per block),
    ``keys`` (the projected encoder states) and, with input feeding, ``context (B, K)``.
    """

    def __init__(self, dictionary, embed_tokens: nn.Embedding, *,
                 hidden_size: int, out_embed_dim: int, num_layers: int,
                 encoder_output_size: int, encoder_state_size: int,
                 attention_type: str, attention_dim: int, attention_heads: int, input_feeding: bool,
                 dropout_in: float, dropout_out: float,
                 activation: str, layer_norm: bool, impl: str, output_gate: bool = False,
                 layer_norm_style: str = "per_gate",
                 share_input_output_embed: bool, max_target_positions: int):
        """Everything after the target ``dictionary`` and ``embed_tokens`` is keyword-only:

        * sizes: ``hidden_size`` H of every LRN, ``out_embed_dim`` of the features before the
          softmax, ``num_layers`` blocks above the lower cell;
        * the encoder it reads: ``encoder_output_size`` K (its outputs, attended over) and
          ``encoder_state_size`` (its final state, projected to the initial states);
        * attention: ``attention_type`` (see :data:`~fairseq_lrn.modules.ATTENTION_TYPES`),
          ``attention_dim``, ``attention_heads``; ``input_feeding`` (the lower LRN also reads
          the previous step's context);
        * dropout: ``dropout_in`` on the embeddings, ``dropout_out`` after each block and
          before the softmax;
        * the cell: ``activation``, ``layer_norm``, ``impl`` (the recurrence implementation),
          ``output_gate`` (oLRN), ``layer_norm_style`` (see :class:`~fairseq_lrn.modules.LRNLayer`);
        * output: ``share_input_output_embed`` (tie the softmax to ``embed_tokens``),
          ``max_target_positions``.
        """
        super().__init__(dictionary)
        embed_dim = embed_tokens.embedding_dim
        K, H = encoder_output_size, hidden_size
        self.embed_tokens = embed_tokens
        self.padding_idx = dictionary.pad()
        self.dropout_in, self.dropout_out = dropout_in, dropout_out
        self.input_feeding = input_feeding
        self.hidden_size, self.context_size = H, K
        self.max_target_positions = max_target_positions

        self.lower = LRNLayer(embed_dim + (K if input_feeding else 0), H, activation=activation,
                              layer_norm=layer_norm, impl=impl, output_gate=output_gate,
                              layer_norm_style=layer_norm_style)
        self.attention = Attention(H, K, attention_dim, attention_type, attention_heads)
        self.blocks = nn.ModuleList(
            LRNBlock(K if k == 0 else H + K, H, H, dropout=dropout_out, activation=activation,
                     layer_norm=layer_norm, impl=impl, output_gate=output_gate,
                     layer_norm_style=layer_norm_style)
            for k in range(num_layers))
        self.init_state = nn.Linear(encoder_state_size, (num_layers + 1) * H)
        self.out_proj = nn.Linear(H + K, out_embed_dim)
        if share_input_output_embed:
            self.output_projection = None
        else:
            self.output_projection = nn.Linear(out_embed_dim, len(dictionary), bias=False)
            nn.init.normal_(self.output_projection.weight, 0, out_embed_dim ** -0.5)

    def forward(self, prev_output_tokens: Tensor, encoder_out: Optional[EncoderOut] = None,
                incremental_state: Optional[Dict[str, Dict[str, Optional[Tensor]]]] = None,
                features_only: bool = False, **unused) -> Tuple[Tensor, Tensor]:
        """prev_output_tokens ``(B, T)`` (only the last column is read when incremental)."""
        x, attn = self.extract_features(prev_output_tokens, encoder_out, incremental_state)
        return (x if features_only else self.output_layer(x)), attn

    def extract_features(self, prev_output_tokens: Tensor, encoder_out: EncoderOut,
                         incremental_state=None) -> Tuple[Tensor, Tensor]:
        """Returns features ``(B, T, out_embed_dim)`` and attention ``(B, T, S)``."""
        if incremental_state is not None:
            prev_output_tokens = prev_output_tokens[:, -1:]
        x = F.dropout(self.embed_tokens(prev_output_tokens.t()), self.dropout_in, self.training)  # (T, B, E)

        cache = None if incremental_state is None else self.get_incremental_state(incremental_state, CACHE_KEY)
        if cache is None:
            cache = self._initial_cache(encoder_out)
        memory = (cache["keys"], encoder_out["encoder_out"], encoder_out["padding_mask"])
        single_step = incremental_state is not None  # one new token: each LRN runs one cell step
        pad = None if single_step else self._masked_padding(prev_output_tokens)
        if self.input_feeding:
            outs, attns, states, context = [], [], cache["states"], cache["context"]
            for t in range(x.size(0)):
                step_in = torch.cat([x[t:t + 1], context.unsqueeze(0)], -1)
                step_pad = None if pad is None else pad[t:t + 1]
                out, attn, states, ctx = self._layers(step_in, states, *memory, single_step=single_step,
                                                      padding_mask=step_pad)
                outs.append(out)
                attns.append(attn)
                context = ctx[-1] if pad is None else torch.where(pad[t].unsqueeze(-1), context, ctx[-1])
            out, attn = torch.cat(outs, 0), torch.cat(attns, 1)
        else:
            out, attn, states, _ = self._layers(x, cache["states"], *memory, single_step=single_step,
                                                padding_mask=pad)
            context = None
        if incremental_state is not None:
            self.set_incremental_state(incremental_state, CACHE_KEY,
                                       {"states": states, "keys": cache["keys"], "context": context})
        return out.transpose(0, 1), attn

    def _masked_padding(self, tokens: Tensor) -> Optional[Tensor]:
        """The padding of tokens ``(B, T)`` as a ``(T, B)`` mask when a pad comes before a real
        token (left padding); None when there is none or all of it is right padding."""
        pad = tokens.eq(self.padding_idx)
        return pad.t() if (pad[:, :-1] & ~pad[:, 1:]).any() else None

    def _initial_cache(self, encoder_out: EncoderOut) -> Dict[str, Optional[Tensor]]:
        """Decoder states from the encoder's final state, projected keys, zero context."""
        final_state = encoder_out["final_state"]
        B = final_state.size(0)
        states = torch.tanh(self.init_state(final_state)).view(B, -1, self.hidden_size).transpose(0, 1)
        context = final_state.new_zeros(B, self.context_size) if self.input_feeding else None
        return {"states": states, "keys": self.attention.project_keys(encoder_out["encoder_out"]),
                "context": context}

    def _layers(self, x: Tensor, states: Tensor, keys: Tensor, encoder_states: Tensor,
                encoder_padding_mask: Optional[Tensor], *, single_step: bool = False,
                padding_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Run every layer over x ``(T, B, E')`` from ``states (L+1, B, H)``; with
        ``single_step`` (incremental decoding, T == 1) every LRN runs one cell step instead of
        its recurrence. ``padding_mask (T, B)``: target steps whose states are carried.
        Returns output features ``(T, B, out_embed_dim)``, attention ``(B, T, S)``, the new
        states ``(L+1, B, H)`` and the contexts ``(T, B, K)``."""
        if single_step:
            lower_last = self.lower.step(x[0], states[0])
            s = lower_last.unsqueeze(0)
        else:
            s, lower_last = self.lower(x, states[0], padding_mask)
        context, attn = self.attention(s, keys, encoder_states, encoder_padding_mask)
        y, last = _run_block(self.blocks[0], context, s, states[1], single_step, padding_mask)
        new_states = [lower_last, last]
        for k, block in enumerate(self.blocks[1:], start=2):
            y, last = _run_block(block, torch.cat([y, context], -1), y, states[k], single_step, padding_mask)
            new_states.append(last)
        out = torch.tanh(self.out_proj(torch.cat([y, context], -1)))
        out = F.dropout(out, self.dropout_out, self.training)
        return out, attn, torch.stack(new_states, 0), context

    def output_layer(self, features: Tensor) -> Tensor:
        """features ``(B, T, out_embed_dim)`` -> logits ``(B, T, V)``."""
        if self.output_projection is None:
            return F.linear(features, self.embed_tokens.weight)
        return self.output_projection(features)

    def reorder_incremental_state(self, incremental_state, new_order: Tensor) -> None:
        """Select batch entries ``new_order`` of the cache (beam search)."""
        cache = self.get_incremental_state(incremental_state, CACHE_KEY)
        if cache is None:
            return
        batch_dim = {"states": 1, "keys": 0, "context": 0}
        self.set_incremental_state(incremental_state, CACHE_KEY, {
            key: None if value is None else value.index_select(batch_dim[key], new_order)
            for key, value in cache.items()})

    def max_positions(self) -> int:
        return self.max_target_positions
