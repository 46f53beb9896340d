"""A Transformer decoder layer with an LRN in place of masked self-attention.

Layout (as fairseq's ``TransformerDecoderLayer``, each sub-block followed by dropout and a
residual, layer norm after it, or before it with ``normalize_before``)::

    x -> LRN over the target positions -> encoder attention -> feed-forward

The LRN needs no mask and no cache that grows with the output: its state is one vector per
sentence. Training runs the projection of every position at once; only the elementwise
recurrence is serial (``fairseq_lrn.ops``). The encoder attention is any module with
fairseq's ``MultiheadAttention`` call signature (passed in, so this module needs only torch).
"""

from typing import Callable, Dict, Optional, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from .lrn import LRNLayer

IncrementalState = Dict[str, Dict[str, Optional[Tensor]]]


class TransformerLRNDecoderLayer(nn.Module):
    """LRN -> encoder attention -> FFN, with residuals, dropout and layer norms.

    forward: x ``(T, B, C)``, encoder_out ``(S, B, C_enc)``, encoder_padding_mask ``(B, S)``,
    h0 ``(B, C)`` -> ``y (T, B, C)``, the encoder attention's weights (``(B, T, S)`` averaged over
    heads, ``(heads, B, T, S)`` with ``need_head_weights``, None when not asked for) and the
    LRN's last state ``(B, C)``.
    """

    def __init__(self, *, embed_dim: int, ffn_embed_dim: int, encoder_attention: Optional[nn.Module],
                 dropout: float = 0.1, activation_dropout: float = 0.0,
                 activation_fn: Callable[[Tensor], Tensor] = F.relu, normalize_before: bool = False,
                 lrn_activation: str = "identity", lrn_layer_norm: bool = True, lrn_impl: str = "auto",
                 output_gate: bool = False):
        super().__init__()
        self.embed_dim = embed_dim
        self.normalize_before = normalize_before
        self.dropout, self.activation_dropout = dropout, activation_dropout
        self.activation_fn = activation_fn
        self.lrn = LRNLayer(embed_dim, embed_dim, activation=lrn_activation, layer_norm=lrn_layer_norm,
                            impl=lrn_impl, output_gate=output_gate)
        self.lrn_layer_norm = nn.LayerNorm(embed_dim)
        self.encoder_attn = encoder_attention
        self.encoder_attn_layer_norm = nn.LayerNorm(embed_dim) if encoder_attention is not None else None
        self.fc1 = nn.Linear(embed_dim, ffn_embed_dim)
        self.fc2 = nn.Linear(ffn_embed_dim, embed_dim)
        self.final_layer_norm = nn.LayerNorm(embed_dim)
        self.need_attn = True
        for fc in (self.fc1, self.fc2):  # fairseq's Linear init
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)

    def _sublayer(self, x: Tensor, norm: nn.LayerNorm, fn: Callable[[Tensor], Tuple[Tensor, object]]):
        """``norm(x + dropout(fn(x)))``, or ``x + dropout(fn(norm(x)))`` with normalize_before.
        Returns the new x and fn's second output."""
        y, extra = fn(norm(x) if self.normalize_before else x)
        y = x + F.dropout(y, self.dropout, self.training)
        return (y if self.normalize_before else norm(y)), extra

    def run_lrn(self, x: Tensor, h0: Optional[Tensor], padding_mask: Optional[Tensor],
                single_step: bool) -> Tuple[Tensor, Tensor]:
        """The LRN over x ``(T, B, C)`` from h0 ``(B, C)`` (zeros if None); padding_mask
        ``(B, T)`` True at padded steps. ``single_step`` (incremental decoding: T == 1, no
        padding) runs the cell once instead of the recurrence. Returns ``out (T, B, C)`` and ``h_last (B, C)``."""
        if single_step:
            h_prev = x.new_zeros(x.size(1), self.embed_dim) if h0 is None else h0.to(x.dtype)
            h = self.lrn.step(x[0], h_prev)
            return h.unsqueeze(0), h
        mask = None if padding_mask is None else padding_mask.t()
        return self.lrn(x, h0, mask)

    def forward(self, x: Tensor, encoder_out: Optional[Tensor] = None,
                encoder_padding_mask: Optional[Tensor] = None,
                incremental_state: Optional[IncrementalState] = None, h0: Optional[Tensor] = None,
                padding_mask: Optional[Tensor] = None, need_attn: bool = False,
                need_head_weights: bool = False) -> Tuple[Tensor, Optional[Tensor], Tensor]:
        """See the class docstring. ``incremental_state`` is handed to the encoder attention
        (its static key/value cache); when given, x is one new step and the LRN runs one cell."""
        if need_head_weights:
            need_attn = True
        single_step = incremental_state is not None and x.size(0) == 1
        x, h_last = self._sublayer(x, self.lrn_layer_norm,
                                   lambda inp: self.run_lrn(inp, h0, padding_mask, single_step))
        attn = None
        if self.encoder_attn is not None and encoder_out is not None:
            x, attn = self._sublayer(x, self.encoder_attn_layer_norm, lambda q: self.encoder_attn(
                query=q, key=encoder_out, value=encoder_out, key_padding_mask=encoder_padding_mask,
                incremental_state=incremental_state, static_kv=True,
                need_weights=need_attn or (not self.training and self.need_attn),
                need_head_weights=need_head_weights))

        def ffn(inp):
            hidden = F.dropout(self.activation_fn(self.fc1(inp)), self.activation_dropout, self.training)
            return self.fc2(hidden), None

        x, _ = self._sublayer(x, self.final_layer_norm, ffn)
        return x, attn, h_last

    def make_generation_fast_(self, need_attn: bool = False, **kwargs) -> None:
        """fairseq's hook before generation: skip attention weights unless asked for."""
        self.need_attn = need_attn
