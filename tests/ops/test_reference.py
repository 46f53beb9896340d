"""The reference recurrence (LRN and oLRN) against hand-computed values, gradcheck and its
conventions."""

import math

import pytest
import torch

from fairseq_lrn.ops import lrn_recurrence_cpu, lrn_recurrence_reference


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def scalar_lrn(ps, qs, rs, h, tanh=False, ss=None):
    """The cell on plain Python floats, one channel; oLRN when the output gate's ``ss`` are given."""
    out = []
    for t, (p, q, r) in enumerate(zip(ps, qs, rs)):
        i, f = sigmoid(p + h), sigmoid(q - h)
        c = i * r + f * h
        c = math.tanh(c) if tanh else c
        h = c if ss is None else sigmoid(ss[t] - c) * c
        out.append(h)
    return out


def test_first_step_by_hand():
    # i = sigmoid(0.5 + 0.5) = 0.7310586, f = sigmoid(0.2 - 0.5) = 0.4255575
    # h = 0.7310586 * 1.0 + 0.4255575 * 0.5 = 0.9438373
    pqr = torch.tensor([[[[0.5], [0.2], [1.0]]]], dtype=torch.float64)
    out, last = lrn_recurrence_reference(pqr, h0=torch.tensor([[0.5]], dtype=torch.float64))
    assert out.item() == pytest.approx(0.9438373, abs=1e-7)
    assert last.item() == pytest.approx(0.9438373, abs=1e-7)


def test_olrn_first_step_by_hand():
    # c = 0.9438373 (as above); o = sigmoid(0.3 - 0.9438373) = 0.3443796; h = o * c = 0.3250383
    pqrs = torch.tensor([[[[0.5], [0.2], [1.0], [0.3]]]], dtype=torch.float64)
    out, last = lrn_recurrence_reference(pqrs, h0=torch.tensor([[0.5]], dtype=torch.float64),
                                         output_gate=True)
    assert out.item() == pytest.approx(0.3250383, abs=1e-7)
    assert last.item() == pytest.approx(0.3250383, abs=1e-7)


@pytest.mark.parametrize("output_gate", [False, True])
@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_sequence_matches_scalar_formula(activation, output_gate):
    ps, qs, rs, ss, h0 = [0.5, -1.0, 0.3], [0.2, 0.3, -2.0], [1.0, 2.0, -0.5], [0.3, -0.7, 1.5], 0.5
    gates = [ps, qs, rs, ss] if output_gate else [ps, qs, rs]
    pqr = torch.tensor(gates, dtype=torch.float64).t().reshape(3, 1, len(gates), 1)
    out, last = lrn_recurrence_reference(pqr, torch.full((1, 1), h0, dtype=torch.float64),
                                         activation=activation, output_gate=output_gate)
    expected = scalar_lrn(ps, qs, rs, h0, tanh=activation == "tanh", ss=ss if output_gate else None)
    assert out.flatten().tolist() == pytest.approx(expected, abs=1e-12)
    assert last.item() == pytest.approx(expected[-1], abs=1e-12)


def test_backward_direction_walks_time_backwards():
    ps, qs, rs = [0.5, -1.0, 0.3], [0.2, 0.3, -2.0], [1.0, 2.0, -0.5]
    fwd = torch.tensor([ps, qs, rs], dtype=torch.float64).t()  # (T, 3)
    pqr = torch.stack([fwd, fwd], -1).reshape(3, 1, 3, 2)  # same inputs in both directions
    out, last = lrn_recurrence_reference(pqr, bidirectional=True)
    backward = scalar_lrn(ps[::-1], qs[::-1], rs[::-1], 0.0)[::-1]
    assert out[:, 0, 0].tolist() == pytest.approx(scalar_lrn(ps, qs, rs, 0.0), abs=1e-12)
    assert out[:, 0, 1].tolist() == pytest.approx(backward, abs=1e-12)
    assert last[0, 1].item() == pytest.approx(backward[0], abs=1e-12)


