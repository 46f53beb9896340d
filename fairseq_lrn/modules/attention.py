"""Attention of decoder states over encoder states (additive, general, dot; optional heads).

Keys are projected once per source sentence (:meth:`Attention.project_keys`); queries of all
target positions are scored at once, so training needs no loop over time.
"""

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ATTENTION_TYPES = ("additive", "general", "dot")


class Attention(nn.Module):
    """Scores ``(T, B, query_dim)`` queries against ``(S, B, key_dim)`` encoder states.

    * additive (Bahdanau): ``v_h . tanh(Wq q + Wk k + b)`` per head.
    * general (Luong): ``(Wq q) . (Wk k) / sqrt(head_dim)`` per head.
    * dot (Luong): ``q . k / sqrt(head_dim)``; needs ``query_dim == key_dim``.

    The context of each head is the weighted sum of its slice of the encoder states, so
    the concatenated context has ``key_dim`` channels.
    """

    def __init__(self, query_dim: int, key_dim: int, attention_dim: int,
                 kind: str = "additive", heads: int = 1):
        super().__init__()
        if kind not in ATTENTION_TYPES:
            raise ValueError(f"--decoder-attention must be one of {ATTENTION_TYPES}, got {kind!r}")
        if heads < 1:
            raise ValueError(f"--decoder-attention-heads must be >= 1, got {heads}")
        if kind == "dot":
            if query_dim != key_dim:
                raise ValueError(f"--decoder-attention dot needs decoder hidden size ({query_dim}) "
                                 f"== encoder output size ({key_dim}); use additive or general")
            attention_dim = key_dim
        for name, dim in (("--decoder-attention-dim", attention_dim), ("encoder output size", key_dim)):
            if dim % heads:
                raise ValueError(f"{name} ({dim}) must be divisible by "
                                 f"--decoder-attention-heads ({heads})")
        self.kind, self.heads, self.key_dim = kind, heads, key_dim
        self.head_dim = attention_dim // heads
        if kind == "dot":
            self.query_proj = self.key_proj = None
        else:
            self.query_proj = nn.Linear(query_dim, attention_dim, bias=False)
            self.key_proj = nn.Linear(key_dim, attention_dim, bias=kind == "additive")
        self.v = nn.Parameter(torch.empty(heads, self.head_dim)) if kind == "additive" else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for proj in (self.query_proj, self.key_proj):
            if proj is not None:
                nn.init.xavier_uniform_(proj.weight)
                if proj.bias is not None:
                    nn.init.zeros_(proj.bias)
        if self.v is not None:
            nn.init.uniform_(self.v, -1 / math.sqrt(self.head_dim), 1 / math.sqrt(self.head_dim))

    def project_keys(self, encoder_out: Tensor) -> Tensor:
        """encoder_out ``(S, B, key_dim)`` -> keys ``(B, heads, S, head_dim)``, contiguous."""
        k = encoder_out if self.key_proj is None else self.key_proj(encoder_out)
        S, B, _ = k.shape
        return k.view(S, B, self.heads, self.head_dim).permute(1, 2, 0, 3).contiguous()

    def forward(self, query: Tensor, keys: Tensor, encoder_out: Tensor,
                padding_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """query ``(T, B, query_dim)``, keys from :meth:`project_keys`, encoder_out
        ``(S, B, key_dim)``, padding_mask ``(B, S)`` bool or None.
        Returns context ``(T, B, key_dim)`` and weights ``(B, T, S)`` (mean over heads)."""
        T, B, _ = query.shape
        q = query if self.query_proj is None else self.query_proj(query)
        q = q.view(T, B, self.heads, self.head_dim).permute(1, 2, 0, 3)  # (B, H, T, a)
        if self.kind == "additive":
            # (B, H, T, 1, a) + (B, H, 1, S, a), both contiguous: the sum, the largest tensor, is
            # contiguous, so with one head its product with v is a matrix-vector product on a view.
            hidden = (q.contiguous().unsqueeze(3) + keys.unsqueeze(2)).tanh_()
            if self.heads == 1:
                scores = (hidden.view(-1, self.head_dim) @ self.v[0]).view(B, 1, T, -1)
            else:
                scores = torch.einsum("bhtsa,ha->bhts", hidden, self.v)
        else:
            scores = (q @ keys.transpose(2, 3)) / math.sqrt(self.head_dim)
        return attend(scores, encoder_out, padding_mask)


def attend(scores: Tensor, encoder_out: Tensor, padding_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """Softmax over the source of ``scores (B, heads, T, S)`` (padded positions masked out) and
    each head's weighted sum of its slice of ``encoder_out (S, B, key_dim)``. Returns context
    ``(T, B, key_dim)`` and weights ``(B, T, S)`` (mean over heads)."""
    B, heads, T, S = scores.shape
    if padding_mask is not None:
        scores = scores.masked_fill(padding_mask.view(B, 1, 1, -1), float("-inf"))
    half = scores.dtype in (torch.float16, torch.bfloat16)  # softmax in fp32 for them, as fairseq does
    weights = F.softmax(scores.float() if half else scores, dim=-1).type_as(scores)  # (B, heads, T, S)
    values = encoder_out.view(S, B, heads, -1).permute(1, 2, 0, 3)  # (B, heads, S, c)
    context = (weights @ values).permute(2, 0, 1, 3).reshape(T, B, encoder_out.size(-1))
    return context, weights.mean(1)


class ZeroAdditiveAttention(nn.Module):
    """The additive attention of the authors' toolkit (zero, ``func.py`` ``additive_attention``
    as called by ``rnns/rnn.py`` ``cond_rnn``), for the conditional decoder:

        q = LN(Wq s) + b      k = LN(Wk m)      (no LN without ``layer_norm``: q = Wq s + b, k = Wk m)
        score_h = v . tanh(q_h + k_h)           per head h, ONE vector v shared by all heads

    The norms cover the whole ``attention_dim`` (all heads together), before the heads are split.
    zero's extra bias after its key/query norms and on the score are folded into the norm's
    shift (the same functions). Same call signature as :class:`Attention`.
    """

    def __init__(self, query_dim: int, key_dim: int, attention_dim: int, heads: int = 1,
                 layer_norm: bool = False):
        super().__init__()
        for name, dim in (("--decoder-attention-dim", attention_dim), ("encoder output size", key_dim)):
            if dim % heads:
                raise ValueError(f"{name} ({dim}) must be divisible by "
                                 f"--decoder-attention-heads ({heads})")
        self.heads, self.key_dim, self.head_dim = heads, key_dim, attention_dim // heads
        self.query_proj = nn.Linear(query_dim, attention_dim, bias=not layer_norm)
        self.key_proj = nn.Linear(key_dim, attention_dim, bias=False)
        self.query_norm = nn.LayerNorm(attention_dim) if layer_norm else None
        self.key_norm = nn.LayerNorm(attention_dim) if layer_norm else None
        self.v = nn.Parameter(torch.empty(self.head_dim))
        for proj in (self.query_proj, self.key_proj):
            nn.init.xavier_uniform_(proj.weight)
        if self.query_proj.bias is not None:
            nn.init.zeros_(self.query_proj.bias)
        nn.init.uniform_(self.v, -1 / math.sqrt(self.head_dim), 1 / math.sqrt(self.head_dim))

    def _split_heads(self, x: Tensor) -> Tensor:
        """``(L, B, attention_dim)`` -> ``(B, heads, L, head_dim)``, contiguous."""
        L, B, _ = x.shape
        return x.view(L, B, self.heads, self.head_dim).permute(1, 2, 0, 3).contiguous()

    def project_keys(self, encoder_out: Tensor) -> Tensor:
        """encoder_out ``(S, B, key_dim)`` -> keys ``(B, heads, S, head_dim)``."""
        k = self.key_proj(encoder_out)
        return self._split_heads(k if self.key_norm is None else self.key_norm(k))

    def forward(self, query: Tensor, keys: Tensor, encoder_out: Tensor,
                padding_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """query ``(T, B, query_dim)``, keys from :meth:`project_keys`, encoder_out
        ``(S, B, key_dim)``, padding_mask ``(B, S)`` bool or None.
        Returns context ``(T, B, key_dim)`` and weights ``(B, T, S)`` (mean over heads)."""
        q = self.query_proj(query)
        q = self._split_heads(q if self.query_norm is None else self.query_norm(q))  # (B, h, T, a)
        hidden = (q.unsqueeze(3) + keys.unsqueeze(2)).tanh_()  # (B, h, T, S, a)
        return attend(hidden @ self.v, encoder_out, padding_mask)
