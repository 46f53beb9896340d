"""int8 mode's self-attention for fairseq's Transformer encoder layers.

fairseq's ``MultiheadAttention`` runs an encoder layer's self-attention through
``F.multi_head_attention_forward``, which reads the float weights of ``q_proj``, ``k_proj``,
``v_proj`` and ``out_proj`` itself, so int8 mode could not replace those layers and the encoder
ran four float products per layer (at batch 1 on the benchmark machine they were 38% of the
encoder's time and the encoder 20% of the whole translation; BENCHMARKS.md, 2026-12-07).
:class:`Int8SelfAttention` computes what that call computes at inference (no dropout, no attention
weights returned) with the projections as :class:`~fairseq_lrn.translate.int8_linear.Int8Linear`
layers: ``q``, ``k`` and ``v`` as one layer of ``3 * embed_dim`` outputs (the weights' scales are
per output feature and each input row is quantized on its own, so this is exactly the three
layers quantized apart, in one pass), then ``softmax(q k^T / sqrt(head_dim)) v`` per head through
``F.scaled_dot_product_attention`` with the padded keys masked, then ``out_proj``.
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .int8_linear import Int8Linear


def replaceable(attention: nn.Module) -> bool:
    """Whether ``attention`` is a fairseq ``MultiheadAttention`` of the form :class:`Int8SelfAttention`
    computes: self-attention of ``embed_dim`` features, float ``nn.Linear`` projections, no
    ``bias_k``/``bias_v``, no zero attention, no xformers, dimension checks on."""
    from fairseq.modules import MultiheadAttention

    if not isinstance(attention, MultiheadAttention) or not attention.self_attention:
        return False
    projections = (attention.q_proj, attention.k_proj, attention.v_proj, attention.out_proj)
    return (all(type(p) is nn.Linear for p in projections)
            and len({p.bias is None for p in projections[:3]}) == 1
            and attention.kdim == attention.vdim == attention.embed_dim
            and attention.bias_k is None and attention.bias_v is None and not attention.add_zero_attn
            and not getattr(attention, "use_xformers", False)
            and not getattr(attention, "skip_embed_dim_check", False))


class Int8SelfAttention(nn.Module):
    """A fairseq encoder layer's ``self_attn`` in int8 (see the module docstring); build it with
    :meth:`from_attention` from a module :func:`replaceable` accepts. ``compiled``: the
    projections through the compiled kernel, else PyTorch operations (the same numbers)."""

    def __init__(self, in_proj: Int8Linear, out_proj: Int8Linear, num_heads: int):
        super().__init__()
        self.in_proj, self.out_proj, self.num_heads = in_proj, out_proj, num_heads
        self.embed_dim = out_proj.out_features
        self.head_dim = self.embed_dim // num_heads

    @classmethod
    def from_attention(cls, attention: nn.Module, compiled: bool) -> "Int8SelfAttention":
        if not replaceable(attention):
            raise ValueError("Int8SelfAttention needs a plain fairseq self-attention (see replaceable())")
        projections = (attention.q_proj, attention.k_proj, attention.v_proj)
        weight = torch.cat([p.weight for p in projections])
        bias = None if attention.q_proj.bias is None else torch.cat([p.bias for p in projections])
        return cls(Int8Linear(weight, bias, compiled), Int8Linear.from_linear(attention.out_proj, compiled),
                   attention.num_heads)

    def forward(self, query: Tensor, key: Optional[Tensor] = None, value: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None, need_weights: bool = False,
                attn_mask: Optional[Tensor] = None) -> Tuple[Tensor, None]:
        """``query (S, B, C)`` (the encoder layer passes it as ``key`` and ``value`` too),
        ``key_padding_mask (B, S)`` (True at padding) -> ``((S, B, C), None)``, as fairseq's
        ``MultiheadAttention`` returns with ``need_weights=False``."""
        if need_weights or attn_mask is not None:
            raise ValueError("Int8SelfAttention computes an encoder layer's self-attention without "
                             "attention weights or an attention mask (fairseq's TransformerEncoder passes neither)")
        S, B, C = query.shape
        qkv = self.in_proj(query).view(S, B, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 1, 3, 0, 4).unbind(0)  # each (B, heads, S, head_dim)
        mask = None if key_padding_mask is None else ~key_padding_mask.bool().view(B, 1, 1, S)
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, heads, S, head_dim)
        return self.out_proj(context.permute(2, 0, 1, 3).reshape(S, B, C)), None
