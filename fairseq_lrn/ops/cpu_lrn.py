"""Fast PyTorch LRN recurrence with a hand-written backward (the CPU path; runs on any device).

Autograd would record ~10 ops per step and replay them one by one. Here forward and
backward are explicit loops over time whose per-step work touches only ``(B, d)`` slices
(which stay in cache) through fused, preallocated, in-place ops; backward recomputes the
gates from the saved states instead of storing them. Per step, with ``a = i*r + f*h_prev``::

    da      = dh_t * g'(a)                     (dh_t: output grad + grad from step t+1)
    dr      = da * i
    dp      = da * r * i (1 - i)
    dq      = da * h_prev * f (1 - f)
    dh_prev = da * f + dp - dq

oLRN (``output_gate``) recomputes ``c = g(a)`` and ``o = sigmoid(s - c)`` (the saved states are
``h = o * c``) and first takes the output gate back::

    ds      = dh_t * c * o (1 - o)
    dc      = dh_t * o - ds                    (then da = dc * g'(a))

Same conventions as :mod:`fairseq_lrn.ops.reference`.
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .reference import check_recurrence_args

sigmoid_backward = torch.ops.aten.sigmoid_backward
tanh_backward = torch.ops.aten.tanh_backward


def _directions(T: int, D: int, bidirectional: bool) -> List[Tuple[slice, range]]:
    """(channel slice, time order) for each direction."""
    if not bidirectional:
        return [(slice(0, D), range(T))]
    d = D // 2
    return [(slice(0, d), range(T)), (slice(d, D), range(T - 1, -1, -1))]


def _forward_direction(pqr: Tensor, h: Tensor, pad: Optional[Tensor], tanh: bool,
                       steps: range, states: Tensor, out: Tensor) -> None:
    """Walk ``steps`` of pqr ``(T, B, 3 or 4, d)`` (4: oLRN) from h ``(B, d)``; fill states
    (carried through padding) and out (zero at padding), both ``(T, B, d)``.
    pad: ``(T, B, 1)`` bool or None."""
    output_gate = pqr.size(2) == 4
    i = torch.empty_like(h)
    f = torch.empty_like(h)
    scratch = None if pad is None else torch.empty_like(h)
    c = torch.empty_like(h) if output_gate else None
    o = torch.empty_like(h) if output_gate else None
    for t in steps:
        p, q, r, *s = pqr[t].unbind(1)
        torch.add(p, h, out=i).sigmoid_()
        torch.sub(q, h, out=f).sigmoid_()
        target = states[t] if pad is None else scratch
        h_new = torch.mul(i, r, out=c if output_gate else target).addcmul_(f, h)
        if tanh:
            h_new.tanh_()
        if output_gate:  # h = sigmoid(s - c) * c
            h_new = torch.mul(torch.sub(s[0], c, out=o).sigmoid_(), c, out=target)
        if pad is None:
            h = h_new
        else:  # padded step: carry h, output zero
            h = torch.where(pad[t], h, h_new, out=states[t])
            torch.mul(h, pad[t].logical_not(), out=out[t])


def _backward_direction(pqr: Tensor, h0: Tensor, states: Tensor, keep: Optional[Tensor],
                        tanh: bool, steps: range, grad_out: Optional[Tensor], dh: Tensor,
                        grad_pqr: Tensor) -> Tensor:
    """Reverse of :func:`_forward_direction`: fills grad_pqr ``(T, B, 3 or 4, d)``, returns grad
    of h0. keep ``(T, B, 1)`` is 1.0 at real steps and 0.0 at padded ones (or None)."""
    output_gate = pqr.size(2) == 4
    i = torch.empty_like(dh)
    f = torch.empty_like(dh)
    tmp = torch.empty_like(dh)
    c, o, dc = (torch.empty_like(dh) for _ in range(3)) if output_gate else (None, None, None)
    dh = dh.clone()  # updated in place below
    order = list(steps)
    for n in range(len(order) - 1, -1, -1):
        t = order[n]
        h_prev = states[order[n - 1]] if n else h0
        p, q, r, *s = pqr[t].unbind(1)
        dp, dq, dr, *ds = grad_pqr[t].unbind(1)
        torch.add(p, h_prev, out=i).sigmoid_()
        torch.sub(q, h_prev, out=f).sigmoid_()
        if grad_out is not None:
            dh.add_(grad_out[t]) if keep is None else dh.addcmul_(grad_out[t], keep[t])
        if output_gate:  # recompute c = g(a) and o; dc = dh * o - ds
            torch.mul(i, r, out=c).addcmul_(f, h_prev)
            if tanh:
                c.tanh_()
            torch.sub(s[0], c, out=o).sigmoid_()
            sigmoid_backward(torch.mul(dh, c, out=tmp), o, grad_input=ds[0])
            if keep is not None:
                ds[0].mul_(keep[t])
            torch.mul(dh, o, out=dc).sub_(ds[0])  # (at padded steps masked by keep below)
            da = tanh_backward(dc, c) if tanh else dc
        else:
            da = tanh_backward(dh, states[t]) if tanh else dh
        if keep is not None:
            carried = dh * (1 - keep[t])
            da = da * keep[t]
        torch.mul(da, i, out=dr)
        sigmoid_backward(torch.mul(da, r, out=tmp), i, grad_input=dp)
        sigmoid_backward(torch.mul(da, h_prev, out=tmp), f, grad_input=dq)
        # dh_prev = da * f + dp - dq (+ the gradient carried through a padded step)
        if keep is not None:
            dh = carried.add_(dp).sub_(dq).addcmul_(da, f)
        elif da is not dh:
            dh = torch.sub(dp, dq, out=dh).addcmul_(da, f)
        else:  # LRN with identity g: da is dh itself
            dh.mul_(f).add_(dp).sub_(dq)
    return dh


class LRNRecurrenceCPU(torch.autograd.Function):
    """autograd.Function for the LRN (and oLRN) recurrence; see :func:`lrn_recurrence_cpu`.
    Whether the output gate is used follows from pqr's gate count (checked by the caller)."""

    @staticmethod
    def forward(ctx, pqr: Tensor, h0: Optional[Tensor], mask: Optional[Tensor],
                activation: str, bidirectional: bool) -> Tuple[Tensor, Tensor]:
        T, B, _, D = pqr.shape
        in_dtype = pqr.dtype
        compute = torch.float32 if in_dtype in (torch.float16, torch.bfloat16) else in_dtype
        pqr_c = pqr.to(compute)
        h0_c = pqr_c.new_zeros(B, D) if h0 is None else h0.to(compute)
        pad = None if mask is None else mask.unsqueeze(-1)
        states = pqr_c.new_empty(T, B, D)
        out = states if pad is None else torch.empty_like(states)
        h_last = torch.empty_like(h0_c)
        for ch, steps in _directions(T, D, bidirectional):
            _forward_direction(pqr_c[..., ch], h0_c[:, ch], pad, activation == "tanh", steps,
                               states[..., ch], out[..., ch])
            h_last[:, ch] = states[steps[-1], :, ch] if T else h0_c[:, ch]
        ctx.save_for_backward(pqr_c, h0_c, pad, states)
        ctx.activation, ctx.bidirectional, ctx.in_dtype = activation, bidirectional, in_dtype
        ctx.h0_dtype = None if h0 is None else h0.dtype
        return out.to(in_dtype), h_last.to(in_dtype)

    @staticmethod
    def backward(ctx, grad_out: Optional[Tensor], grad_last: Optional[Tensor]):
        pqr, h0, pad, states = ctx.saved_tensors
        T, B, _, D = pqr.shape
        keep = None if pad is None else (~pad).to(pqr.dtype)
        grad_out = None if grad_out is None else grad_out.to(pqr.dtype)
        dh_last = torch.zeros_like(h0) if grad_last is None else grad_last.to(pqr.dtype)
        grad_pqr = torch.empty_like(pqr)
        grad_h0 = torch.empty_like(h0)
        for ch, steps in _directions(T, D, ctx.bidirectional):
            grad_h0[:, ch] = _backward_direction(
                pqr[..., ch], h0[:, ch], states[..., ch], keep, ctx.activation == "tanh", steps,
                None if grad_out is None else grad_out[..., ch], dh_last[:, ch], grad_pqr[..., ch])
        grad_h0 = grad_h0.to(ctx.h0_dtype) if ctx.h0_dtype is not None and ctx.needs_input_grad[1] else None
        return grad_pqr.to(ctx.in_dtype), grad_h0, None, None, None


def lrn_recurrence_cpu(pqr: Tensor, h0: Optional[Tensor] = None, mask: Optional[Tensor] = None,
                       activation: str = "identity", bidirectional: bool = False,
                       output_gate: bool = False) -> Tuple[Tensor, Tensor]:
    """LRN (oLRN with ``output_gate``) recurrence with a hand-written backward.
    pqr ``(T, B, 3, D)`` (``(T, B, 4, D)`` with ``output_gate``), h0 ``(B, D)``, mask ``(T, B)``
    bool; returns ``out (T, B, D)`` and ``h_last (B, D)``."""
    check_recurrence_args(pqr, h0, mask, activation, bidirectional, output_gate)
    return LRNRecurrenceCPU.apply(pqr, h0, mask, activation, bidirectional)
