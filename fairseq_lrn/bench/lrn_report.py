"""``--size tiny / iwslt / wmt``: the report (its JSON dict, markdown tables, PNG)."""

from dataclasses import asdict
from typing import Dict, List

from .harness import report_head
from .speed import GEN_CONFIGS
from .stats import fmt, fmt_spread, ratio_cell, ratio_table, summary


def build_report(args, argv, *, preset, data_bin: str, systems: Dict[str, object], results: Dict[str, List[dict]],
                 gen_sets: dict, train_batches, skipped: Dict[str, str], memory: Dict[str, dict],
                 memory_method) -> dict:
    """The run's numbers: config, per-system summaries over the repeats, per-repeat ratios
    (against lstm, lrn-reference, and oLRN against its LRN)."""
    tokens = [int(b["ntokens"]) for b in train_batches]
    report = {
        **report_head(args, argv),
        "config": {"size": args.size, "preset": asdict(preset), "device": args.device,
                   "repeats": args.repeats, "train_steps": args.train_steps,
                   "warmup_steps": args.warmup_steps, "max_tokens": args.max_tokens,
                   "gen_sentences_b1": args.gen_sentences_b1, "gen_sentences_b64": args.gen_sentences_b64,
                   "gen_configs": list(gen_sets), "forced_lengths": args.forced_lengths, "fp16": args.fp16,
                   "tf32": args.tf32, "data": data_bin, "synthetic_data": not args.data,
                   "train_batch_target_tokens": tokens},
        "skipped": skipped, "memory_method": memory_method, "systems": {}, "ratios": {},
    }
    for name, s in systems.items():
        runs = results[name]
        entry = {"params": s.params, "note": s.note, "argv": s.argv,
                 "train_tok_s": summary([m["train_tok_s"] for m in runs]),
                 "train_step_s": [m["train_step_s"] for m in runs],
                 "peak_mem_mib": memory.get(name, {}).get("peak_mib")}
        for key in gen_sets:
            entry[key] = summary([m[key] for m in runs])
        report["systems"][name] = entry
    pairs = [(n, "lstm") for n in systems if n != "lstm"]
    if "lrn-reference" in systems:
        pairs += [(n, "lrn-reference") for n in ("lrn-fused", "lrn-cpu") if n in systems]
    pairs += [(f"o{n}", n) for n in ("lrn-fused", "lrn-cpu") if n in systems and f"o{n}" in systems]
    keys = ["train_tok_s", *gen_sets]
    report["ratios"] = ratio_table(results, pairs, lambda a, b: keys, require_all=True)
    return report


