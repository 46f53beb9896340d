"""The fused LRN kernels' launch heuristic, in plain Python: no Triton, no GPU needed.

A launch of ``_lrn_fwd_kernel`` / ``_lrn_bwd_kernel`` (:mod:`fairseq_lrn.ops.triton_lrn`) runs
one program per (batch row, direction, block of BLOCK channels); each program walks time in
chunks of STEPS steps, copied ahead into STAGES-1 shared-memory buffers by Triton's software
pipeliner (see that module's docstring: a copy has ``(STAGES-2) * STEPS`` steps of math to
arrive). This module picks ``LaunchConfig(block, num_warps, steps, stages)`` from the shape and
the GPU's :class:`DeviceLimits`; only :func:`device_limits` asks torch about a CUDA device.
"""

import functools
from typing import NamedTuple

import torch

#: The dtypes the fused kernels take (``auto`` picks them only for these).
FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
FWD_TILES, BWD_TILES = 3, 5  # (STEPS, BLOCK) tiles one LRN chunk loads: p, q, r (+ dout, state)
CHUNK_STEPS = (4, 2)  # chunk lengths the heuristic chooses from, preferred first
MAX_BUFFERED_STEPS = 16  # steps of inputs one program buffers in shared memory at most
# Steps of math in flight beyond which a longer chunk is preferred (an estimate: about one DRAM
# latency of the forward's math on an H100; not yet timed, see scripts/benchmark_kernel.py --sweep).
HIDDEN_STEPS_ENOUGH = 8
CHANNELS_PER_THREAD = 4  # the heuristic's VEC: each thread holds 4 channels of every step
WARP_SIZE = 32


class LaunchConfig(NamedTuple):
    """How one fused kernel is launched (a tuple, so ``(BLOCK, num_warps, STEPS, STAGES)``
    literals compare equal and unpack as before).

    block: channels per program (a power of two); num_warps: warps per program; steps: time
    steps per chunk (a power of two); stages: Triton pipeline stages (1 = no pipelining:
    each chunk is loaded, then used)."""

    block: int
    num_warps: int
    steps: int
    stages: int


class DeviceLimits(NamedTuple):
    """What the heuristic needs to know of a GPU: SM count, shared memory per SM in bytes, and
    whether it has cp.async (sm_80 and later)."""

    sms: int
    smem_per_sm: int
    has_async_copy: bool


def _next_power_of_2(n: int) -> int:
    """The smallest power of two >= n (n >= 1), as ``triton.next_power_of_2``."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def _cdiv(a: int, b: int) -> int:
    """ceil(a / b) for positive integers, as ``triton.cdiv``."""
    return -(-a // b)


def chunk_tiles(backward: bool, output_gate: bool = False) -> int:
    """(STEPS, BLOCK) tiles one chunk of the forward (backward) kernel loads: FWD_TILES
    (BWD_TILES), plus the s tile with the output gate (oLRN)."""
    return (BWD_TILES if backward else FWD_TILES) + bool(output_gate)


def hidden_steps(steps: int, stages: int) -> int:
    """Steps of math a chunk's copy has to arrive in a loop pipelined with ``stages`` stages of
    ``steps``-step chunks (0 without pipelining; see the module docstring)."""
    return max(0, stages - 2) * steps


def _warps_per_program(d: int, rows: int, sms: int) -> int:
    """Warps per program: 4, halved (down to one) while a block would exceed the channel count
    or the programs ``rows * ceil(d / block)`` are fewer than four per SM."""
    num_warps = 4
    while num_warps > 1:
        block = WARP_SIZE * CHANNELS_PER_THREAD * num_warps
        if block <= _next_power_of_2(d) and rows * _cdiv(d, block) >= 4 * sms:
            break
        num_warps //= 2
    return num_warps


def _pipelined_configs(block: int, num_warps: int, rows: int, d: int, itemsize: int, tiles: int,
                       limits: DeviceLimits):
    """One pipelined LaunchConfig per chunk length in CHUNK_STEPS: as many buffers (STAGES-1)
    as fit the program's share of three quarters of an SM's shared memory when every program is
    resident (one wave), up to MAX_BUFFERED_STEPS steps."""
    programs_per_sm = _cdiv(rows * _cdiv(d, block), limits.sms)
    buffer_bytes = (3 * limits.smem_per_sm // 4) // programs_per_sm
    step_bytes = tiles * block * itemsize
    for steps in CHUNK_STEPS:
        buffers = min(MAX_BUFFERED_STEPS, buffer_bytes // step_bytes) // steps
        yield LaunchConfig(block, num_warps, steps, buffers + 1)


def choose_config(d: int, rows: int, *, itemsize: int, tiles: int, limits: DeviceLimits) -> LaunchConfig:
    """The launch heuristic for ``rows = B * directions`` rows of ``d`` channels in a dtype of
    ``itemsize`` bytes, for a kernel whose chunks load ``tiles`` tiles, on a GPU with ``limits``.

    Each thread holds 4 channels; warps per program shrink (down to one) while programs are
    fewer than four per SM or a block would exceed the channel count. The programs resident on
    an SM (all of them: one wave) share three quarters of its shared memory for chunk buffers
    (STAGES-1 per program, up to MAX_BUFFERED_STEPS steps). Among chunks of 4 and 2 steps, the
    config hides the most steps of math behind each copy (:func:`hidden_steps`; counted up to
    HIDDEN_STEPS_ENOUGH, then the longer chunk wins). When no buffering hides a step, or the GPU
    has no cp.async, chunks of 4 steps are loaded directly (STAGES=1)."""
    num_warps = _warps_per_program(d, rows, limits.sms)
    block = WARP_SIZE * CHANNELS_PER_THREAD * num_warps
    unpipelined = LaunchConfig(block, num_warps, CHUNK_STEPS[0], 1)
    if not limits.has_async_copy:
        return unpipelined
    configs = _pipelined_configs(block, num_warps, rows, d, itemsize, tiles, limits)
    best = max(configs, key=lambda c: (min(hidden_steps(c.steps, c.stages), HIDDEN_STEPS_ENOUGH), c.steps))
    return best if hidden_steps(best.steps, best.stages) > 0 else unpipelined


def interpreter_config(d: int) -> LaunchConfig:
    """The config under Triton's interpreter (TRITON_INTERPRET=1): one block of up to 128
    channels, 2-step chunks, no pipelining."""
    return LaunchConfig(min(128, _next_power_of_2(d)), 4, 2, 1)


@functools.lru_cache(maxsize=None)
def device_limits(device: torch.device) -> DeviceLimits:
    """DeviceLimits of a CUDA device (shared memory defaults to 100 KB when torch does not say)."""
    props = torch.cuda.get_device_properties(device)
    smem = getattr(props, "shared_memory_per_multiprocessor", 0) or 100 * 1024
    return DeviceLimits(props.multi_processor_count, smem, (props.major, props.minor) >= (8, 0))


def launch_config(d: int, rows: int, *, dtype: torch.dtype, device: torch.device, tiles: int = FWD_TILES,
                  interpret: bool = False) -> LaunchConfig:
    """LaunchConfig for ``rows = B * directions`` rows of ``d`` channels of ``dtype`` on
    ``device``, for a kernel whose chunks load ``tiles`` tiles: :func:`choose_config` for the
    device, or :func:`interpreter_config` when the kernels run under Triton's interpreter."""
    if interpret:
        return interpreter_config(d)
    return choose_config(d, rows, itemsize=dtype.itemsize, tiles=tiles, limits=device_limits(device))