@pytest.mark.parametrize("output_gate", [False, True])
def test_padding_carries_state_and_outputs_zero(output_gate):
    T, B, D = 5, 2, 3
    pqr = torch.randn(T, B, 4 if output_gate else 3, D, dtype=torch.float64)
    mask = torch.zeros(T, B, dtype=torch.bool)
    mask[:2, 1] = True  # left padding in sequence 1
    out, last = lrn_recurrence_reference(pqr, mask=mask, output_gate=output_gate)
    assert torch.all(out[:2, 1] == 0)
    # the unpadded suffix equals running the real steps alone from the initial state
    alone, alone_last = lrn_recurrence_reference(pqr[2:, 1:], output_gate=output_gate)
    torch.testing.assert_close(out[2:, 1:], alone)
    torch.testing.assert_close(last[1:], alone_last)
    # right padding: the final state is the one after the last real step
    mask = torch.zeros(T, B, dtype=torch.bool)
    mask[3:, 0] = True
    out, last = lrn_recurrence_reference(pqr, mask=mask, output_gate=output_gate)
    torch.testing.assert_close(last[0], out[2, 0])
    assert torch.all(out[3:, 0] == 0)


@pytest.mark.parametrize("output_gate", [False, True])
def test_padding_gets_zero_gradient(output_gate):
    pqr = torch.randn(4, 2, 4 if output_gate else 3, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.zeros(4, 2, dtype=torch.bool)
    mask[3, 0] = mask[0, 1] = True
    out, last = lrn_recurrence_reference(pqr, mask=mask, bidirectional=False, output_gate=output_gate)
    (out.sum() + last.sum()).backward()
    assert torch.all(pqr.grad[3, 0] == 0) and torch.all(pqr.grad[0, 1] == 0)


@pytest.mark.parametrize("output_gate", [False, True])
@pytest.mark.parametrize("activation", ["identity", "tanh"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradcheck(activation, bidirectional, output_gate):
    T, B, D = 4, 2, 4
    pqr = torch.randn(T, B, 4 if output_gate else 3, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, D, dtype=torch.float64, requires_grad=True)
    mask = torch.zeros(T, B, dtype=torch.bool)
    mask[0, 1] = True
    fn = lambda a, b: lrn_recurrence_reference(a, b, mask, activation, bidirectional, output_gate)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (pqr, h0))


@pytest.mark.parametrize("kwargs, message", [
    (dict(pqr=torch.zeros(2, 1, 4)), "pqr must be shaped"),
    (dict(pqr=torch.zeros(2, 1, 3, 3), bidirectional=True), "even channel count"),
    (dict(pqr=torch.zeros(2, 1, 3, 4), h0=torch.zeros(2, 4)), "h0 must be shaped"),
    (dict(pqr=torch.zeros(2, 1, 3, 4), mask=torch.zeros(1, 2, dtype=torch.bool)), "mask must be shaped"),
    (dict(pqr=torch.zeros(2, 1, 3, 4), mask=torch.zeros(2, 1)), "bool tensor"),
    (dict(pqr=torch.zeros(2, 1, 3, 4), activation="relu"), "activation must be one of"),
    (dict(pqr=torch.zeros(2, 1, 3, 4), output_gate=True), r"pqr must be shaped \(T, B, 4, D\)"),
    (dict(pqr=torch.zeros(2, 1, 4, 4)), r"pqr must be shaped \(T, B, 3, D\)"),
    (dict(pqr=torch.zeros(2, 1, 3, 4, device="meta"), mask=torch.zeros(2, 1, dtype=torch.bool)),
     r"mask must be on pqr's device \(meta\), got mask on cpu"),
    (dict(pqr=torch.zeros(2, 1, 3, 4, device="meta"), h0=torch.zeros(1, 4)),
     r"h0 must be on pqr's device \(meta\), got h0 on cpu"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lrn_recurrence_reference(**kwargs)
    with pytest.raises(ValueError, match=message):  # the same check on the CPU path
        lrn_recurrence_cpu(**kwargs)
