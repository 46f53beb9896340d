"""``scripts/benchmark_kernel.py``'s runs and report: the grid of configs and ``--sweep`` over the
measurements of :mod:`.kernel_timing`, the markdown tables (recurrence, layers, oLRN over LRN, the
CPU target, the launch configs), the ``--plot`` figure, ``--json``; :func:`run` does it all. No
fairseq."""

import math
import sys

import torch

from fairseq_lrn.atomic_files import write_json
from fairseq_lrn.ops import triton_available

from .stats import md_table
from .kernel_timing import CPU_TARGET, Timer, copy_bandwidth, fused_available, ratio, run_config, sweep


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


def fmt(x, digits=3):
    if x is None:
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"


def dtype_label(row):
    """The dtype column: the dtype, marked for oLRN rows (also the key of ``--sweep``'s picks)."""
    return row["dtype"] if row["cell"] == "LRN" else f"{row['dtype']} oLRN"


def fwd_cells(ms_by_name, names):
    """``fwd / fwd+bwd`` ms of each of ``names`` ("-" where not timed)."""
    return [f"{fmt(m['fwd'])} / {fmt(m['fwd_bwd'])}" if m else "-" for m in map(ms_by_name.get, names)]


def print_tables(rows, copy_gbps, device):
    impls, layers = ["fused", "cpu", "reference"], ["LRN", "projection", "LSTM", "GRU"]
    config = lambda r: [r["T"], r["B"], r["d"], dtype_label(r)]  # noqa: E731
    print(f"\ndevice-to-device copy: {copy_gbps:.0f} GB/s\n")
    print("### Recurrence (ms: fwd / fwd+bwd)\n")
    md_table(["T", "B", "d", "dtype", *impls, "fast vs ref (f+b)", "fused GB/s fwd / f+b", "of copy fwd / f+b"],
             [[*config(r), *fwd_cells(r["recurrence_ms"], impls), fmt(r["fast_vs_reference_fwd_bwd"]),
               f"{fmt(r['fused_gbps']['fwd'])} / {fmt(r['fused_gbps']['fwd_bwd'])}" if r.get("fused_gbps") else "-",
               "{fwd:.0%} / {fwd_bwd:.0%}".format(**r["fused_copy_fraction"]) if r.get("fused_copy_fraction") else "-"]
              for r in rows], "l" * 10)
    print("\n### Layers, input and hidden size d (ms: fwd / fwd+bwd)\n")
    md_table(["T", "B", "d", "dtype", *layers, "LSTM/LRN f+b", "GRU/LRN f+b", "LRN/proj f+b"],
             [[*config(r), *fwd_cells(r["layer_ms"], layers), fmt(r["lstm_over_lrn_fwd_bwd"]),
               fmt(r["gru_over_lrn_fwd_bwd"]), fmt(r["lrn_over_projection_fwd_bwd"])] for r in rows], "l" * 11)
    pairs = olrn_over_lrn(rows)
    if pairs:
        measures = list(dict.fromkeys(m for _, _, ratios in pairs for m in ratios))
        print("\n### oLRN over LRN (time ratio)\n")
        md_table(["T", "B", "d", "dtype", *measures],
                 [[base["T"], base["B"], base["d"], base["dtype"], *(fmt(ratios.get(m)) for m in measures)]
                  for base, _, ratios in pairs], "l" * (4 + len(measures)))
    if device.type == "cpu":
        T, B, d, dt = CPU_TARGET
        for r in rows:
            if (r["T"], r["B"], r["d"], r["dtype"]) == CPU_TARGET and r["cell"] == "LRN":
                print(f"\nCPU target (T={T}, B={B}, d={d}, {dt}): fwd+bwd LRN layer / projection GEMM = "
                      f"{fmt(r['lrn_over_projection_fwd_bwd'])}, "
                      f"LSTM / LRN layer = {fmt(r['lstm_over_lrn_fwd_bwd'])}")


def print_sweep(results, defaults):
    print("\n### Fused launch configs (BLOCK, num_warps, STEPS, STAGES)\n")
    md_table(["T", "B", "d", "dtype", "config", "ms fwd / f+b", "of copy fwd / f+b"],
             [[s["T"], s["B"], s["d"], dtype_label(s),
               "heuristic: fwd {fwd}, bwd {bwd}".format(**defaults[dtype_label(s)]) if s["config"] is None
               else ", ".join(map(str, s["config"])), f"{fmt(s['fwd_ms'])} / {fmt(s['fwd_bwd_ms'])}",
               "{fwd:.0%} / {fwd_bwd:.0%}".format(**s["copy_fraction"])] for s in results], "l" * 7)


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


def cells(args):
    """The cells timed at every config: LRN, and oLRN with ``--output-gate``."""
    return [False, True] if args.output_gate else [False]


def run_grid(args, timer, copy_gbps):
    """:func:`run_config` rows over the (T, B, d, dtype) grid (on CPU the CPU target's config
    too), each config once per cell."""
    grid = [(T, B, d, dt) for dt in args.dtype for d in args.d for B in args.B for T in args.T]
    if args.device.type == "cpu" and CPU_TARGET not in grid:
        grid.append(CPU_TARGET)
    rows = []
    for config in grid:
        for output_gate in cells(args):
            print("running T={} B={} d={} {}".format(*config) + (" oLRN" if output_gate else ""),
                  file=sys.stderr, flush=True)
            rows.append(run_config(args, timer, copy_gbps, *config, output_gate=output_gate))
    return rows


def run_sweeps(args, timer, copy_gbps):
    """``--sweep``: :func:`sweep` at the largest shape for every dtype and cell; returns (results,
    the heuristic's picks keyed by :func:`dtype_label`: "bf16", "bf16 oLRN", ...)."""
    results, defaults = [], {}
    T, B, d = max(args.T), max(args.B), max(args.d)
    for dt in args.dtype:
        for output_gate in cells(args):
            res, picks = sweep(timer, copy_gbps, T, B, d, dt, args.device, output_gate)
            defaults[dtype_label(res[0])] = picks
            results += res
    return results, defaults


def run(args) -> dict:
    """The benchmark of ``scripts/benchmark_kernel.py``'s ``args``: TF32 setting, copy bandwidth,
    the grid's tables, then ``--sweep``'s; writes ``--json`` / ``--plot``; returns the report."""
    torch.manual_seed(0)
    if args.tf32 != "torch-default":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32 == "on"
    print(f"TF32: {args.tf32} (matmul {torch.backends.cuda.matmul.allow_tf32}, "
          f"cuDNN {torch.backends.cudnn.allow_tf32})")
    timer = Timer(args.device, args.warmup, args.repeats, args.budget)
    copy_gbps = copy_bandwidth(timer, args.device)
    rows = run_grid(args, timer, copy_gbps)
    print_tables(rows, copy_gbps, args.device)

    report = {"device": torch.cuda.get_device_name(args.device) if args.device.type == "cuda" else "cpu",
              "torch": torch.__version__, "copy_gbps": copy_gbps, "rows": rows,
              "tf32": {"setting": args.tf32, "matmul": torch.backends.cuda.matmul.allow_tf32,
                       "cudnn": torch.backends.cudnn.allow_tf32}}
    if triton_available():
        import triton
        report["triton"] = triton.__version__
    if args.sweep and fused_available(args.device):
        results, defaults = run_sweeps(args, timer, copy_gbps)
        print_sweep(results, defaults)
        report["sweep"] = {"results": results, "default": defaults}
    if args.json:
        write_json(args.json, report)
    if args.plot:
        plot(rows, args.plot)
    return report
