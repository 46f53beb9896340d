"""The fused kernels' launch heuristic (:mod:`fairseq_lrn.ops.launch_config`): plain Python, so
these run without Triton and without a GPU."""

import os
import subprocess
import sys

import pytest
import torch

from fairseq_lrn.ops import launch_config as lc
from fairseq_lrn.ops.launch_config import DeviceLimits, LaunchConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GPU_LIMITS = {"h100": (132, 228 * 1024), "a100": (108, 164 * 1024), "a10": (72, 100 * 1024)}


def choose(d, B, itemsize, tiles, sms, smem, has_async_copy):
    """choose_config for a GPU of ``sms`` SMs with ``smem`` bytes of shared memory each."""
    return lc.choose_config(d, B, itemsize=itemsize, tiles=tiles,
                            limits=DeviceLimits(sms, smem, has_async_copy))


@pytest.mark.parametrize("gpu", sorted(GPU_LIMITS))
@pytest.mark.parametrize("B, d, itemsize", [(128, 1024, 4), (128, 1024, 2), (32, 512, 4), (512, 2048, 2)])
def test_launch_heuristic_fits_shared_memory_and_hides_latency(gpu, B, d, itemsize):
    sms, smem = GPU_LIMITS[gpu]
    # LRN's forward and backward tiles, then oLRN's (one more: the s tile)
    all_tiles = [lc.chunk_tiles(backward, output_gate) for output_gate in (False, True)
                 for backward in (False, True)]
    assert all_tiles == [lc.FWD_TILES, lc.BWD_TILES, lc.FWD_TILES + 1, lc.BWD_TILES + 1]
    for tiles in all_tiles:
        block, num_warps, steps, stages = choose(d, B, itemsize, tiles, sms, smem, True)
        assert block == 4 * 32 * num_warps and steps in lc.CHUNK_STEPS
        # pipelined only where a copy gets steps of math to arrive (STAGES=2 would hide none)
        assert stages == 1 or lc.hidden_steps(steps, stages) > 0, (tiles, steps, stages)
        per_sm = -(-B * -(-d // block) // sms)
        buffered_steps = (stages - 1) * steps
        assert buffered_steps <= lc.MAX_BUFFERED_STEPS
        assert per_sm * buffered_steps * tiles * block * itemsize <= 3 * smem // 4, (tiles, steps, stages)
    # without cp.async (before sm_80) chunks are loaded, then used
    assert choose(d, B, itemsize, 3, sms, smem, False)[3] == 1


def test_launch_heuristic_shortens_chunks_before_giving_up_pipelining():
    # A100, fp32 backward at B=128, d=1024: one 4-step chunk per program fits, two do not, so
    # 2-step chunks are double-buffered (2 steps in flight) rather than none.
    config = choose(1024, 128, 4, lc.BWD_TILES, 108, 164 * 1024, True)
    assert config == (256, 2, 2, 3) and lc.hidden_steps(*config[2:]) == 2
    # A10, bf16 backward at the same size: not even two 2-step chunks fit: no pipelining
    assert choose(1024, 128, 2, lc.BWD_TILES, 72, 100 * 1024, True)[2:] == (4, 1)
    # H100, bf16: 4-step chunks, 12 steps in flight
    config = choose(1024, 128, 2, lc.FWD_TILES, 132, 228 * 1024, True)
    assert config == (128, 1, 4, 5) and lc.hidden_steps(*config[2:]) == 12


def test_launch_heuristic_counts_the_output_gate_tile():
    # H100, fp32 forward at B=128, d=1024: LRN's 3 tiles per step fit three 4-step chunks (8 steps
    # in flight); oLRN's 4 tiles fit only two, so 2-step chunks are buffered five deep instead.
    args = (1024, 128, 4)
    limits = (132, 228 * 1024, True)
    lrn = choose(*args, lc.chunk_tiles(False, False), *limits)
    olrn = choose(*args, lc.chunk_tiles(False, True), *limits)
    assert lrn == (128, 1, 4, 4) and olrn == (128, 1, 2, 6)


def test_launch_heuristic_shrinks_warps_for_few_channels_or_programs():
    # d=100: a 4-warp block (512 channels) exceeds next_power_of_2(100) = 128 channels: one warp.
    assert choose(100, 4096, 4, lc.FWD_TILES, 132, 228 * 1024, True).num_warps == 1
    # d=4096 at B=512: 8 blocks of 512 channels per row, 4096 programs >= 4 per SM: 4 warps.
    assert choose(4096, 512, 2, lc.FWD_TILES, 132, 228 * 1024, True).block == 512


def test_config_fields_are_named():
    config = choose(1024, 128, 2, lc.FWD_TILES, 132, 228 * 1024, True)
    assert isinstance(config, LaunchConfig)
    assert (config.block, config.num_warps, config.steps, config.stages) == (128, 1, 4, 5)


def test_launch_config_under_the_interpreter_asks_no_device(monkeypatch):
    def no_device(device):
        raise AssertionError("the interpreter's config must not query a CUDA device")

    monkeypatch.setattr(lc, "device_limits", no_device)
    config = lc.launch_config(37, 2, dtype=torch.float32, device=torch.device("cpu"), interpret=True)
    assert config == lc.interpreter_config(37) == (64, 4, 2, 1)
    assert lc.interpreter_config(1000).block == 128


def test_launch_config_uses_the_device_limits(monkeypatch):
    asked = []

    def a100(device):
        asked.append(device)
        return DeviceLimits(108, 164 * 1024, True)

    monkeypatch.setattr(lc, "device_limits", a100)
    device = torch.device("cuda", 0)
    config = lc.launch_config(1024, 128, dtype=torch.float32, device=device, tiles=lc.BWD_TILES)
    assert asked == [device] and config == (256, 2, 2, 3)


@pytest.mark.parametrize("n, power", [(1, 1), (2, 2), (3, 4), (4, 4), (5, 8), (100, 128), (128, 128)])
def test_next_power_of_2(n, power):
    assert lc._next_power_of_2(n) == power


def test_imports_without_triton_or_fairseq():
    # A None entry in sys.modules makes `import triton` raise ImportError, as if not installed.
    code = ("import sys; sys.modules['triton'] = sys.modules['fairseq'] = None; "
            "import fairseq_lrn.ops.launch_config, fairseq_lrn.ops; "
            "assert 'fairseq_lrn.ops.triton_lrn' not in sys.modules")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
