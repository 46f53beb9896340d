"""int8 mode's linear layer (fairseq_lrn/translate/int8_linear.py and native/int8_linear.cpp): the
compiled kernel against its PyTorch reference (bit for bit), the reference against the float
product (within the quantization's error bound), the packing, odd shapes, non-finite rows, threads,
bad arguments, the module in a trace, and its selected outputs (a shortlist's)."""

import pytest
import torch
import torch.nn.functional as F

from fairseq_lrn.translate.int8_linear import (
    WEIGHT_MAX,
    Int8Linear,
    int8_linear_reference,
    quantize_rows,
    quantize_weight,
    unpack_weight,
)
from fairseq_lrn.translate.native import native_available


@pytest.fixture(scope="module")
def compiled():
    """The compiled operators, loaded (built on first use); a failure says why."""
    assert native_available() is None, native_available()
    return torch.ops.fairseq_lrn.int8_linear


def _layer(N: int, K: int, bias: bool, seed: int):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(N, K, generator=g) * float(torch.rand((), generator=g) + 0.1)
    return weight, (torch.randn(N, generator=g) if bias else None), g


SHAPES = [(M, K, N) for M in (0, 1, 2, 3, 4, 5, 6, 7, 9, 13) for K, N in ((1, 1), (3, 7), (4, 8), (31, 9), (64, 33), (300, 17))]


@pytest.mark.parametrize("M,K,N", SHAPES)
def test_compiled_equals_reference_bit_for_bit(compiled, M, K, N):
    for bias in (True, False):
        weight, b, g = _layer(N, K, bias, seed=M * 1000 + K * 10 + N)
        packed, scale, weight_sum = quantize_weight(weight)
        x = torch.randn(M, K, generator=g) * 3
        if M > 2:
            x[1] = 0  # an all-zero row: the bias alone
            x[2] = -x[2].abs()  # all negative: zero point 127
        got = compiled(x, packed, scale, weight_sum, b, N)
        expected = int8_linear_reference(x, packed, scale, weight_sum, b, N)
        assert got.shape == (M, N)
        assert torch.equal(got, expected)
        if M > 2:
            assert torch.equal(got[1], b if b is not None else torch.zeros(N))


def test_compiled_equals_reference_at_decoder_sizes_and_with_threads(compiled):
    """A decoder step's shapes (5 and 160 rows, 256 x 8,088 output layer, 1,024 features); the
    blocks split over two threads give the one-thread result."""
    for M, K, N in ((5, 256, 768), (160, 256, 8088), (37, 1024, 256), (3, 1100, 40), (2, 2100, 24)):
        weight, b, g = _layer(N, K, True, seed=M + N)
        packed, scale, weight_sum = quantize_weight(weight)
        x = torch.randn(M, K, generator=g)
        expected = int8_linear_reference(x, packed, scale, weight_sum, b, N)
        threads = torch.get_num_threads()
        try:
            for n in (1, 2):
                torch.set_num_threads(n)
                assert torch.equal(compiled(x, packed, scale, weight_sum, b, N), expected), (M, K, N, n)
        finally:
            torch.set_num_threads(threads)


def test_largest_products_are_exact(compiled):
    """The kernel adds two pairwise products of 7-bit inputs and weights in -64..64 in 16 bits:
    inputs at 127 and weights at +-64 everywhere reach the bound (4 * 127 * 64 = 32,512) in every
    lane, and the sums stay exact (weights in -127..127 would wrap)."""
    K, N = 520, 24
    signs = torch.ones(N, K)
    signs[1::2] = -1
    signs[2::4, ::3] = -1  # mixed signs in some features too
    packed, scale, weight_sum = quantize_weight(signs * 0.5)
    assert float(unpack_weight(packed).abs().min()) == WEIGHT_MAX
    x = torch.full((4, K), 2.0)  # all positive and equal: q = 127 everywhere, zero point 0
    x[3] = -2.0  # all negative: q = 0, zero point 127
    expected = F.linear(x.double(), (signs * 0.5).double())
    for fn in (compiled, int8_linear_reference):
        y = fn(x, packed, scale, weight_sum, None, N)
        torch.testing.assert_close(y.double(), expected, rtol=1e-6, atol=1e-4)


def test_error_is_within_the_quantization_bound():
    """|y - (x W^T + b)| <= what rounding x and W to half a step each can change: with x = s (q - z)
    + e (|e| <= s / 2) and W = w_s Wq + E (|E| <= w_s / 2) per output feature,
    |y - x W^T - b| <= s / 2 * sum|W| + w_s / 2 * sum|x| + s * w_s / 4 * K."""
    for M, K, N in ((7, 256, 300), (5, 1024, 64)):
        weight, b, g = _layer(N, K, True, seed=K)
        packed, scale, weight_sum = quantize_weight(weight)
        x = torch.randn(M, K, generator=g) * 2 + 0.5
        y = int8_linear_reference(x, packed, scale, weight_sum, b, N)
        exact = F.linear(x.double(), weight.double(), b.double())
        _, row_scale, _ = quantize_rows(x)
        w_scale = scale[:N].double()
        bound = (row_scale.double() / 2 * weight.double().abs().sum(1) + w_scale / 2 * x.double().abs().sum(1, keepdim=True)
                 + row_scale.double() * w_scale / 4 * K) * 1.0001 + 1e-5
        error = (y.double() - exact).abs()
        assert bool((error <= bound).all()), float((error / bound).max())
        assert float(error.max()) < 0.05 * float(exact.abs().max())  # and small in practice


