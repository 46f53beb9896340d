"""int8 mode's linear layer: int8 weights, each row of the input quantized to 7 bits on the fly.

:class:`Int8Linear` computes ``y = x W^T + b`` with

* ``W`` stored as int8, symmetric, one scale per output feature: ``W ~ w_scale[j] * Wq[j]``,
  ``Wq`` in -64..64 (:data:`WEIGHT_MAX`: what lets the kernel sum 4 products in 16 bits);
* each input row quantized with its own range (0 included): ``s = (max(x, 0) - min(x, 0)) / 127``,
  ``z = round(-min(x, 0) / s)``, ``q = clamp(round(x / s) + z, 0, 127)``, so ``x ~ s * (q - z)``;
* ``y = s * w_scale * (q . Wq - z * sum(Wq)) + b``, the dot products exact in integers.

That is PyTorch's dynamic quantization (fbgemm with ``reduce_range``: 7-bit activations) with
finer scales (per output feature rather than per tensor for the weights, per row rather than per
batch for the inputs), so a row's result does not depend on the other rows of the call. The
compiled kernel (``native/int8_linear.cpp``, ``torch.ops.fairseq_lrn.int8_linear``) is one pass
over the weights, 1.1-1.5x faster than its first version (-127..127 weights, 6-row tiles), which
took 0.58x the time of PyTorch's at 5 rows and the same at 160 (BENCHMARKS.md, 2026-12-07 and
2026-12-07 "fused step"). Without the compiled operators
(``--native no``, or no C++ compiler), :func:`int8_linear_reference` computes the same numbers with
PyTorch operations (the integer sums in float32 matrix products: exact up to 2,064 input features,
else in float64), bit for bit (tested).
"""

from typing import Optional

import torch
from torch import Tensor, nn

#: The weights are padded (with zeros) to a multiple of ``DEPTH_ALIGN`` input features and of
#: ``COLUMN_ALIGN`` output features, and stored packed for the compiled kernel: ``(groups, quads,
#: COLUMN_ALIGN, QUAD)``, 8 output features by 4 input features per 32 bytes (the kernel reads two
#: quads at a time: DEPTH_ALIGN).
QUAD, DEPTH_ALIGN, COLUMN_ALIGN = 4, 8, 8
#: The weights' integer range, -WEIGHT_MAX..WEIGHT_MAX: with 7-bit inputs, the sum of 4 products is
#: at most 4 * 127 * 64 = 32512 in magnitude, so the kernel adds two of AVX2's pairwise products in
#: 16 bits before widening them (1.2-1.3x the multiply-adds per second of widening each pair sum),
#: exactly.
WEIGHT_MAX = 64
#: Input features up to which float32 sums of the integer products are exact (127 * 64 * K < 2**24).
_EXACT_FLOAT32_DEPTH = 2 ** 24 // (127 * WEIGHT_MAX)


