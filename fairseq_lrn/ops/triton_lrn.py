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
The launch heuristic (BLOCK, num_warps, STEPS, STAGES per kernel) is plain Python, in
:mod:`fairseq_lrn.ops.launch_config`; the host code here launches the kernels with keywords.

Same conventions as :mod:`fairseq_lrn.ops.reference`. Runs on CUDA tensors, or on CPU tensors
under ``TRITON_INTERPRET=1`` (slow; for tests).
"""

import math
import os
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor
from triton.language.extra.cuda import libdevice

from .launch_config import FUSED_DTYPES, LaunchConfig, chunk_tiles, launch_config
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


def _kernel_flags(config: LaunchConfig, pqr: Tensor, d: int, *, has_h0: bool, has_mask: bool,
                  tanh: bool, output_gate: bool) -> dict:
    """Launch keywords of either kernel (its constexprs and Triton's launch options) for
    ``config`` over ``pqr`` with ``d`` channels per direction. VEC: channels per thread;
    ALIGN: the largest power of two up to VEC dividing d and pqr's strides, when its channels
    are contiguous (else 1)."""
    vec = max(1, config.block // (32 * config.num_warps))
    s_t, s_b, s_g, s_c = pqr.stride()
    align = math.gcd(vec, d, s_t, s_b, s_g) if s_c == 1 else 1
    return dict(HAS_H0=has_h0, HAS_MASK=has_mask, TANH=tanh, OUTPUT_GATE=output_gate,
                BLOCK=config.block, VEC=vec, ALIGN=align, STEPS=config.steps, STAGES=config.stages,
                num_warps=config.num_warps,
                enable_fp_fusion=True)  # FMAs (Triton 3.10 turns the default off)


def _pqr_sizes(pqr: Tensor, d: int) -> dict:
    """The kernels' size arguments: T, B, channels per direction d, and pqr's strides
    ``(s_t, s_b, s_g, s_c)`` over (time, batch, gate, channel)."""
    s_t, s_b, s_g, s_c = pqr.stride()
    return dict(T=pqr.size(0), B=pqr.size(1), d=d, s_t=s_t, s_b=s_b, s_g=s_g, s_c=s_c)


def _grid(batch: int, directions: int, d: int, config: LaunchConfig) -> Tuple[int, int, int]:
    """One program per (batch row, direction, block of ``config.block`` channels)."""
    return batch, directions, triton.cdiv(d, config.block)


@dataclass(frozen=True)
class FusedOptions:
    """The non-tensor arguments of :class:`LRNRecurrenceFused`: the cell (``activation``, the
    oLRN ``output_gate``), whether channels ``[D/2, D)`` walk time backwards
    (``bidirectional``), and the LaunchConfig of both kernels (None: the launch heuristic)."""

    activation: str = "identity"
    bidirectional: bool = False
    output_gate: bool = False
    config: Optional[LaunchConfig] = None

    def launch(self, d: int, rows: int, pqr: Tensor, backward: bool) -> LaunchConfig:
        """The forward's (``backward``: the backward's) LaunchConfig for ``rows`` rows of ``d``
        channels of ``pqr``."""
        if self.config is not None:
            return self.config
        return launch_config(d, rows, dtype=pqr.dtype, device=pqr.device,
                             tiles=chunk_tiles(backward=backward, output_gate=self.output_gate),
                             interpret=_INTERPRET)


class LRNRecurrenceFused(torch.autograd.Function):
    """autograd.Function for the fused recurrence; see :func:`lrn_recurrence_fused`.

    forward: pqr ``(T, B, G, D)``, h0 ``(B, D)`` or None, mask ``(T, B)`` bool or None,
    :class:`FusedOptions` -> ``out (T, B, D)``, ``h_last (B, D)``."""

    @staticmethod
    def forward(ctx, pqr: Tensor, h0: Optional[Tensor], mask: Optional[Tensor],
                options: FusedOptions) -> Tuple[Tensor, Tensor]:
        T, B, _, D = pqr.shape
        ndir = 2 if options.bidirectional else 1
        d = D // ndir
        h0 = None if h0 is None else h0.contiguous()
        pad = None if mask is None else mask.contiguous().to(torch.int32)  # 4-byte flags: cp.async-able
        out = _empty((T, B, D), dtype=pqr.dtype, device=pqr.device)
        states = out if pad is None else _empty((T, B, D), dtype=pqr.dtype, device=pqr.device)
        h_last = _empty((B, D), dtype=pqr.dtype, device=pqr.device)
        flags = dict(has_h0=h0 is not None, has_mask=pad is not None,
                     tanh=options.activation == "tanh", output_gate=options.output_gate)
        fwd_config = options.launch(d, B * ndir, pqr, backward=False)
        _lrn_fwd_kernel[_grid(B, ndir, d, fwd_config)](
            pqr=pqr, h0=h0, pad_mask=pad, out=out, states=states, h_last=h_last, **_pqr_sizes(pqr, d),
            **_kernel_flags(fwd_config, pqr, d, **flags))
        ctx.save_for_backward(pqr, h0, pad, states)
        bwd_config = options.launch(d, B * ndir, pqr, backward=True)
        ctx.grid, ctx.d = _grid(B, ndir, d, bwd_config), d
        ctx.flags = _kernel_flags(bwd_config, pqr, d, **flags)
        return out, h_last

    @staticmethod
    def backward(ctx, grad_out: Tensor, grad_last: Tensor):
        pqr, h0, pad, states = ctx.saved_tensors
        dpqr = _empty(pqr.shape, dtype=pqr.dtype, device=pqr.device)  # contiguous (T, B, gates, D)
        dh0 = None if h0 is None else _empty(h0.shape, dtype=h0.dtype, device=h0.device)
        _lrn_bwd_kernel[ctx.grid](
            pqr=pqr, h0=h0, pad_mask=pad, states=states, dout=grad_out.contiguous(),
            dlast=grad_last.contiguous(), dpqr=dpqr, dh0=dh0, **_pqr_sizes(pqr, ctx.d), **ctx.flags)
        return dpqr, dh0, None, None


def kernel_launch(direction: str, *, T: int, B: int, d: int, dtype: torch.dtype, config: LaunchConfig,
                  mask: bool, bidirectional: bool = False, output_gate: bool = False, tanh: bool = False):
    """``(kernel, args, flags)``: the fused forward (``direction="fwd"``) or backward (``"bwd"``)
    kernel and what :class:`LRNRecurrenceFused` passes it at this shape (h0 given, ``mask``: a
    padding mask), so that ``kernel[grid](*args, **flags)`` is that launch. The tensors are empty
    CPU tensors (only their dtypes, alignment and strides matter): for compiling a kernel offline
    (:mod:`fairseq_lrn.ops.kernel_inspection`)."""
    D = 2 * d if bidirectional else d
    pqr = torch.empty(T, B, 4 if output_gate else 3, D, dtype=dtype)
    seq, state = torch.empty(T, B, D, dtype=dtype), torch.empty(B, D, dtype=dtype)
    pad = torch.empty(T, B, dtype=torch.int32) if mask else None
    h0 = torch.empty(B, D, dtype=dtype)
    sizes = (T, B, d, *pqr.stride())
    flags = _kernel_flags(config, pqr, d, has_h0=True, has_mask=mask, tanh=tanh, output_gate=output_gate)
    if direction == "fwd":  # pqr, h0, pad, out, states, h_last
        return _lrn_fwd_kernel, (pqr, h0, pad, seq, torch.empty_like(seq) if mask else seq, state, *sizes), flags
    # pqr, h0, pad, states, dout, dlast, dpqr, dh0
    args = (pqr, h0, pad, seq, torch.empty_like(seq), state, torch.empty_like(pqr), h0, *sizes)
    return _lrn_bwd_kernel, args, flags


def lrn_recurrence_fused(pqr: Tensor, h0: Optional[Tensor] = None, mask: Optional[Tensor] = None,
                         activation: str = "identity", bidirectional: bool = False,
                         output_gate: bool = False, *,
                         config: Optional[Tuple[int, int, int, int]] = None
                         ) -> Tuple[Tensor, Tensor]:
    """LRN (oLRN with ``output_gate``) recurrence with fused Triton kernels.

    pqr ``(T, B, 3, D)`` (``(T, B, 4, D)`` with ``output_gate``) fp32/fp16/bf16 (any strides),
    h0 ``(B, D)`` or None, mask ``(T, B)`` bool (True = padding) or None. Returns
    ``out (T, B, D)`` and ``h_last (B, D)`` in pqr's dtype (math in fp32).
    ``config``, a :class:`~fairseq_lrn.ops.launch_config.LaunchConfig` or a
    ``(BLOCK, num_warps, STEPS, STAGES)`` tuple, overrides the launch heuristic of both
    kernels (for tuning); BLOCK and STEPS are powers of two.
    """
    check_recurrence_args(pqr, h0, mask, activation, bidirectional, output_gate)
    if pqr.dtype not in FUSED_DTYPES:
        raise TypeError(f"the fused LRN kernels take fp32, fp16 or bf16, got {pqr.dtype}")
    if pqr.size(0) == 0:  # nothing to launch: no steps, the state stays h0
        T, B, _, D = pqr.shape
        return pqr.new_zeros(0, B, D), (pqr.new_zeros(B, D) if h0 is None else h0)
    options = FusedOptions(activation, bool(bidirectional), bool(output_gate),
                           None if config is None else LaunchConfig(*config))
    return LRNRecurrenceFused.apply(pqr, h0, mask, options)
