"""Fused Triton kernels for the LRN recurrence (forward and backward) and their autograd.Function.

One program per (batch row, direction, block of channels) walks time serially with the state in
fp32 registers; the reverse direction of a bidirectional recurrence runs in the same launch and
walks time backwards. Each step's p, q, r are loaded ahead of the dependent math (the forward
keeps two steps in flight, the backward one). Forward saves its inputs and the state sequence
(the output itself when there is no mask); backward walks time in reverse, recomputing the gates.
No atomics: every gradient element is written once, so results are deterministic.

Same conventions as :mod:`fairseq_lrn.ops.reference`. Runs on CUDA tensors, or on CPU tensors
under ``TRITON_INTERPRET=1`` (slow; for tests).
"""

import functools
import os
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from .reference import check_recurrence_args

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"

# Allocator for every tensor the kernels write; tests swap in a NaN-filled one to catch gaps.
_empty = torch.empty


@triton.jit
def _load_pqr(ptr, s_g, cmask):
    """p, q, r of one step, as fp32 blocks; ``ptr`` points at p."""
    p = tl.load(ptr, mask=cmask, other=0.0).to(tl.float32)
    q = tl.load(ptr + s_g, mask=cmask, other=0.0).to(tl.float32)
    r = tl.load(ptr + 2 * s_g, mask=cmask, other=0.0).to(tl.float32)
    return p, q, r


@triton.jit
def _activation(a, TANH: tl.constexpr):
    if TANH:  # tanh(a) = 2 sigmoid(2a) - 1 (libdevice tanh is missing under the interpreter)
        a = 2.0 * tl.sigmoid(2.0 * a) - 1.0
    return a


@triton.jit
def _program_coords(T, d, s_b, s_c, BLOCK: tl.constexpr):
    """This program's batch row b, time step of its direction (+1 / -1), the direction's first
    time step, its channels in [0, D), their mask (channel < d) and pqr offsets of (b, channels)."""
    b = tl.program_id(0)
    rev = tl.program_id(1)
    c = tl.program_id(2) * BLOCK + tl.arange(0, BLOCK)
    ch = rev * d + c
    step = 1 - 2 * rev
    t_first = ((T - 1) * rev).to(tl.int64)
    pqr_off = b.to(tl.int64) * s_b + ch.to(tl.int64) * s_c
    return b, step, t_first, ch, c < d, pqr_off


@triton.jit
def _lrn_fwd_kernel(pqr, h0, pad_mask, out, states, h_last,
                    T, B, d, s_t, s_b, s_g, s_c,
                    HAS_H0: tl.constexpr, HAS_MASK: tl.constexpr, TANH: tl.constexpr,
                    BLOCK: tl.constexpr):
    b, step, t, ch, cmask, pqr_off = _program_coords(T, d, s_b, s_c, BLOCK)
    D = tl.num_programs(1) * d
    row = b * D + ch  # offset within a (B, D) slice
    h = tl.zeros([BLOCK], dtype=tl.float32)
    if HAS_H0:
        h = tl.load(h0 + row, mask=cmask, other=0.0).to(tl.float32)

    # Two steps of p, q, r in flight; time indices past the end are clamped (harmless reloads).
    t1 = tl.minimum(tl.maximum(t + step, 0), T - 1)
    p0, q0, r0 = _load_pqr(pqr + pqr_off + t * s_t, s_g, cmask)
    p1, q1, r1 = _load_pqr(pqr + pqr_off + t1 * s_t, s_g, cmask)
    pad = False
    if HAS_MASK:
        pad = tl.load(pad_mask + t * B + b) != 0
    for _ in range(T):
        t2 = tl.minimum(tl.maximum(t1 + step, 0), T - 1)
        p2, q2, r2 = _load_pqr(pqr + pqr_off + t2 * s_t, s_g, cmask)
        i = tl.sigmoid(p0 + h)
        f = tl.sigmoid(q0 - h)
        h_new = _activation(i * r0 + f * h, TANH)
        o = t * B * D + row
        if HAS_MASK:
            pad_next = tl.load(pad_mask + t1 * B + b) != 0
            h = tl.where(pad, h, h_new)  # a padded step carries the state
            tl.store(states + o, h.to(states.dtype.element_ty), mask=cmask)
            tl.store(out + o, tl.where(pad, 0.0, h).to(out.dtype.element_ty), mask=cmask)
            pad = pad_next
        else:
            h = h_new
            tl.store(out + o, h.to(out.dtype.element_ty), mask=cmask)
        p0, q0, r0 = p1, q1, r1
        p1, q1, r1 = p2, q2, r2
        t = t1
        t1 = t2
    tl.store(h_last + row, h.to(h_last.dtype.element_ty), mask=cmask)


