"""``scripts/benchmark_kernel.py``'s measurements: the :class:`Timer`, the copy bandwidth, the
recurrence (fused / cpu / reference) and layer (LRN, projection GEMM, ``nn.LSTM`` / ``nn.GRU``)
timings of one config, the grid of configs, and ``--sweep``'s fused launch configs. Needs only
torch (+ Triton for the fused kernels): no fairseq."""

import statistics
import sys
import time

import torch
from torch import nn

from fairseq_lrn.modules import LRN
from fairseq_lrn.ops import lrn_recurrence, num_gates, triton_available

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CPU_TARGET = (30, 64, 1024, "fp32")  # the CPU metric's config: LRN layer / projection GEMM
# (BLOCK, num_warps, STEPS, STAGES) tried by --sweep besides the launch heuristic's picks:
# no pipelining (STAGES=1), (STAGES-2)*STEPS = 4, 12, 6 and 14 steps in flight, longer chunks,
# narrower and wider blocks.
SWEEP_CONFIGS = [(128, 1, 4, 1), (128, 1, 4, 3), (128, 1, 4, 5), (128, 1, 2, 5), (128, 1, 2, 9),
                 (128, 1, 8, 3), (64, 1, 4, 5), (256, 2, 4, 3)]


class Timer:
    """Median wall time (ms) of a callable: CUDA events around each call with the L2 cache
    flushed in between on GPU, time.perf_counter on CPU."""

    def __init__(self, device, warmup, repeats, budget):
        self.device, self.warmup, self.repeats, self.budget = device, warmup, repeats, budget
        self.cuda = device.type == "cuda"
        self.flush = torch.empty(256 << 20, dtype=torch.int8, device=device) if self.cuda else None

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def __call__(self, fn):
        for _ in range(max(1, self.warmup)):  # the last warmup call sizes the number of repeats
            self.sync()
            start = time.perf_counter()
            fn()
            self.sync()
            last = time.perf_counter() - start
        repeats = max(3, min(self.repeats, int(self.budget / max(last, 1e-6))))
        times = []
        for _ in range(repeats):
            if self.cuda:
                self.flush.zero_()
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record()
                fn()
                end.record()
                times.append((begin, end))
            else:
                start = time.perf_counter()
                fn()
                times.append((time.perf_counter() - start) * 1e3)
        self.sync()
        if self.cuda:
            times = [begin.elapsed_time(end) for begin, end in times]
        return statistics.median(times)


def copy_bandwidth(timer, device):
    """GB/s of a device-to-device copy (bytes read + written) of a buffer larger than any cache."""
    n = (1 << 30) if device.type == "cuda" else (128 << 20)
    src = torch.empty(n, dtype=torch.int8, device=device).fill_(1)
    dst = torch.empty_like(src)
    ms = timer(lambda: dst.copy_(src))
    return 2 * n / ms / 1e6


def fused_available(device):
    """The fused kernels are benchmarked on CUDA only (the interpreter is far too slow)."""
    return device.type == "cuda" and triton_available()


def fwd_and_fwd_bwd(timer, forward, inputs, grads):
    """(forward ms, forward+backward ms); ``forward()`` returns the tensors ``grads`` match."""
    def fwd_bwd():
        torch.autograd.grad(forward(), inputs, grads)
    return timer(forward), timer(fwd_bwd)


def bench_recurrence(timer, T, B, d, dtype, device, impls, output_gate=False):
    """{impl: (fwd ms, fwd+bwd ms)} for the recurrence (oLRN's with ``output_gate``) over
    random projections."""
    pqr = torch.randn(T, B, num_gates(output_gate), d, device=device, dtype=dtype, requires_grad=True)
    grads = [torch.randn(T, B, d, device=device, dtype=dtype), torch.randn(B, d, device=device, dtype=dtype)]
    return {impl: fwd_and_fwd_bwd(timer, lambda: lrn_recurrence(pqr, impl=impl, output_gate=output_gate),
                                  [pqr], grads)
            for impl in impls}


def bench_layers(timer, T, B, d, dtype, device, output_gate=False):
    """{layer: (fwd ms, fwd+bwd ms)}, input (T, B, d), hidden size d; None where unsupported.
    With ``output_gate``: the oLRN layer and its projection only."""
    x = torch.randn(T, B, d, device=device, dtype=dtype, requires_grad=True)
    layers = {"LRN": LRN(d, d, output_gate=output_gate), "projection": nn.Linear(d, num_gates(output_gate) * d)}
    if not output_gate:
        layers.update(LSTM=nn.LSTM(d, d), GRU=nn.GRU(d, d))
    results = {}
    for name, layer in layers.items():
        layer.to(device=device, dtype=dtype)
        leaves = [x, *layer.parameters()]

        def forward():
            y = layer(x)
            return y[0] if isinstance(y, tuple) else y
        try:
            results[name] = fwd_and_fwd_bwd(timer, forward, leaves, [torch.randn_like(forward())])
        except RuntimeError as err:  # e.g. an RNN without a kernel for this dtype on this device
            print(f"  {name} {T}x{B}x{d} {dtype}: skipped ({str(err).splitlines()[0]})", file=sys.stderr)
            results[name] = None
    return results


