"""Fused Triton kernels for the LRN recurrence (forward and backward) and their autograd.Function.

One program per (batch row, direction, block of channels) walks time serially with the state in
fp32 registers; the reverse direction of a bidirectional recurrence runs in the same launch and
walks time backwards. The loop is bound by the latency of its loads, not by bytes, so time is
walked in chunks of STEPS steps and Triton's software pipeliner (``tl.range(num_stages=STAGES)``)
copies chunks ahead into STAGES-1 buffers in shared memory (cp.async). In the compiled loop (SASS)
an iteration waits for chunk n, computes it, then issues the copy of chunk n+STAGES-1 into the
freed buffer, so a copy has (STAGES-2)*STEPS steps of math to arrive: STAGES=2 hides nothing.
(Prefetching into registers does not work here: the copy at the loop's end that rotates
prefetched registers waits for the load, as the SASS shows.)
Forward saves its inputs and the state sequence (the output itself when there is no mask);
backward walks time in reverse, recomputing the gates.
oLRN is the same kernels with the constexpr OUTPUT_GATE: a chunk loads the s tile with p, q, r
(one more pipelined copy), the step applies ``h = sigmoid(s - c) * c`` and backward recomputes
c and the output gate.
No atomics: every gradient element is written once, so results are deterministic.

Same conventions as :mod:`fairseq_lrn.ops.reference`. Runs on CUDA tensors, or on CPU tensors
under ``TRITON_INTERPRET=1`` (slow; for tests).
"""

import functools
import math
import os
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor
from triton.language.extra.cuda import libdevice

from .reference import check_recurrence_args

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
# Compiled, the gates' sigmoid uses libdevice's flush-to-zero exp and approximate division: a
# third fewer instructions per forward step than tl.sigmoid's full-range ones (which scale
# around denormals), a fifth fewer per backward step. The interpreter has no libdevice.
_FAST_SIGMOID = tl.constexpr(not _INTERPRET)

# Allocator for every tensor the kernels write; tests swap in a NaN-filled one to catch gaps.
_empty = torch.empty


@triton.jit
def _sigmoid(x):
    """1 / (1 + exp(-x)), elementwise, fp32."""
    if _FAST_SIGMOID:
        return libdevice.fast_dividef(1.0, 1.0 + libdevice.fast_expf(-x))
    return tl.sigmoid(x)


@triton.jit
def _activation(a, TANH: tl.constexpr):
    if TANH:  # tanh(a) = 2 sigmoid(2a) - 1 (libdevice tanh is missing under the interpreter)
        a = 2.0 * _sigmoid(2.0 * a) - 1.0
    return a


@triton.jit
def _program_coords(T, B, d, s_b, s_c, h0, HAS_H0: tl.constexpr, BLOCK: tl.constexpr,
                    VEC: tl.constexpr, ALIGN: tl.constexpr):
    """This program's batch row b, time step of its direction (+1 / -1), the direction's first
    time step, its channels in [0, D), their mask (channel < d), pqr offsets of (b, channels),
    D, B * D, offsets of (b, channels) in a (B, D) slice, and the initial state (fp32).
    Channels are declared contiguous in runs of VEC only, so that each thread holds VEC channels
    of every time step of a chunk (wider vectors would split a chunk's steps across threads);
    the channel mask is constant over runs of ALIGN (a divisor of d, checked on the host)."""
    b = tl.program_id(0)
    rev = tl.program_id(1)
    c = tl.max_contiguous(tl.program_id(2) * BLOCK + tl.arange(0, BLOCK), VEC)
    ch = rev * d + c
    cmask = tl.max_constancy(c < d, ALIGN)
    D = tl.num_programs(1) * d
    row = b * D + ch
    h_init = tl.zeros([BLOCK], dtype=tl.float32)
    if HAS_H0:
        h_init = tl.load(h0 + row, mask=cmask, other=0.0).to(tl.float32)
    pqr_off = b.to(tl.int64) * s_b + ch.to(tl.int64) * s_c
    return b, 1 - 2 * rev, ((T - 1) * rev).to(tl.int64), ch, cmask, pqr_off, D, B * D, row, h_init


@triton.jit
def _chunk_times(t_start, walk, n, T, STEPS: tl.constexpr):
    """Time indices (int64) of chunk n's STEPS steps, walking from t_start by ``walk`` (+1 / -1),
    and which of them exist (walked position < T)."""
    pos = n * STEPS + tl.arange(0, STEPS)
    return t_start + walk * pos, pos < T