def print_report(report: dict) -> None:
    cfg, systems = report["config"], report["systems"]
    print(f"\n## Results: --size {cfg['size']} on {cfg['device']} "
          f"({report['machine'].get('gpu') or report['machine'].get('cpu')}, "
          f"{report['machine']['torch_threads']} threads), {cfg['repeats']} interleaved repeats; "
          "median (min-max)\n")
    lstm = systems.get("lstm")
    gen_keys = cfg["gen_configs"] or [key for key, _, _ in GEN_CONFIGS]
    header = ("| system | params | train tok/s | x lstm | peak mem MiB | "
              + " | ".join(k.replace("_", " ") for k in gen_keys) + " | BLEU |")
    print(header)
    print("|" + "---|" + "---:|" * (header.count("|") - 2))
    quality = (report.get("quality") or {}).get("systems", {})
    for name, s in systems.items():
        ratio = report["ratios"].get(f"{name}/lstm", {}).get("train_tok_s") if lstm and name != "lstm" else None
        gens = " | ".join(fmt_spread(s[key], 1) if key in s else "-" for key in gen_keys)
        bleu = quality.get(name, {}).get("bleu")
        print(f"| {name} | {s['params'] / 1e6:.2f}M | {fmt_spread(s['train_tok_s'])} | "
              f"{'-' if ratio is None else f'{ratio:.2f}'} | {fmt(s.get('peak_mem_mib'))} | {gens} | "
              f"{fmt(bleu, 2)} |")
    print("\nGeneration columns: sentences/s through fairseq's SequenceGenerator (greedy = beam 1), "
          f"{cfg['gen_sentences_b1']} random test sentences at batch 1, the {cfg['gen_sentences_b64']} "
          "of median length at batch 64; every hypothesis is forced to "
          + (f"L tokens (columns _L<L>)" if cfg.get("forced_lengths") else "its batch's longest reference length")
          + ", so untrained models do a trained model's decoding work.")
    print(f"Training: target tokens/s over {cfg['train_steps']} full fairseq updates per repeat "
          f"(max {cfg['max_tokens']} tokens per batch; {cfg['warmup_steps']} warm-up update(s) excluded).")
    if report.get("memory_method"):
        print(f"Peak memory: {report['memory_method']}, in a fresh process per system "
              "(parameters + gradients + Adam state + activations).")
    for name, why in report["skipped"].items():
        print(f"Skipped {name}: {why}.")
    for name, s in systems.items():
        print(f"- {name}: {s['note']}")
    if report["ratios"]:
        print("\n### Ratios (per-repeat ratios, median (min-max))\n")
        keys = ["train_tok_s"] + cfg["gen_configs"]
        print("| pair | " + " | ".join(keys) + " |")
        print("|---|" + "---:|" * len(keys))
        for pair, r in report["ratios"].items():
            cells = " | ".join(ratio_cell(r, k) for k in keys)
            print(f"| {pair} | {cells} |")
    if report["targets"]:
        print("\n### Targets (benchmarks, not tests)\n")
        print("| what | measured | target | met |\n|---|---:|---:|---|")
        for t in report["targets"]:
            unit = " BLEU" if t["what"].startswith("BLEU") else "x"
            print(f"| {t['what']} | {t['value']:.2f}{unit} | >= {t['target']:g}{unit} | "
                  f"{'yes' if t['met'] else 'NO'} |")
    if report.get("quality"):
        q = report["quality"]
        print(f"\n### Quality: BLEU after {q['budget_seconds']:g} s of training each ({q['data']})\n")
        print("| system | params | updates | BLEU curve (seconds: BLEU) |\n|---|---:|---:|---|")
        for name, s in q["systems"].items():
            curve = ", ".join(f"{p['seconds']:.0f}: {p['bleu']:.1f}" for p in s["curve"])
            print(f"| {name} | {s['params'] / 1e6:.2f}M | {s['updates']} | {curve} |")


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = report["systems"]
    names = list(systems)
    has_quality = bool(report.get("quality"))
    gen_keys = report["config"]["gen_configs"]
    ncols = 1 + bool(gen_keys) + has_quality
    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 4.2), squeeze=False)
    axes = list(axes[0])
    med = [systems[n]["train_tok_s"]["median"] for n in names]
    err = [[m - systems[n]["train_tok_s"]["min"] for n, m in zip(names, med)],
           [systems[n]["train_tok_s"]["max"] - m for n, m in zip(names, med)]]
    ax = axes[0]
    ax.bar(names, med, yerr=err, capsize=4, color="tab:blue")
    ax.set_ylabel("target tokens / s")
    ax.set_title(f"training throughput ({report['config']['device']}, {report['config']['size']})")
    ax.tick_params(axis="x", rotation=20)
    if gen_keys:
        ax = axes[1]
        width = 0.8 / len(gen_keys)
        for k, key in enumerate(gen_keys):
            vals = [systems[n][key]["median"] for n in names]
            ax.bar([i + (k - (len(gen_keys) - 1) / 2) * width for i in range(len(names))], vals, width,
                   label=key.replace("_", " "))
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=20)
        ax.set_yscale("log")
        ax.set_ylabel("sentences / s (log)")
        ax.set_title("generation (SequenceGenerator)")
        bottom, top = ax.get_ylim()
        ax.set_ylim(bottom, top * 6)  # room for the legend above the bars
        ax.legend(fontsize=8, ncol=2, loc="upper center")
    if has_quality:
        ax = axes[-1]
        for name, s in report["quality"]["systems"].items():
            ax.plot([0] + [p["seconds"] for p in s["curve"]], [0] + [p["bleu"] for p in s["curve"]],
                    marker="o", label=name)
        ax.set_xlabel("training wall-clock (s)")
        ax.set_ylabel("BLEU (test)")
        ax.set_title("BLEU vs training time")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
