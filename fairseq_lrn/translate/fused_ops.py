"""The fused parts of a decoder step in compiled int8 mode, and the PyTorch computations they replace.

A decoder step at beam 5 is a few to a few hundred rows of small vectors, and in PyTorch the LRN
cell after its projection (the layer norm of each gate, its shift, the gates, the state update)
and the encoder attention of a sentence's beams (scaling, ``q k^T``, the padding mask, the
softmax, the sum of the values) are 6-12 operations each, most of a step's operations outside
the matrix products. ``native/fused_step.cpp`` computes each in one pass:
``torch.ops.fairseq_lrn.lrn_cell`` and ``torch.ops.fairseq_lrn.beam_attention``.

They are used where the int8 layers run compiled (:func:`~fairseq_lrn.translate.quantize.quantize_runner`
sets the runner's ``fused_ops``): the sums are taken in another order and the exponential is a
polynomial, so the numbers equal the references below only up to float rounding, which fp32 mode
(the same translations as fairseq-generate) must not change, and which int8 mode's own rounding
dwarfs. The tests bound the difference and compare the translations.
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..modules.lrn import LRNLayer
from ..ops import lrn_step

#: lrn_cell's ``norm_style`` argument for an LRN layer's ``layer_norm_style`` (None: no norm).
NORM_STYLE_CODES = {None: 0, "per_gate": 1, "whole": 2}
#: F.layer_norm's default epsilon, which LRNLayer.normalize_projection uses.
LAYER_NORM_EPS = 1e-5


def lrn_cell_reference(layer: LRNLayer, projected: Tensor, h_prev: Tensor) -> Tensor:
    """The cell of a unidirectional LRN layer after its linear projection: ``projected (N, G * D)``
    (``layer.proj``'s output), ``h_prev (N, D)`` -> ``h (N, D)``, as :meth:`LRNLayer.step`."""
    return lrn_step(layer.normalize_projection(projected), h_prev, layer.activation)


def lrn_layer_step(layer: LRNLayer, x: Tensor, h_prev: Tensor, fused: bool) -> Tensor:
    """:meth:`LRNLayer.step` of ``x (N, input_size)`` from ``h_prev (N, D)``; with ``fused``
    the cell after the projection is ``torch.ops.fairseq_lrn.lrn_cell`` (:func:`lrn_cell_reference`)."""
    if not fused:
        return layer.step(x, h_prev)
    if layer.bidirectional:
        raise RuntimeError("step() needs a unidirectional layer")
    style = NORM_STYLE_CODES[None if layer.norm_weight is None else layer.layer_norm_style]
    return torch.ops.fairseq_lrn.lrn_cell(layer.proj(x), h_prev, layer.norm_weight, layer.norm_bias, style,
                                          LAYER_NORM_EPS, layer.activation == "tanh", layer.num_gates)


def beam_attention_reference(query: Tensor, keys: Tensor, values: Tensor, padding_mask: Optional[Tensor],
                             scaling: float) -> Tensor:
    """fairseq ``MultiheadAttention``'s attention between its projections, for one step of
    ``N = B * beam`` query rows (``beam`` per sentence) against the keys ``(B, heads, S, d)`` and
    values ``(B, heads, S, dv)`` of their B sentences: ``softmax(q * scaling @ k^T)`` with padded
    positions ``padding_mask (B, S)`` at -inf (softmax in float32), ``@ v``. ``query (N, heads * d)``
    (``q_proj``'s output) -> ``(N, heads * dv)`` (``out_proj``'s input). The ``lrn`` decoder's
    general and dot attentions are the same computation with ``scaling = 1 / sqrt(d)``."""
    N = query.size(0)
    B, heads, S, d = keys.shape
    q = (query * scaling).view(B, -1, heads, d).transpose(1, 2)  # (B, heads, beam, d)
    weights = q @ keys.transpose(2, 3)  # (B, heads, beam, S)
    if padding_mask is not None:
        weights = weights.masked_fill(padding_mask.view(B, 1, 1, S), float("-inf"))
    weights = F.softmax(weights, dim=-1, dtype=torch.float32).type_as(weights)
    return (weights @ values).transpose(1, 2).reshape(N, -1)  # (B, beam, heads, dv) -> (N, heads * dv)


#: The fused attention reads the keys' source positions in blocks of this many (zero padded).
KEY_ALIGN = 8


def attention_keys(keys: Tensor, fused: bool) -> Tensor:
    """The layout a step's keys are kept in: ``keys (B, heads, S, d)`` as they are, or with
    ``fused`` transposed to ``(B, heads, d, Sp)`` (contiguous, zeros after S, Sp the next multiple
    of :data:`KEY_ALIGN`), as ``beam_attention`` reads them."""
    if not fused:
        return keys
    S = keys.size(2)
    return F.pad(keys.transpose(2, 3), (0, -S % KEY_ALIGN)).contiguous()


def beam_attention(query: Tensor, keys: Tensor, values: Tensor, padding_mask: Optional[Tensor], scaling: float,
                   fused: bool) -> Tensor:
    """:func:`beam_attention_reference`, or with ``fused`` ``torch.ops.fairseq_lrn.beam_attention``,
    which reads the keys transposed and padded, ``(B, heads, d, Sp)`` (:func:`attention_keys`)."""
    if fused:
        return torch.ops.fairseq_lrn.beam_attention(query, keys, values, padding_mask, scaling)
    return beam_attention_reference(query, keys, values, padding_mask, scaling)