@triton.jit
def _load_state_before(states, t, step, t_first, T, BD, row, cmask, h_init):
    """The state before the forward's step at time t: states[t - step], or h_init at the first
    step (where the clamped load is a harmless dummy)."""
    t_prev = tl.minimum(tl.maximum(t - step, 0), T - 1)
    h = tl.load(states + t_prev * BD + row, mask=cmask, other=0.0).to(tl.float32)
    return tl.where(t == t_first, h_init, h)


@triton.jit
def _lrn_bwd_kernel(pqr, h0, pad_mask, states, dout, dlast, dpqr, dh0,
                    T, B, d, s_t, s_b, s_g, s_c,
                    HAS_H0: tl.constexpr, HAS_MASK: tl.constexpr, TANH: tl.constexpr,
                    BLOCK: tl.constexpr):
    b, step, t_first, ch, cmask, pqr_off = _program_coords(T, d, s_b, s_c, BLOCK)
    D = tl.num_programs(1) * d
    row = b * D + ch
    BD = B * D
    h_init = tl.zeros([BLOCK], dtype=tl.float32)
    if HAS_H0:
        h_init = tl.load(h0 + row, mask=cmask, other=0.0).to(tl.float32)
    dh = tl.load(dlast + row, mask=cmask, other=0.0).to(tl.float32)  # gradient of the carried state
    grad_off = b.to(tl.int64) * 3 * D + ch  # dpqr is a contiguous (T, B, 3, D) tensor

    # Walk the forward's steps last to first (time runs against `step`), one step in flight.
    t = t_first + (T - 1) * step
    p, q, r = _load_pqr(pqr + pqr_off + t * s_t, s_g, cmask)
    g = tl.load(dout + t * BD + row, mask=cmask, other=0.0).to(tl.float32)
    h_prev = _load_state_before(states, t, step, t_first, T, BD, row, cmask, h_init)
    pad = False
    if HAS_MASK:
        pad = tl.load(pad_mask + t * B + b) != 0
    for _ in range(T):
        tn = tl.minimum(tl.maximum(t - step, 0), T - 1)
        pn, qn, rn = _load_pqr(pqr + pqr_off + tn * s_t, s_g, cmask)
        gn = tl.load(dout + tn * BD + row, mask=cmask, other=0.0).to(tl.float32)
        hn = _load_state_before(states, tn, step, t_first, T, BD, row, cmask, h_init)

        i = tl.sigmoid(p + h_prev)
        f = tl.sigmoid(q - h_prev)
        di = i * (1.0 - i)
        df = f * (1.0 - f)
        da = dh + g  # total gradient of h_t ...
        if TANH:  # ... times g'(a_t)
            h = _activation(i * r + f * h_prev, TANH)
            da = da * (1.0 - h * h)
        dp = da * r * di
        dq = da * h_prev * df
        dr = da * i
        dh_prev = da * (f + r * di - h_prev * df)
        if HAS_MASK:  # padded: zero gradient for p, q, r; the state gradient passes unchanged
            pad_next = tl.load(pad_mask + tn * B + b) != 0
            dp = tl.where(pad, 0.0, dp)
            dq = tl.where(pad, 0.0, dq)
            dr = tl.where(pad, 0.0, dr)
            dh_prev = tl.where(pad, dh, dh_prev)
            pad = pad_next
        dh = dh_prev
        o = dpqr + t * 3 * BD + grad_off
        tl.store(o, dp.to(dpqr.dtype.element_ty), mask=cmask)
        tl.store(o + D, dq.to(dpqr.dtype.element_ty), mask=cmask)
        tl.store(o + 2 * D, dr.to(dpqr.dtype.element_ty), mask=cmask)
        p, q, r, g, h_prev = pn, qn, rn, gn, hn
        t = tn
    if HAS_H0:
        tl.store(dh0 + row, dh.to(dh0.dtype.element_ty), mask=cmask)


