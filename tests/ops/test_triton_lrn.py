"""Fused Triton kernels against the reference: outputs and gradients of every path, LRN and
oLRN (``output_gate``).

Runs compiled on CUDA when a GPU is present, else under the Triton interpreter
(TRITON_INTERPRET=1, set here before Triton is imported; slow, so shapes are tiny).
Every tensor the kernels write is allocated NaN-filled, so an unwritten element fails.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

import functools  # noqa: E402

import pytest  # noqa: E402

pytest.importorskip("triton", reason="the fused LRN kernels need Triton")

from fairseq_lrn.modules.lrn import LRNLayer  # noqa: E402
from fairseq_lrn.ops import lrn_recurrence, lrn_recurrence_reference, triton_lrn  # noqa: E402
from fairseq_lrn.ops.launch_config import BWD_TILES, FWD_TILES  # noqa: E402
from fairseq_lrn.ops.triton_lrn import lrn_recurrence_fused  # noqa: E402

DEVICE = "cpu" if os.environ.get("TRITON_INTERPRET") == "1" else "cuda"
TOL = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 5e-2}


@pytest.fixture(autouse=True)
def nan_filled_outputs(monkeypatch):
    monkeypatch.setattr(triton_lrn, "_empty", functools.partial(torch.full, fill_value=float("nan")))


def make_mask(T, B, padding):
    """(T, B) bool, True = pad. Ragged lengths [T, T//2, 0, random...] for left/right padding;
    "random" pads arbitrary steps (holes mid-sequence)."""
    if padding is None:
        return None
    if padding == "random":
        return torch.rand(T, B, device=DEVICE) < 0.4
    lengths = torch.cat([torch.tensor([T, T // 2, 0]), torch.randint(0, T + 1, (max(B - 3, 0),))])[:B]
    steps = torch.arange(T).unsqueeze(1)
    mask = steps < (T - lengths) if padding == "left" else steps >= lengths
    return mask.to(DEVICE)


def check(T, B, D, activation="identity", bidirectional=False, padding=None, with_h0=True,
          dtype=torch.float32, pqr_view=None, output_gate=False, **fused_kwargs):
    """Run fused (in ``dtype``) and reference (float64, same rounded inputs); compare outputs
    and the gradients of pqr and h0 under random upstream gradients for out and h_last."""
    pqr = torch.randn(T, B, 4 if output_gate else 3, D, device=DEVICE).to(dtype)
    if pqr_view is not None:
        pqr = pqr_view(pqr)
        T = pqr.size(0)
    h0 = torch.randn(B, D, device=DEVICE).to(dtype) if with_h0 else None
    mask = make_mask(T, B, padding)
    grads = [torch.randn(T, B, D, device=DEVICE).to(dtype), torch.randn(B, D, device=DEVICE).to(dtype)]

    def run(fn, cast):
        x = cast(pqr).requires_grad_()
        h = None if h0 is None else cast(h0).requires_grad_()
        out, last = fn(x, h, mask, activation, bidirectional, output_gate)
        leaves = [x] if h is None else [x, h]
        return [out, last, *torch.autograd.grad([out, last], leaves, [cast(g) for g in grads])]

    fused = run(functools.partial(lrn_recurrence_fused, **fused_kwargs), lambda t: t.detach())
    ref = run(lrn_recurrence_reference, lambda t: t.detach().double())
    tol = TOL[dtype]
    for name, a, b in zip(["out", "h_last", "grad pqr", "grad h0"], fused, ref):
        assert a.dtype == dtype, name
        torch.testing.assert_close(a.double(), b, rtol=tol, atol=tol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("output_gate", [False, True])
@pytest.mark.parametrize("T, B, D", [(1, 1, 4), (6, 3, 10)])
@pytest.mark.parametrize("activation", ["identity", "tanh"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("padding", [None, "left", "right"])
def test_matches_reference(T, B, D, activation, bidirectional, padding, output_gate):
    check(T, B, D, activation, bidirectional, padding, output_gate=output_gate)


@pytest.mark.parametrize("output_gate", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_several_channel_blocks_with_ragged_tail(bidirectional, output_gate):
    # BLOCK=16 over d=37: three blocks per direction, the last one partly masked.
    check(5, 2, 74 if bidirectional else 37, "tanh", bidirectional, "random", output_gate=output_gate,
          config=(16, 1, 2, 1))


@pytest.mark.parametrize("output_gate", [False, True])
@pytest.mark.parametrize("steps", [1, 4])
@pytest.mark.parametrize("T", [3, 4, 9])
def test_chunk_boundaries(steps, T, output_gate):
    # Time is walked in chunks of STEPS steps, copied up to STAGES-1 = 2 chunks ahead when compiled:
    # T shorter than a chunk, exactly one chunk, and three chunks, the last one partial (T=9 over
    # STEPS=4): fewer chunks than the pipeline holds, and prefetches past the end.
    check(T, 2, 6, "tanh", True, "random", output_gate=output_gate, config=(4, 1, steps, 3))


@pytest.mark.parametrize("output_gate", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_channels_aligned_to_two(dtype, output_gate):
    # 2 channels per thread (BLOCK=64, one warp) over d=6: offsets are declared multiples of 2
    # only (ALIGN=2); channels 6..63 of the block are masked; 2 directions.
    check(7, 3, 12, "identity", True, "right", dtype=dtype, output_gate=output_gate, config=(64, 1, 2, 3))


@pytest.mark.parametrize("output_gate", [False, True])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_half_precision(dtype, activation, output_gate):
    check(5, 3, 8, activation, True, "left", dtype=dtype, output_gate=output_gate)


@pytest.mark.parametrize("output_gate", [False, True])
def test_without_h0(output_gate):
    check(4, 2, 6, "tanh", True, "right", with_h0=False, output_gate=output_gate)


@pytest.mark.parametrize("output_gate", [False, True])
@pytest.mark.parametrize("view", ["channels_strided", "time_sliced"])
def test_non_contiguous_pqr(view, output_gate):
    views = {"channels_strided": lambda x: x.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2),
             "time_sliced": lambda x: x[::2]}
    check(6, 2, 6, "identity", True, "left", pqr_view=views[view], output_gate=output_gate)


@pytest.mark.parametrize("output_gate", [False, True])
def test_only_h_last_used(output_gate):
    pqr = torch.randn(4, 2, 4 if output_gate else 3, 6, device=DEVICE, requires_grad=True)
    h0 = torch.randn(2, 6, device=DEVICE, requires_grad=True)
    mask = make_mask(4, 2, "right")
    grads = []
    for fn in (lrn_recurrence_fused, lrn_recurrence_reference):
        _, last = fn(pqr, h0, mask, "tanh", True, output_gate)
        grads.append(torch.autograd.grad(last.square().sum(), [pqr, h0]))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("output_gate", [False, True])
def test_dispatcher_runs_fused(output_gate):
    pqr = torch.randn(3, 2, 4 if output_gate else 3, 4, device=DEVICE)
    mask = make_mask(3, 2, "left")
    out, last = lrn_recurrence(pqr, None, mask, "identity", True, impl="fused", output_gate=output_gate)
    ref_out, ref_last = lrn_recurrence_reference(pqr, None, mask, "identity", True, output_gate)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last, ref_last, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("output_gate", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layer_under_autocast(bidirectional, output_gate):
    # fairseq's --amp (and torch.autocast) runs the projection in half precision, so the fused
    # recurrence gets half-precision pqr (bf16 on CPU, fp16 on CUDA) next to an fp32 h0 made
    # outside autocast. The same layer run with the CPU path and the reference must agree, in
    # the same dtypes.
    dtype = torch.float16 if DEVICE == "cuda" else torch.bfloat16
    torch.manual_seed(0)
    layers = {impl: LRNLayer(6, 5, bidirectional, "tanh", impl=impl, output_gate=output_gate).to(DEVICE)
              for impl in ("fused", "cpu", "reference")}
    for impl in ("cpu", "reference"):
        layers[impl].load_state_dict(layers["fused"].state_dict())
    D = layers["fused"].output_size
    x, h0, mask = torch.randn(5, 3, 6, device=DEVICE), torch.randn(3, D, device=DEVICE), make_mask(5, 3, "right")
    results = {}
    for impl, layer in layers.items():
        xi, hi = x.clone().requires_grad_(), h0.clone().requires_grad_()
        with torch.autocast(DEVICE, dtype=dtype):
            out, last = layer(xi, hi, mask)
        loss = out.float().square().sum() + (last.float() * torch.arange(D, device=DEVICE)).sum()
        results[impl] = [out, last, *torch.autograd.grad(loss, [xi, hi, layer.proj.weight, layer.proj.bias])]
    names = ["out", "h_last", "grad x", "grad h0", "grad W", "grad b"]
    for impl in ("fused", "cpu"):
        for name, a, b in zip(names, results[impl], results["reference"]):
            assert a.dtype == b.dtype, f"{impl} {name}"
            torch.testing.assert_close(a.float(), b.float(), rtol=5e-2, atol=5e-2,
                                       msg=lambda m: f"{impl} {name}: {m}")
    assert results["fused"][0].dtype == dtype and results["fused"][3].dtype == torch.float32


@pytest.mark.parametrize("output_gate", [False, True])
def test_fused_launches_size_buffers_for_their_tiles(monkeypatch, output_gate):
    asked = []
    launch_config = triton_lrn.launch_config

    def recording(d, rows, **kwargs):
        asked.append(kwargs["tiles"])
        return launch_config(d, rows, **kwargs)

    monkeypatch.setattr(triton_lrn, "launch_config", recording)
    pqr = torch.randn(3, 2, 4 if output_gate else 3, 4, device=DEVICE, requires_grad=True)
    lrn_recurrence_fused(pqr, output_gate=output_gate)[0].sum().backward()
    assert asked == [FWD_TILES + output_gate, BWD_TILES + output_gate]


def test_an_empty_sequence_returns_no_steps_and_the_initial_state():
    h0 = torch.randn(2, 8, device=DEVICE)
    for state in (h0, None):
        out, last = lrn_recurrence_fused(torch.randn(0, 2, 4, 8, device=DEVICE), state, None, "tanh",
                                         True, output_gate=True)
        assert out.shape == (0, 2, 8)
        torch.testing.assert_close(last, torch.zeros_like(h0) if state is None else h0)