@triton.jit
def _load_rows(ptr, t, s_t, col_off, live, cmask, ALIGN: tl.constexpr):
    """``(STEPS, BLOCK)`` tile ``ptr[t * s_t + col_off]`` in the stored dtype, zero off the masks.
    ALIGN (checked on the host) divides the offset at the start of each run of contiguous
    channels: 2-byte types need it for vector and cp.async access, and Triton itself only knows
    divisibility by 16 of the integer arguments."""
    offsets = tl.multiple_of(t[:, None] * s_t + col_off[None, :], [1, ALIGN])
    return tl.load(ptr + offsets, mask=live[:, None] & cmask[None, :], other=0.0)


@triton.jit
def _load_pqr(pqr, t, s_t, s_g, pqr_off, live, cmask, OUTPUT_GATE: tl.constexpr, ALIGN: tl.constexpr):
    """p, q, r and s tiles at times t (see :func:`_load_rows`); without OUTPUT_GATE, s is p
    (and unused)."""
    p = _load_rows(pqr, t, s_t, pqr_off, live, cmask, ALIGN)
    q = _load_rows(pqr, t, s_t, pqr_off + s_g, live, cmask, ALIGN)
    r = _load_rows(pqr, t, s_t, pqr_off + 2 * s_g, live, cmask, ALIGN)
    s = p
    if OUTPUT_GATE:
        s = _load_rows(pqr, t, s_t, pqr_off + 3 * s_g, live, cmask, ALIGN)
    return p, q, r, s


@triton.jit
def _load_pads(pad_mask, t, live, B, b, HAS_MASK: tl.constexpr):
    """``(STEPS,)`` padding flags of batch row b at times t (False without a mask)."""
    if HAS_MASK:
        return tl.load(pad_mask + t * B + b, mask=live, other=0) != 0
    return tl.zeros_like(live)


@triton.jit
def _row(tile, k: tl.constexpr):
    """Row k of a ``(STEPS, BLOCK)`` tile as fp32. Each thread holds whole columns of the tile, so
    this folds to a register pick (x + -0.0 == x exactly)."""
    sel = tl.arange(0, tile.shape[0])[:, None] == k
    return tl.sum(tl.where(sel, tile.to(tl.float32), -0.0), axis=0)


@triton.jit
def _flag(flags, k: tl.constexpr):
    """Element k of a ``(STEPS,)`` bool vector, as a scalar."""
    return tl.sum(tl.where(tl.arange(0, flags.shape[0]) == k, flags.to(tl.int32), 0)) != 0


@triton.jit
def _cell(p, q, r, s, h_prev, TANH: tl.constexpr, OUTPUT_GATE: tl.constexpr):
    """One step, fp32 ``(BLOCK,)`` vectors: gates i, f, the LRN cell c and the new state h
    (``sigmoid(s - c) * c`` with OUTPUT_GATE, else c)."""
    i = _sigmoid(p + h_prev)
    f = _sigmoid(q - h_prev)
    c = _activation(i * r + f * h_prev, TANH)
    h = c
    if OUTPUT_GATE:
        h = _sigmoid(s - c) * c
    return i, f, c, h


@triton.jit
def _load_fwd_chunk(pqr, pad_mask, t_first, step, n, T, B, b, s_t, s_g, pqr_off, cmask,
                    HAS_MASK: tl.constexpr, OUTPUT_GATE: tl.constexpr, STEPS: tl.constexpr,
                    ALIGN: tl.constexpr):
    """p, q, r, s tiles (stored dtype) and padding flags of the forward's chunk n."""
    t, live = _chunk_times(t_first, step, n, T, STEPS)
    p, q, r, s = _load_pqr(pqr, t, s_t, s_g, pqr_off, live, cmask, OUTPUT_GATE, ALIGN)
    return p, q, r, s, _load_pads(pad_mask, t, live, B, b, HAS_MASK)


