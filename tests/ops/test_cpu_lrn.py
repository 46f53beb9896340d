"""The fast CPU path against the reference, LRN and oLRN: outputs and gradients."""

import pytest
import torch

from fairseq_lrn.ops import lrn_recurrence, lrn_recurrence_cpu, lrn_recurrence_reference, resolve_impl


def ragged_mask(T, B, left):
    lengths = torch.randint(1, T + 1, (B,))
    lengths[0] = T
    steps = torch.arange(T).unsqueeze(1)
    return steps < (T - lengths) if left else steps >= lengths


def run_both(T, B, D, activation, bidirectional, mask, with_h0, dtype=torch.float64, output_gate=False):
    pqr = torch.randn(T, B, 4 if output_gate else 3, D, dtype=dtype)
    h0 = torch.randn(B, D, dtype=dtype) if with_h0 else None
    grad_out, grad_last = torch.randn(T, B, D, dtype=dtype), torch.randn(B, D, dtype=dtype)
    results = []
    for fn in (lrn_recurrence_reference, lrn_recurrence_cpu):
        x = pqr.clone().requires_grad_()
        h = None if h0 is None else h0.clone().requires_grad_()
        out, last = fn(x, h, mask, activation, bidirectional, output_gate)
        torch.autograd.backward([out, last], [grad_out, grad_last])
        results.append((out, last, x.grad, None if h is None else h.grad))
    return results


@pytest.mark.parametrize("output_gate", [False, True])
@pytest.mark.parametrize("T, B, D", [(1, 1, 2), (7, 3, 6), (12, 2, 10)])
@pytest.mark.parametrize("activation", ["identity", "tanh"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("padding", [None, "left", "right"])
def test_matches_reference(T, B, D, activation, bidirectional, padding, output_gate):
    mask = None if padding is None else ragged_mask(T, B, padding == "left")
    ref, fast = run_both(T, B, D, activation, bidirectional, mask, with_h0=True, output_gate=output_gate)
    for a, b in zip(ref, fast):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("output_gate", [False, True])
def test_without_h0_and_gradcheck(output_gate):
    ref, fast = run_both(5, 2, 4, "identity", True, None, with_h0=False, output_gate=output_gate)
    for a, b in zip(ref[:3], fast[:3]):
        torch.testing.assert_close(b, a)
    pqr = torch.randn(4, 2, 4 if output_gate else 3, 4, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    for left in (True, False):
        mask = ragged_mask(4, 2, left=left)
        for activation in ("identity", "tanh"):
            assert torch.autograd.gradcheck(
                lambda a, b: lrn_recurrence_cpu(a, b, mask, activation, True, output_gate), (pqr, h0))


@pytest.mark.parametrize("output_gate", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_inputs_keep_dtype(dtype, output_gate):
    pqr = torch.randn(6, 2, 4 if output_gate else 3, 4)
    out, last = lrn_recurrence_cpu(pqr.to(dtype), output_gate=output_gate)
    ref, ref_last = lrn_recurrence_reference(pqr.double(), output_gate=output_gate)
    assert out.dtype == dtype and last.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)


def test_dispatch():
    x = torch.zeros(2, 1, 3, 2)
    assert resolve_impl("auto", x) == "cpu"
    assert resolve_impl("reference", x) == "reference"
    with pytest.raises(ValueError, match="unknown LRN implementation"):
        lrn_recurrence(x, impl="cuda")


@pytest.mark.parametrize("impl", ["cpu", "reference"])
def test_dispatch_passes_output_gate(impl):
    pqrs = torch.randn(5, 2, 4, 6, dtype=torch.float64)
    mask = ragged_mask(5, 2, left=True)
    out, last = lrn_recurrence(pqrs, None, mask, "tanh", True, impl=impl, output_gate=True)
    ref, ref_last = lrn_recurrence_reference(pqrs, None, mask, "tanh", True, output_gate=True)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(last, ref_last)
    with pytest.raises(ValueError, match=r"pqr must be shaped \(T, B, 3, D\)"):
        lrn_recurrence(pqrs, impl=impl)  # 4 gates without the output gate


@pytest.mark.parametrize("impl", ["cpu", "reference"])
@pytest.mark.parametrize("with_h0", [False, True])
def test_an_empty_sequence_returns_no_steps_and_the_initial_state(impl, with_h0):
    for bidirectional, output_gate in ((False, False), (True, True)):
        pqr = torch.randn(0, 2, 4 if output_gate else 3, 6, dtype=torch.float64, requires_grad=True)
        h0 = torch.randn(2, 6, dtype=torch.float64, requires_grad=True) if with_h0 else None
        out, last = lrn_recurrence(pqr, h0, torch.zeros(0, 2, dtype=torch.bool), "tanh", bidirectional,
                                   impl=impl, output_gate=output_gate)
        assert out.shape == (0, 2, 6) and out.dtype == torch.float64
        torch.testing.assert_close(last, torch.zeros(2, 6, dtype=torch.float64) if h0 is None else h0)
        if with_h0:  # h_last is h0: its gradient passes through unchanged
            (last * torch.arange(6.0, dtype=torch.float64)).sum().backward()
            torch.testing.assert_close(h0.grad, torch.arange(6.0, dtype=torch.float64).expand(2, 6))


def test_auto_picks_fused_only_for_dtypes_the_kernels_take(monkeypatch):
    import fairseq_lrn.ops as ops

    monkeypatch.setattr(ops, "triton_available", lambda: True)

    class CudaTensor:  # what resolve_impl reads of a CUDA tensor
        is_cuda = True

        def __init__(self, dtype):
            self.dtype = dtype

    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        assert resolve_impl("auto", CudaTensor(dtype)) == "fused"
    for dtype in (torch.float64, torch.int64):
        assert resolve_impl("auto", CudaTensor(dtype)) == "cpu"
    assert resolve_impl("auto", torch.zeros(1)) == "cpu"  # a CPU tensor