def test_weight_packing_round_trip():
    weight, _, _ = _layer(13, 10, False, seed=3)
    weight[4] = 0
    packed, scale, weight_sum = quantize_weight(weight)
    assert packed.shape == (2, 4, 8, 4) and packed.dtype == torch.int8  # depth padded to pairs of quads
    unpacked = unpack_weight(packed)
    assert unpacked.shape == (16, 16)
    assert not unpacked[13:].any() and not unpacked[:, 10:].any()  # zero padding
    assert float(unpacked.abs().max()) == WEIGHT_MAX == 64
    torch.testing.assert_close(unpacked[:13, :10].float() * scale[:13, None], weight, rtol=0,
                               atol=float(scale.max()) / 2 + 1e-7)
    assert scale[4] == 1 and not unpacked[4].any()
    assert torch.equal(weight_sum, unpacked.sum(1, dtype=torch.int32))


@pytest.mark.parametrize("bias", [True, False])
def test_selected_outputs_are_the_layer_of_those_rows(compiled, bias):
    """select_outputs (a shortlist's rows of the output layer): the same buffers and outputs as an
    Int8Linear quantized from those rows of the float weight, compiled and not, in any order."""
    weight, b, g = _layer(37, 30, bias, seed=7)
    weight[5] = 0
    index = torch.tensor([36, 0, 5, 17, 18, 19, 20, 21, 22, 3])
    x = torch.randn(6, 30, generator=g)
    for flag in (True, False):
        full = Int8Linear(weight, b, compiled=flag)
        selected = full.select_outputs(index)
        expected = Int8Linear(weight[index], None if b is None else b[index], compiled=flag)
        assert (selected.out_features, selected.in_features, selected.compiled) == (10, 30, flag)
        for name, buffer in expected.named_buffers():
            assert torch.equal(getattr(selected, name), buffer) if buffer is not None else getattr(selected, name) is None, name
        assert torch.equal(selected(x), expected(x))
        assert torch.equal(selected(x), full(x)[:, index])
        assert torch.equal(full.select_outputs(index[:1])(x), full(x)[:, index[:1]])


def test_rows_with_inf_or_nan_give_nan_and_leave_other_rows_alone(compiled):
    weight, b, g = _layer(9, 40, True, seed=5)
    packed, scale, weight_sum = quantize_weight(weight)
    x = torch.randn(4, 40, generator=g)
    clean = compiled(x, packed, scale, weight_sum, b, 9)
    x[1, 3], x[2, 39] = float("inf"), float("nan")
    for fn in (compiled, int8_linear_reference):
        y = fn(x, packed, scale, weight_sum, b, 9)
        assert torch.isnan(y[1]).all() and torch.isnan(y[2]).all()
        assert torch.equal(y[[0, 3]], clean[[0, 3]])


def test_module_keeps_leading_dimensions_and_traces(compiled):
    linear = torch.nn.Linear(20, 11)
    for flag in (True, False):
        module = Int8Linear.from_linear(linear, compiled=flag)
        x = torch.randn(3, 4, 20)
        y = module(x)
        assert y.shape == (3, 4, 11)
        torch.testing.assert_close(y, linear(x).detach(), rtol=0, atol=0.05)
        traced = torch.jit.trace(module, x)
        assert torch.equal(traced(x * 2), module(x * 2))
    assert "compiled=True" in repr(Int8Linear.from_linear(linear, compiled=True))


def test_bad_arguments_are_refused_with_the_reason(compiled):
    weight, b, _ = _layer(8, 16, True, seed=1)
    packed, scale, weight_sum = quantize_weight(weight)
    x = torch.randn(2, 16)
    with pytest.raises(RuntimeError, match="input has 8 features, the weight's padded depth is 16"):
        compiled(torch.randn(2, 8), packed, scale, weight_sum, b, 8)
    with pytest.raises(RuntimeError, match="must be a contiguous int8"):
        compiled(x, unpack_weight(packed), scale, weight_sum, b, 8)
    with pytest.raises(RuntimeError, match="not padded for 20 output features"):
        compiled(x, packed, scale, weight_sum, b, 20)
    with pytest.raises(RuntimeError, match="float32 CPU tensor"):
        compiled(x.double(), packed, scale, weight_sum, b, 8)
    with pytest.raises(RuntimeError, match="bias must be 8"):
        compiled(x, packed, scale, weight_sum, b[:5], 8)
    with pytest.raises(RuntimeError, match="weight_sum must be 8"):
        compiled(x, packed, scale, weight_sum.float(), b, 8)