@triton.jit
def _fwd_chunk(h, P, Q, R, S, PAD, n, t_first, step, T, BD, row, cmask, out, states,
               HAS_MASK: tl.constexpr, TANH: tl.constexpr, OUTPUT_GATE: tl.constexpr,
               STEPS: tl.constexpr, ALIGN: tl.constexpr):
    """Run the forward's chunk n (STEPS steps; those past the end do nothing); returns the state."""
    for k in tl.static_range(STEPS):
        pos = n * STEPS + k
        live = pos < T
        o = tl.multiple_of((t_first + step * pos) * BD + row, ALIGN)
        _, _, _, h_new = _cell(_row(P, k), _row(Q, k), _row(R, k), _row(S, k), h, TANH, OUTPUT_GATE)
        smask = tl.where(live, cmask, False)  # (cmask & live is int under the interpreter)
        if HAS_MASK:
            pad = _flag(PAD, k)
            h = tl.where(pad, h, tl.where(live, h_new, h))  # a padded step carries the state
            tl.store(states + o, h.to(states.dtype.element_ty), mask=smask)
            tl.store(out + o, tl.where(pad, 0.0, h).to(out.dtype.element_ty), mask=smask)
        else:
            h = tl.where(live, h_new, h)
            tl.store(out + o, h.to(out.dtype.element_ty), mask=smask)
    return h


@triton.jit
def _lrn_fwd_kernel(pqr, h0, pad_mask, out, states, h_last,
                    T, B, d, s_t, s_b, s_g, s_c,
                    HAS_H0: tl.constexpr, HAS_MASK: tl.constexpr, TANH: tl.constexpr,
                    OUTPUT_GATE: tl.constexpr, BLOCK: tl.constexpr, VEC: tl.constexpr,
                    ALIGN: tl.constexpr, STEPS: tl.constexpr, STAGES: tl.constexpr):
    b, step, t_first, ch, cmask, pqr_off, D, BD, row, h = _program_coords(T, B, d, s_b, s_c, h0, HAS_H0,
                                                                         BLOCK, VEC, ALIGN)
    # Triton's software pipeliner copies chunks into shared memory (cp.async) ahead of use:
    # chunks n+1 .. n+STAGES-2 are in flight while chunk n is computed.
    for n in tl.range(0, tl.cdiv(T, STEPS), num_stages=STAGES):
        P, Q, R, S, PAD = _load_fwd_chunk(pqr, pad_mask, t_first, step, n, T, B, b, s_t, s_g, pqr_off,
                                          cmask, HAS_MASK, OUTPUT_GATE, STEPS, ALIGN)
        h = _fwd_chunk(h, P, Q, R, S, PAD, n, t_first, step, T, BD, row, cmask, out, states,
                       HAS_MASK, TANH, OUTPUT_GATE, STEPS, ALIGN)
    tl.store(h_last + row, h.to(h_last.dtype.element_ty), mask=cmask)


@triton.jit
def _load_bwd_chunk(pqr, pad_mask, states, dout, t_last, step, t_first, n, T, B, b, BD, row,
                    s_t, s_g, pqr_off, cmask, HAS_MASK: tl.constexpr, OUTPUT_GATE: tl.constexpr,
                    STEPS: tl.constexpr, ALIGN: tl.constexpr):
    """The backward's chunk n (time walked from t_last against ``step``): p, q, r, s and the
    output gradient at t, the forward state before t (zero where t is the first step), padding flags."""
    t, live = _chunk_times(t_last, -step, n, T, STEPS)
    p, q, r, s = _load_pqr(pqr, t, s_t, s_g, pqr_off, live, cmask, OUTPUT_GATE, ALIGN)
    g = _load_rows(dout, t, BD, row, live, cmask, ALIGN)
    h_prev = _load_rows(states, t - step, BD, row, live & (t != t_first), cmask, ALIGN)
    return p, q, r, s, g, h_prev, _load_pads(pad_mask, t, live, B, b, HAS_MASK)