def quantize_weight(weight: Tensor):
    """``weight (N, K)`` float -> ``(packed int8 (Np / 8, Kp / 4, 8, 4), w_scale (Np,) float32,
    w_sum (Np,) int32)``: symmetric per output feature (-:data:`WEIGHT_MAX`..:data:`WEIGHT_MAX`), zero padded to ``Np`` / ``Kp`` features
    (multiples of ``COLUMN_ALIGN`` / ``DEPTH_ALIGN``), packed (:data:`COLUMN_ALIGN`); an all-zero
    row gets scale 1. :func:`unpack_weight` undoes the packing."""
    N, K = weight.shape
    weight = weight.detach().float()
    scale = weight.abs().amax(1) / WEIGHT_MAX
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    depth = -(-K // DEPTH_ALIGN) * DEPTH_ALIGN
    quantized = torch.zeros(N, depth, dtype=torch.int8, device=weight.device)
    quantized[:, :K] = torch.round(weight / scale[:, None]).clamp(-WEIGHT_MAX, WEIGHT_MAX).to(torch.int8)
    return pack_weight(quantized, scale)


def pack_weight(quantized: Tensor, scale: Tensor):
    """``quantized (N, Kp)`` int8 rows (``Kp`` a multiple of ``DEPTH_ALIGN``) and their ``scale
    (N,)`` -> :func:`quantize_weight`'s ``(packed, w_scale (Np,), w_sum (Np,))``: the rows zero
    padded to a multiple of ``COLUMN_ALIGN`` (scale 1) and packed."""
    N, depth = quantized.shape
    rows = -(-N // COLUMN_ALIGN) * COLUMN_ALIGN
    padded = torch.zeros(rows, depth, dtype=torch.int8, device=quantized.device)
    padded[:N] = quantized
    padded_scale = torch.ones(rows, device=quantized.device)
    padded_scale[:N] = scale
    packed = padded.view(rows // COLUMN_ALIGN, COLUMN_ALIGN, depth // QUAD, QUAD)
    return packed.transpose(1, 2).contiguous(), padded_scale, padded.sum(1, dtype=torch.int32)


def unpack_weight(packed: Tensor) -> Tensor:
    """:func:`quantize_weight`'s packed weights -> ``(Np, Kp)`` int8."""
    groups, quads, columns, depth = packed.shape
    return packed.transpose(1, 2).reshape(groups * columns, quads * depth)


def quantize_rows(x: Tensor):
    """Each row of ``x (M, K)`` quantized as the module docstring says: ``(q (M, K) float with
    integer values in 0..127, scale (M, 1), zero_point (M, 1))``; an all-zero row gets scale 0."""
    lo, hi = x.amin(-1, keepdim=True).clamp_max(0), x.amax(-1, keepdim=True).clamp_min(0)
    span = hi - lo
    inverse = torch.full_like(span, 127.0) / span  # not 127 / span: PyTorch computes that as 127 * (1 / span)
    inverse = torch.where(span > 0, inverse, torch.zeros_like(inverse))
    zero_point = torch.round(-lo * inverse)
    q = (torch.round(x * inverse) + zero_point).clamp(0, 127)
    return q, span / 127, zero_point


def int8_linear_reference(x: Tensor, weight: Tensor, weight_scale: Tensor, weight_sum: Tensor,
                          bias: Optional[Tensor], out_features: int) -> Tensor:
    """What ``torch.ops.fairseq_lrn.int8_linear`` computes, with PyTorch operations: ``x (..., K)``
    float32, the weights as :func:`quantize_weight` returns them -> ``(..., out_features)``. A row
    with an inf or a NaN gives NaN outputs."""
    K, N = x.size(-1), out_features
    return _int8_product(x, _integer_weight(weight, N, K), weight_scale[:N], weight_sum[:N], bias)


def _integer_weight(packed: Tensor, N: int, K: int) -> Tensor:
    """The int8 weights ``(N, K)`` as floats for :func:`_int8_product`: float32, whose sums of the
    integer products are exact up to 2,064 input features, else float64."""
    return unpack_weight(packed)[:N, :K].to(torch.float32 if K <= _EXACT_FLOAT32_DEPTH else torch.float64)


def _int8_product(x: Tensor, weight: Tensor, weight_scale: Tensor, weight_sum: Tensor,
                  bias: Optional[Tensor]) -> Tensor:
    """The int8 product of ``x (..., K)`` and ``weight (N, K)`` (:func:`_integer_weight`)."""
    K, N = weight.shape[1], weight.shape[0]
    rows = x.reshape(-1, K).float()
    q, scale, zero_point = quantize_rows(rows)
    exact = q.to(weight.dtype) @ weight.T - zero_point.to(weight.dtype) * weight_sum.to(weight.dtype)
    y = exact.float() * (scale * weight_scale)
    if bias is not None:
        y = y + bias
    finite = torch.isfinite(rows).all(-1, keepdim=True)
    y = torch.where(finite, y, torch.full_like(y, float("nan")))
    return y.reshape(*x.shape[:-1], N)


class Int8Linear(nn.Module):
    """A ``nn.Linear``'s product in int8 (the module docstring); ``compiled``: through the compiled
    kernel (the C++ operators must be loaded: :func:`~fairseq_lrn.translate.native.native_available`),
    else :func:`int8_linear_reference`."""

    def __init__(self, weight: Tensor, bias: Optional[Tensor], compiled: bool):
        super().__init__()
        self._store(quantize_weight(weight), *weight.shape, bias, compiled)

    def _store(self, packed, out_features: int, in_features: int, bias: Optional[Tensor], compiled: bool):
        """Hold :func:`quantize_weight`'s ``packed`` weights of an ``(out_features, in_features)`` layer."""
        quantized, scale, weight_sum = packed
        self.out_features, self.in_features = out_features, in_features
        self.register_buffer("weight_int8", quantized)
        self.register_buffer("weight_scale", scale)
        self.register_buffer("weight_sum", weight_sum)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self.compiled = compiled
        # the PyTorch version's weights, as floats once rather than unpacked at every call
        self.register_buffer("integer_weight", None if compiled else
                             _integer_weight(quantized, out_features, in_features), persistent=False)
        self._unpacked = None  # select_outputs' int8 rows, (out_features, Kp), made at its first call

    @classmethod
    def from_linear(cls, linear: nn.Linear, compiled: bool) -> "Int8Linear":
        return cls(linear.weight, linear.bias, compiled)

    def select_outputs(self, index: Tensor) -> "Int8Linear":
        """The layer of the output features ``index (K,)`` only (a shortlist's rows of the output
        projection), its int8 rows and scales taken as they are and packed again: the layer that
        quantizing those rows of the float weight gives (the scales are per feature), without the
        float work at every batch of a shortlisted search."""
        if self._unpacked is None:
            self._unpacked = unpack_weight(self.weight_int8)[: self.out_features]
        rows = self._unpacked.index_select(0, index)
        packed = pack_weight(rows, self.weight_scale[: self.out_features].index_select(0, index))
        layer = Int8Linear.__new__(Int8Linear)
        nn.Module.__init__(layer)
        layer._store(packed, index.numel(), self.in_features,
                     None if self.bias is None else self.bias.index_select(0, index), self.compiled)
        return layer

    def forward(self, x: Tensor) -> Tensor:
        if self.compiled:
            return torch.ops.fairseq_lrn.int8_linear(x, self.weight_int8, self.weight_scale, self.weight_sum,
                                                     self.bias, self.out_features)
        N = self.out_features
        return _int8_product(x, self.integer_weight, self.weight_scale[:N], self.weight_sum[:N], self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, compiled={self.compiled}")
