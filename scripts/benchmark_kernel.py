"""Benchmark the LRN recurrence and the LRN layer against nn.LSTM / nn.GRU.

For every (T, B, d, dtype) in the grid, on one device (CUDA if available, else CPU):

* recurrence over precomputed projections ``pqr (T, B, 3, d)``: forward and forward+backward
  of the fused Triton kernels (CUDA only), the PyTorch ``cpu`` path and the step-by-step
  reference (small T only); the fused kernels' achieved bandwidth (bytes they must move / time)
  against a device-to-device copy measured in the same run;
* layers of width d: LRN (projection GEMM + recurrence, ``impl="auto"``), the projection GEMM
  alone, ``nn.LSTM`` and ``nn.GRU`` (cuDNN on GPU).

With ``--output-gate``, every config also gets oLRN rows (``pqr (T, B, 4, d)``, the LRN layer
with the output gate and its 4-gate projection; LSTM/GRU are not timed again) and a table of
oLRN's cost over LRN.

Forward times are taken in training mode (autograd recording). Prints markdown tables;
``--json`` / ``--plot`` save the numbers / a figure. Needs only torch (+ Triton for fused):

    python scripts/benchmark_kernel.py                     # default grid (GPU: about 1 min on an H200)
    python scripts/benchmark_kernel.py --device cpu --quick
    python scripts/benchmark_kernel.py --quick --output-gate   # oLRN against LRN
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fairseq_lrn.modules import LRN  # noqa: E402
from fairseq_lrn.ops import lrn_recurrence, num_gates, triton_available  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CPU_TARGET = (30, 64, 1024, "fp32")  # the CPU metric's config: LRN layer / projection GEMM
# (BLOCK, num_warps, STEPS, STAGES) tried by --sweep besides the launch heuristic's picks:
# no pipelining (STAGES=1), (STAGES-2)*STEPS = 4, 12, 6 and 14 steps in flight, longer chunks,
# narrower and wider blocks.
SWEEP_CONFIGS = [(128, 1, 4, 1), (128, 1, 4, 3), (128, 1, 4, 5), (128, 1, 2, 5), (128, 1, 2, 9),
                 (128, 1, 8, 3), (64, 1, 4, 5), (256, 2, 4, 3)]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--T", type=int, nargs="+", default=[30, 100, 500])
    parser.add_argument("--B", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--d", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--dtype", nargs="+", choices=sorted(DTYPES), default=None,
                        help="default: fp32 bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--quick", action="store_true", help="small grid: T=30, B=32, d=512")
    parser.add_argument("--skip-reference", action="store_true", help="never time the reference")
    parser.add_argument("--reference-max-T", type=int, default=100,
                        help="time the (slow) reference only up to this T")
    parser.add_argument("--output-gate", action="store_true",
                        help="also time oLRN (4 gates) at every config, and print its cost over LRN")
    parser.add_argument("--sweep", action="store_true",
                        help="also time fused fwd+bwd for several (BLOCK, num_warps, STEPS, STAGES) "
                             "at the largest shape")
    parser.add_argument("--tf32", choices=["on", "off", "torch-default"], default="on",
                        help="TF32 for fp32 GEMMs and cuDNN RNNs alike (on, the default, or off), or "
                             "torch's defaults (cuDNN on, matmul off: LSTM/GRU get TF32, the LRN "
                             "projection does not)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="calls before timing (default: 3 on CUDA, 1 on CPU)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--budget", type=float, default=0.25,
                        help="seconds per measurement; fewer repeats (>= 3) for slow ones")
    parser.add_argument("--json", help="write all numbers to this JSON file")
    parser.add_argument("--plot", help="write a PNG figure here (needs matplotlib)")
    args = parser.parse_args()
    args.device = torch.device(args.device)
    if args.warmup is None:
        args.warmup = 3 if args.device.type == "cuda" else 1
    if args.dtype is None:
        args.dtype = ["fp32", "bf16"] if args.device.type == "cuda" else ["fp32"]
    if args.quick:
        args.T, args.B, args.d = [30], [32], [512]
    return args


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


def olrn_over_lrn(rows):
    """[(LRN row, oLRN row, {measure: oLRN ms / LRN ms})] for each config timed with both cells;
    measures: ``<impl> fwd`` / ``<impl> f+b`` of the recurrence, ``layer fwd`` / ``layer f+b``."""
    lrn = {(r["T"], r["B"], r["d"], r["dtype"]): r for r in rows if r["cell"] == "LRN"}
    pairs = []
    for o in rows:
        base = lrn.get((o["T"], o["B"], o["d"], o["dtype"]))
        if o["cell"] != "oLRN" or base is None:
            continue
        ratios = {f"{impl} {label}": ratio(o["recurrence_ms"][impl][key], ms[key])
                  for impl, ms in base["recurrence_ms"].items() if impl in o["recurrence_ms"]
                  for key, label in (("fwd", "fwd"), ("fwd_bwd", "f+b"))}
        if base["layer_ms"]["LRN"] and o["layer_ms"]["LRN"]:
            ratios.update({f"layer {label}": ratio(o["layer_ms"]["LRN"][key], base["layer_ms"]["LRN"][key])
                           for key, label in (("fwd", "fwd"), ("fwd_bwd", "f+b"))})
        pairs.append((base, o, ratios))
    return pairs


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


def fmt(x, digits=3):
    if x is None:
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"


def dtype_label(row):
    """The dtype column: the dtype, marked for oLRN rows."""
    return row["dtype"] if row["cell"] == "LRN" else f"{row['dtype']} oLRN"


def print_tables(rows, copy_gbps, device):
    impls = ["fused", "cpu", "reference"]
    print(f"\ndevice-to-device copy: {copy_gbps:.0f} GB/s\n")
    print("### Recurrence (ms: fwd / fwd+bwd)\n")
    print("| T | B | d | dtype | " + " | ".join(impls)
          + " | fast vs ref (f+b) | fused GB/s fwd / f+b | of copy fwd / f+b |")
    print("|" + "---|" * (8 + len(impls) - 1))
    for r in rows:
        ms = [r["recurrence_ms"].get(k) for k in impls]
        cells = [f"{fmt(m['fwd'])} / {fmt(m['fwd_bwd'])}" if m else "-" for m in ms]
        gbps, frac = r.get("fused_gbps"), r.get("fused_copy_fraction")
        bw = f"{fmt(gbps['fwd'])} / {fmt(gbps['fwd_bwd'])}" if gbps else "-"
        fr = f"{frac['fwd']:.0%} / {frac['fwd_bwd']:.0%}" if frac else "-"
        print(f"| {r['T']} | {r['B']} | {r['d']} | {dtype_label(r)} | " + " | ".join(cells)
              + f" | {fmt(r['fast_vs_reference_fwd_bwd'])} | {bw} | {fr} |")
    layers = ["LRN", "projection", "LSTM", "GRU"]
    print("\n### Layers, input and hidden size d (ms: fwd / fwd+bwd)\n")
    print("| T | B | d | dtype | " + " | ".join(layers) + " | LSTM/LRN f+b | GRU/LRN f+b | LRN/proj f+b |")
    print("|" + "---|" * (7 + len(layers)))
    for r in rows:
        ms = [r["layer_ms"].get(k) for k in layers]
        cells = [f"{fmt(m['fwd'])} / {fmt(m['fwd_bwd'])}" if m else "-" for m in ms]
        print(f"| {r['T']} | {r['B']} | {r['d']} | {dtype_label(r)} | " + " | ".join(cells)
              + f" | {fmt(r['lstm_over_lrn_fwd_bwd'])} | {fmt(r['gru_over_lrn_fwd_bwd'])}"
              + f" | {fmt(r['lrn_over_projection_fwd_bwd'])} |")
    pairs = olrn_over_lrn(rows)
    if pairs:
        measures = list(dict.fromkeys(m for _, _, ratios in pairs for m in ratios))
        print("\n### oLRN over LRN (time ratio)\n")
        print("| T | B | d | dtype | " + " | ".join(measures) + " |\n|" + "---|" * (4 + len(measures)))
        for base, _, ratios in pairs:
            print(f"| {base['T']} | {base['B']} | {base['d']} | {base['dtype']} | "
                  + " | ".join(fmt(ratios.get(m)) for m in measures) + " |")
    if device.type == "cpu":
        T, B, d, dt = CPU_TARGET
        for r in rows:
            if (r["T"], r["B"], r["d"], r["dtype"]) == CPU_TARGET and r["cell"] == "LRN":
                print(f"\nCPU target (T={T}, B={B}, d={d}, {dt}): fwd+bwd LRN layer / projection GEMM = "
                      f"{fmt(r['lrn_over_projection_fwd_bwd'])}, "
                      f"LSTM / LRN layer = {fmt(r['lstm_over_lrn_fwd_bwd'])}")


def print_sweep(results, defaults):
    print("\n### Fused launch configs (BLOCK, num_warps, STEPS, STAGES)\n")
    print("| T | B | d | dtype | config | ms fwd / f+b | of copy fwd / f+b |\n|---|---|---|---|---|---|---|")
    for s in results:
        picks = defaults[dtype_label(s)]
        config = (f"heuristic: fwd {picks['fwd']}, bwd {picks['bwd']}" if s["config"] is None
                  else ", ".join(map(str, s["config"])))
        frac = s["copy_fraction"]
        print(f"| {s['T']} | {s['B']} | {s['d']} | {dtype_label(s)} | {config} "
              f"| {fmt(s['fwd_ms'])} / {fmt(s['fwd_bwd_ms'])} | {frac['fwd']:.0%} / {frac['fwd_bwd']:.0%} |")


def plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no plot written to {path}", file=sys.stderr)
        return
    labels = [f"{r['T']}x{r['B']}x{r['d']}\n{dtype_label(r)}" for r in rows]
    x = range(len(rows))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(8, 0.7 * len(rows)), 8))
    for k, name in enumerate(["LRN", "projection", "LSTM", "GRU"]):
        ys = [(r["layer_ms"].get(name) or {}).get("fwd_bwd", math.nan) for r in rows]
        ax1.bar([i + 0.2 * (k - 1.5) for i in x], ys, width=0.2, label=name)
    ax1.set_yscale("log")
    ax1.set_ylabel("layer fwd+bwd (ms)")
    ax1.legend()
    if any("fused_copy_fraction" in r for r in rows):
        ax2.bar(x, [r.get("fused_copy_fraction", {}).get("fwd_bwd", math.nan) for r in rows])
        ax2.axhline(0.7, color="gray", linestyle="--")
        ax2.set_ylabel("fused fwd+bwd bandwidth / copy")
    else:
        ax2.bar(x, [r["lstm_over_lrn_fwd_bwd"] or math.nan for r in rows])
        ax2.set_ylabel("LSTM / LRN layer fwd+bwd")
    for ax in (ax1, ax2):
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    args = parse_args()
    torch.manual_seed(0)
    if args.tf32 != "torch-default":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32 == "on"
    print(f"TF32: {args.tf32} (matmul {torch.backends.cuda.matmul.allow_tf32}, "
          f"cuDNN {torch.backends.cudnn.allow_tf32})")
    timer = Timer(args.device, args.warmup, args.repeats, args.budget)
    copy_gbps = copy_bandwidth(timer, args.device)
    grid = [(T, B, d, dt) for dt in args.dtype for d in args.d for B in args.B for T in args.T]
    if args.device.type == "cpu" and CPU_TARGET not in grid:
        grid.append(CPU_TARGET)
    rows = []
    for config in grid:
        for output_gate in ([False, True] if args.output_gate else [False]):
            print("running T={} B={} d={} {}".format(*config) + (" oLRN" if output_gate else ""),
                  file=sys.stderr, flush=True)
            rows.append(run_config(args, timer, copy_gbps, *config, output_gate=output_gate))
    print_tables(rows, copy_gbps, args.device)

    report = {"device": torch.cuda.get_device_name(args.device) if args.device.type == "cuda" else "cpu",
              "torch": torch.__version__, "copy_gbps": copy_gbps, "rows": rows,
              "tf32": {"setting": args.tf32, "matmul": torch.backends.cuda.matmul.allow_tf32,
                       "cudnn": torch.backends.cudnn.allow_tf32}}
    if triton_available():
        import triton
        report["triton"] = triton.__version__
    if args.sweep and fused_available(args.device):
        results, defaults = [], {}
        T, B, d = max(args.T), max(args.B), max(args.d)
        for dt in args.dtype:
            for output_gate in ([False, True] if args.output_gate else [False]):
                res, picks = sweep(timer, copy_gbps, T, B, d, dt, args.device, output_gate)
                defaults[dtype_label(res[0])] = picks  # keyed "bf16", "bf16 oLRN", ...
                results += res
        print_sweep(results, defaults)
        report["sweep"] = {"results": results, "default": defaults}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