@triton.jit
def _bwd_chunk(dh, P, Q, R, S, G, H, PAD, h_init, n, t_last, step, t_first, T, D, BD, grad_off,
               cmask, dpqr, HAS_MASK: tl.constexpr, TANH: tl.constexpr, OUTPUT_GATE: tl.constexpr,
               STEPS: tl.constexpr, ALIGN: tl.constexpr):
    """Back-propagate through the backward's chunk n; ``dh`` is the gradient of the state after
    it and is returned for the state before it."""
    GATES: tl.constexpr = 4 if OUTPUT_GATE else 3
    for k in tl.static_range(STEPS):
        pos = n * STEPS + k
        live = pos < T
        t = t_last - step * pos
        h_prev = tl.where(t == t_first, h_init, _row(H, k))
        p, q, r, s = _row(P, k), _row(Q, k), _row(R, k), _row(S, k)
        i, f, c, _ = _cell(p, q, r, s, h_prev, TANH, OUTPUT_GATE)  # (c unused by LRN without tanh)
        di = i * (1.0 - i)
        df = f * (1.0 - f)
        da = dh + _row(G, k)  # total gradient of h_t ...
        ds = da  # (unused without OUTPUT_GATE)
        if OUTPUT_GATE:  # ... through h = o * c, o = sigmoid(s - c): ds = dh c o (1 - o) ...
            o = _sigmoid(s - c)
            ds = da * c * o * (1.0 - o)
            da = da * o - ds
        if TANH:  # ... times g'(a_t)
            da = da * (1.0 - c * c)
        dp = da * r * di
        dq = da * h_prev * df
        dr = da * i
        dh_prev = da * (f + r * di - h_prev * df)
        if HAS_MASK:  # padded: zero gradient for p, q, r; the state gradient passes unchanged
            pad = _flag(PAD, k)
            dp = tl.where(pad, 0.0, dp)
            dq = tl.where(pad, 0.0, dq)
            dr = tl.where(pad, 0.0, dr)
            ds = tl.where(pad, 0.0, ds)
            dh_prev = tl.where(pad, dh, dh_prev)
        dh = tl.where(live, dh_prev, dh)
        o = t * GATES * BD + grad_off
        smask = tl.where(live, cmask, False)  # (cmask & live is int under the interpreter)
        tl.store(dpqr + tl.multiple_of(o, ALIGN), dp.to(dpqr.dtype.element_ty), mask=smask)
        tl.store(dpqr + tl.multiple_of(o + D, ALIGN), dq.to(dpqr.dtype.element_ty), mask=smask)
        tl.store(dpqr + tl.multiple_of(o + 2 * D, ALIGN), dr.to(dpqr.dtype.element_ty), mask=smask)
        if OUTPUT_GATE:
            tl.store(dpqr + tl.multiple_of(o + 3 * D, ALIGN), ds.to(dpqr.dtype.element_ty), mask=smask)
    return dh


@triton.jit
def _lrn_bwd_kernel(pqr, h0, pad_mask, states, dout, dlast, dpqr, dh0,
                    T, B, d, s_t, s_b, s_g, s_c,
                    HAS_H0: tl.constexpr, HAS_MASK: tl.constexpr, TANH: tl.constexpr,
                    OUTPUT_GATE: tl.constexpr, BLOCK: tl.constexpr, VEC: tl.constexpr,
                    ALIGN: tl.constexpr, STEPS: tl.constexpr, STAGES: tl.constexpr):
    b, step, t_first, ch, cmask, pqr_off, D, BD, row, h_init = _program_coords(T, B, d, s_b, s_c, h0,
                                                                              HAS_H0, BLOCK, VEC, ALIGN)
    dh = tl.load(dlast + row, mask=cmask, other=0.0).to(tl.float32)  # gradient of the carried state
    GATES: tl.constexpr = 4 if OUTPUT_GATE else 3
    grad_off = b.to(tl.int64) * GATES * D + ch  # dpqr is a contiguous (T, B, GATES, D) tensor
    t_last = t_first + (T - 1) * step
    # The forward's steps last to first, pipelined as in the forward.
    for n in tl.range(0, tl.cdiv(T, STEPS), num_stages=STAGES):
        P, Q, R, S, G, H, PAD = _load_bwd_chunk(pqr, pad_mask, states, dout, t_last, step, t_first,
                                                n, T, B, b, BD, row, s_t, s_g, pqr_off, cmask,
                                                HAS_MASK, OUTPUT_GATE, STEPS, ALIGN)
        dh = _bwd_chunk(dh, P, Q, R, S, G, H, PAD, h_init, n, t_last, step, t_first, T, D, BD,
                        grad_off, cmask, dpqr, HAS_MASK, TANH, OUTPUT_GATE, STEPS, ALIGN)
    if HAS_H0:
        tl.store(dh0 + row, dh.to(dh0.dtype.element_ty), mask=cmask)


FWD_TILES, BWD_TILES = 3, 5  # (STEPS, BLOCK) tiles one LRN chunk loads: p, q, r (+ dout, state)
CHUNK_STEPS = (4, 2)  # chunk lengths the heuristic chooses from, preferred first
MAX_BUFFERED_STEPS = 16  # steps of inputs one program buffers in shared memory at most
# Steps of math in flight beyond which a longer chunk is preferred (an estimate: about one DRAM
# latency of the forward's math on an H100; not yet timed, see scripts/benchmark_kernel.py --sweep).
HIDDEN_STEPS_ENOUGH = 8