@functools.lru_cache(maxsize=None)
def _sm_count(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def launch_config(d: int, rows: int, device: torch.device) -> Tuple[int, int]:
    """(BLOCK, num_warps) for ``rows = B * directions`` rows of ``d`` channels.

    Each thread holds 4 channels per tensor; warps per program shrink (down to one) while
    programs are fewer than four per SM or a block would exceed the channel count. The loop is
    bound by per-step latency, not bytes, so more programs in flight beat wider vectors: on an
    H200 at T=500, B=128, d=1024 bf16, (128, 1) ran fwd+bwd in 0.70 ms against 0.87 ms for
    16-byte vectors (256, 1) (BENCHMARKS.md)."""
    if _INTERPRET:
        return min(128, triton.next_power_of_2(d)), 4
    vec = 4
    sms = _sm_count(device)
    num_warps = 4
    while num_warps > 1 and (32 * vec * num_warps > triton.next_power_of_2(d)
                             or rows * triton.cdiv(d, 32 * vec * num_warps) < 4 * sms):
        num_warps //= 2
    return 32 * vec * num_warps, num_warps


class LRNRecurrenceFused(torch.autograd.Function):
    """autograd.Function for the fused recurrence; see :func:`lrn_recurrence_fused`."""

    @staticmethod
    def forward(ctx, pqr: Tensor, h0: Optional[Tensor], mask: Optional[Tensor], activation: str,
                bidirectional: bool, config: Optional[Tuple[int, int]]) -> Tuple[Tensor, Tensor]:
        T, B, _, D = pqr.shape
        ndir = 2 if bidirectional else 1
        d = D // ndir
        block, num_warps = config or launch_config(d, B * ndir, pqr.device)
        h0 = None if h0 is None else h0.contiguous()
        pad = None if mask is None else mask.contiguous().view(torch.uint8)
        out = _empty((T, B, D), dtype=pqr.dtype, device=pqr.device)
        states = out if pad is None else _empty((T, B, D), dtype=pqr.dtype, device=pqr.device)
        h_last = _empty((B, D), dtype=pqr.dtype, device=pqr.device)
        flags = dict(HAS_H0=h0 is not None, HAS_MASK=pad is not None, TANH=activation == "tanh",
                     BLOCK=block, num_warps=num_warps)
        grid = (B, ndir, triton.cdiv(d, block))
        _lrn_fwd_kernel[grid](pqr, h0, pad, out, states, h_last, T, B, d, *pqr.stride(), **flags)
        ctx.save_for_backward(pqr, h0, pad, states)
        ctx.grid, ctx.flags, ctx.d = grid, flags, d
        return out, h_last

    @staticmethod
    def backward(ctx, grad_out: Tensor, grad_last: Tensor):
        pqr, h0, pad, states = ctx.saved_tensors
        T, B, _, D = pqr.shape
        dpqr = _empty((T, B, 3, D), dtype=pqr.dtype, device=pqr.device)
        dh0 = None if h0 is None else _empty(h0.shape, dtype=h0.dtype, device=h0.device)
        _lrn_bwd_kernel[ctx.grid](pqr, h0, pad, states, grad_out.contiguous(), grad_last.contiguous(),
                                  dpqr, dh0, T, B, ctx.d, *pqr.stride(), **ctx.flags)
        return dpqr, dh0, None, None, None, None


def lrn_recurrence_fused(pqr: Tensor, h0: Optional[Tensor] = None, mask: Optional[Tensor] = None,
                         activation: str = "identity", bidirectional: bool = False, *,
                         config: Optional[Tuple[int, int]] = None) -> Tuple[Tensor, Tensor]:
    """LRN recurrence with fused Triton kernels.

    pqr ``(T, B, 3, D)`` fp32/fp16/bf16 (any strides), h0 ``(B, D)`` or None, mask ``(T, B)`` bool
    (True = padding) or None. Returns ``out (T, B, D)`` and ``h_last (B, D)`` in pqr's dtype
    (math in fp32). ``config = (BLOCK, num_warps)`` overrides the launch heuristic (for tuning).
    """
    check_recurrence_args(pqr, h0, mask, activation, bidirectional)
    if pqr.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"the fused LRN kernels take fp32, fp16 or bf16, got {pqr.dtype}")
    return LRNRecurrenceFused.apply(pqr, h0, mask, activation, bidirectional, config)