def fused_gbps(T, B, d, dtype, fwd_ms, fwd_bwd_ms, gates=3):
    """{"fwd", "fwd_bwd"}: GB/s of the bytes the fused kernels must move (no mask): forward reads
    pqr (``gates`` values per channel: 3, or 4 for oLRN), writes out (+ h_last); backward reads
    pqr, out (the saved states), dout (+ dlast), writes dpqr."""
    n, size = T * B * d, torch.empty((), dtype=dtype).element_size()
    fwd_bytes, bwd_bytes = ((gates + 1) * n + B * d) * size, ((2 * gates + 2) * n + B * d) * size
    return {"fwd": fwd_bytes / fwd_ms / 1e6, "fwd_bwd": (fwd_bytes + bwd_bytes) / fwd_bwd_ms / 1e6}


def ratio(a, b):
    return a / b if a and b else None


def run_config(args, timer, copy_gbps, T, B, d, dtype_name, output_gate=False):
    dtype = DTYPES[dtype_name]
    fused = fused_available(args.device)
    impls = (["fused"] if fused else []) + ["cpu"]
    if not args.skip_reference and T <= args.reference_max_T:
        impls.append("reference")
    rec = bench_recurrence(timer, T, B, d, dtype, args.device, impls, output_gate)
    layers = bench_layers(timer, T, B, d, dtype, args.device, output_gate)
    row = {"T": T, "B": B, "d": d, "dtype": dtype_name, "cell": "oLRN" if output_gate else "LRN",
           "recurrence_ms": {k: {"fwd": v[0], "fwd_bwd": v[1]} for k, v in rec.items()},
           "layer_ms": {k: v and {"fwd": v[0], "fwd_bwd": v[1]} for k, v in layers.items()}}
    fast = "fused" if fused else "cpu"
    row["fast_vs_reference_fwd_bwd"] = ratio(rec.get("reference", (0, 0))[1], rec[fast][1])
    if fused:
        row["fused_gbps"] = gbps = fused_gbps(T, B, d, dtype, *rec["fused"], gates=num_gates(output_gate))
        row["fused_copy_fraction"] = {k: v / copy_gbps for k, v in gbps.items()}

    def fwd_bwd(name):
        return layers.get(name) and layers[name][1]
    lrn_fb = fwd_bwd("LRN")
    row["lstm_over_lrn_fwd_bwd"] = ratio(fwd_bwd("LSTM"), lrn_fb)
    row["gru_over_lrn_fwd_bwd"] = ratio(fwd_bwd("GRU"), lrn_fb)
    row["lrn_over_projection_fwd_bwd"] = ratio(lrn_fb, fwd_bwd("projection"))
    return row


def sweep(timer, copy_gbps, T, B, d, dtype_name, device, output_gate=False):
    """Fused fwd and fwd+bwd ms (and fraction of copy bandwidth) of LRN (oLRN with
    ``output_gate``) for the launch heuristic (config None) and each (BLOCK, num_warps, STEPS,
    STAGES) in SWEEP_CONFIGS; and the heuristic's picks for the forward and backward kernels."""
    from fairseq_lrn.ops.launch_config import chunk_tiles, launch_config
    from fairseq_lrn.ops.triton_lrn import lrn_recurrence_fused

    dtype = DTYPES[dtype_name]
    gates = num_gates(output_gate)
    pqr = torch.randn(T, B, gates, d, device=device, dtype=dtype, requires_grad=True)
    grads = [torch.randn(T, B, d, device=device, dtype=dtype), torch.randn(B, d, device=device, dtype=dtype)]
    results = []
    for config in [None, *SWEEP_CONFIGS]:
        fwd, fwd_bwd = fwd_and_fwd_bwd(
            timer, lambda: lrn_recurrence_fused(pqr, output_gate=output_gate, config=config), [pqr], grads)
        gbps = fused_gbps(T, B, d, dtype, fwd, fwd_bwd, gates)
        results.append({"T": T, "B": B, "d": d, "dtype": dtype_name, "cell": "oLRN" if output_gate else "LRN",
                        "config": config, "fwd_ms": fwd, "fwd_bwd_ms": fwd_bwd,
                        "copy_fraction": {k: v / copy_gbps for k, v in gbps.items()}})
    default = {kernel: tuple(launch_config(d, B, dtype=dtype, device=device,  # printed as before
                                           tiles=chunk_tiles(kernel == "bwd", output_gate)))
               for kernel in ("fwd", "bwd")}
    return results, default