def chunk_tiles(backward: bool, output_gate: bool = False) -> int:
    """(STEPS, BLOCK) tiles one chunk of the forward (backward) kernel loads: FWD_TILES
    (BWD_TILES), plus the s tile with the output gate (oLRN)."""
    return (BWD_TILES if backward else FWD_TILES) + bool(output_gate)


@functools.lru_cache(maxsize=None)
def _device_limits(device: torch.device) -> Tuple[int, int, bool]:
    """(SM count, shared memory per SM in bytes, has cp.async) of a CUDA device."""
    props = torch.cuda.get_device_properties(device)
    smem = getattr(props, "shared_memory_per_multiprocessor", 0) or 100 * 1024
    return props.multi_processor_count, smem, (props.major, props.minor) >= (8, 0)


def launch_config(d: int, rows: int, dtype: torch.dtype, device: torch.device,
                  tiles: int = FWD_TILES) -> Tuple[int, int, int, int]:
    """(BLOCK, num_warps, STEPS, STAGES) for ``rows = B * directions`` rows of ``d`` channels on
    ``device``, for a kernel whose chunks load ``tiles`` tiles; see :func:`choose_config`."""
    if _INTERPRET:
        return min(128, triton.next_power_of_2(d)), 4, 2, 1
    return choose_config(d, rows, dtype.itemsize, tiles, *_device_limits(device))


def hidden_steps(steps: int, stages: int) -> int:
    """Steps of math a chunk's copy has to arrive in a loop pipelined with ``stages`` stages of
    ``steps``-step chunks (0 without pipelining; see the module docstring)."""
    return max(0, stages - 2) * steps


