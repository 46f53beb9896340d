"""lrn_step (the decoding path: packed projections, fewer kernels) against lrn_cell."""

import pytest
import torch

from fairseq_lrn.ops import lrn_cell, lrn_step


@pytest.mark.parametrize("gates", [3, 4])
@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_step_equals_cell_values_and_gradients(gates, activation):
    torch.manual_seed(0)
    pqr = torch.randn(5, gates, 7, dtype=torch.float64, requires_grad=True)
    h = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    expected = lrn_cell(*pqr.unbind(1)[:3], h, activation, *pqr.unbind(1)[3:])
    got = lrn_step(pqr, h, activation)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(got)
    grads_expected = torch.autograd.grad((expected * weights).sum(), (pqr, h))
    grads = torch.autograd.grad((got * weights).sum(), (pqr, h))
    for g, e in zip(grads, grads_expected):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)


def test_step_in_half_precision_follows_the_input_dtype():
    pqr, h = torch.randn(2, 3, 4).bfloat16(), torch.randn(2, 4).bfloat16()
    out = lrn_step(pqr, h)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), lrn_cell(*pqr.float().unbind(1), h.float()), rtol=2e-2, atol=2e-2)