def choose_config(d: int, rows: int, itemsize: int, tiles: int, sms: int, smem_per_sm: int,
                  has_async_copy: bool) -> Tuple[int, int, int, int]:
    """The launch heuristic, for a GPU with ``sms`` SMs of ``smem_per_sm`` bytes of shared memory.

    Each thread holds 4 channels; warps per program shrink (down to one) while programs are
    fewer than four per SM or a block would exceed the channel count. The programs resident on
    an SM (all of them: one wave) share three quarters of its shared memory for chunk buffers
    (STAGES-1 per program, up to MAX_BUFFERED_STEPS steps). Among chunks of 4 and 2 steps, the
    config hides the most steps of math behind each copy (:func:`hidden_steps`; counted up to
    HIDDEN_STEPS_ENOUGH, then the longer chunk wins). When no buffering hides a step, or the GPU
    has no cp.async, chunks of 4 steps are loaded directly (STAGES=1)."""
    vec, num_warps = 4, 4
    while num_warps > 1 and (32 * vec * num_warps > triton.next_power_of_2(d)
                             or rows * triton.cdiv(d, 32 * vec * num_warps) < 4 * sms):
        num_warps //= 2
    block = 32 * vec * num_warps
    unpipelined = (block, num_warps, CHUNK_STEPS[0], 1)
    if not has_async_copy:
        return unpipelined
    programs_per_sm = triton.cdiv(rows * triton.cdiv(d, block), sms)
    buffer_bytes = (3 * smem_per_sm // 4) // programs_per_sm
    step_bytes = tiles * block * itemsize
    configs = []
    for steps in CHUNK_STEPS:
        buffers = min(MAX_BUFFERED_STEPS, buffer_bytes // step_bytes) // steps
        configs.append((block, num_warps, steps, buffers + 1))
    best = max(configs, key=lambda c: (min(hidden_steps(c[2], c[3]), HIDDEN_STEPS_ENOUGH), c[2]))
    return best if hidden_steps(best[2], best[3]) > 0 else unpipelined


def _kernel_flags(config: Tuple[int, int, int, int], pqr: Tensor, d: int, **flags) -> dict:
    """Launch keywords for a (BLOCK, num_warps, STEPS, STAGES) config over ``pqr`` with ``d``
    channels per direction. ALIGN: the largest power of two up to VEC (channels per thread)
    dividing d and pqr's strides, when its channels are contiguous (else 1)."""
    block, num_warps, steps, stages = config
    vec = max(1, block // (32 * num_warps))
    s_t, s_b, s_g, s_c = pqr.stride()
    align = math.gcd(vec, d, s_t, s_b, s_g) if s_c == 1 else 1
    return dict(flags, BLOCK=block, VEC=vec, ALIGN=align, STEPS=steps, STAGES=stages,
                num_warps=num_warps, enable_fp_fusion=True)  # FMAs (Triton 3.10 turns the default off)


class LRNRecurrenceFused(torch.autograd.Function):
    """autograd.Function for the fused recurrence; see :func:`lrn_recurrence_fused`."""

    @staticmethod
    def forward(ctx, pqr: Tensor, h0: Optional[Tensor], mask: Optional[Tensor], activation: str,
                bidirectional: bool, output_gate: bool, config: Optional[Tuple[int, int, int, int]]
                ) -> Tuple[Tensor, Tensor]:
        T, B, _, D = pqr.shape
        ndir = 2 if bidirectional else 1
        d = D // ndir
        fwd_config = config or launch_config(d, B * ndir, pqr.dtype, pqr.device,
                                             chunk_tiles(backward=False, output_gate=output_gate))
        h0 = None if h0 is None else h0.contiguous()
        pad = None if mask is None else mask.contiguous().to(torch.int32)  # 4-byte flags: cp.async-able
        out = _empty((T, B, D), dtype=pqr.dtype, device=pqr.device)
        states = out if pad is None else _empty((T, B, D), dtype=pqr.dtype, device=pqr.device)
        h_last = _empty((B, D), dtype=pqr.dtype, device=pqr.device)
        flags = dict(HAS_H0=h0 is not None, HAS_MASK=pad is not None, TANH=activation == "tanh",
                     OUTPUT_GATE=bool(output_gate))
        grid = (B, ndir, triton.cdiv(d, fwd_config[0]))
        _lrn_fwd_kernel[grid](pqr, h0, pad, out, states, h_last, T, B, d, *pqr.stride(),
                              **_kernel_flags(fwd_config, pqr, d, **flags))
        ctx.save_for_backward(pqr, h0, pad, states)
        ctx.grid, ctx.d = grid, d
        bwd_config = config or launch_config(d, B * ndir, pqr.dtype, pqr.device,
                                             chunk_tiles(backward=True, output_gate=output_gate))
        ctx.flags = _kernel_flags(bwd_config, pqr, d, **flags)
        return out, h_last

    @staticmethod
    def backward(ctx, grad_out: Tensor, grad_last: Tensor):
        pqr, h0, pad, states = ctx.saved_tensors
        T, B = pqr.shape[:2]
        dpqr = _empty(pqr.shape, dtype=pqr.dtype, device=pqr.device)  # contiguous (T, B, gates, D)
        dh0 = None if h0 is None else _empty(h0.shape, dtype=h0.dtype, device=h0.device)
        _lrn_bwd_kernel[ctx.grid](pqr, h0, pad, states, grad_out.contiguous(), grad_last.contiguous(),
                                  dpqr, dh0, T, B, ctx.d, *pqr.stride(), **ctx.flags)
        return dpqr, dh0, None, None, None, None, None


def lrn_recurrence_fused(pqr: Tensor, h0: Optional[Tensor] = None, mask: Optional[Tensor] = None,
                         activation: str = "identity", bidirectional: bool = False,
                         output_gate: bool = False, *,
                         config: Optional[Tuple[int, int, int, int]] = None
                         ) -> Tuple[Tensor, Tensor]:
    """LRN (oLRN with ``output_gate``) recurrence with fused Triton kernels.

    pqr ``(T, B, 3, D)`` (``(T, B, 4, D)`` with ``output_gate``) fp32/fp16/bf16 (any strides),
    h0 ``(B, D)`` or None, mask ``(T, B)`` bool (True = padding) or None. Returns
    ``out (T, B, D)`` and ``h_last (B, D)`` in pqr's dtype (math in fp32).
    ``config = (BLOCK, num_warps, STEPS, STAGES)`` overrides the launch heuristic of both
    kernels (for tuning); BLOCK and STEPS are powers of two.
    """
    check_recurrence_args(pqr, h0, mask, activation, bidirectional, output_gate)
    if pqr.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"the fused LRN kernels take fp32, fp16 or bf16, got {pqr.dtype}")
    return LRNRecurrenceFused.apply(pqr, h0, mask, activation, bidirectional, bool(output_gate), config)
