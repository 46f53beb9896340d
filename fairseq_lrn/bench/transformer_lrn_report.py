"""``--size transformer-*``: the report (its JSON dict, markdown tables, PNG)."""

from dataclasses import asdict
from typing import Dict, List

from .harness import report_head
from .stats import fmt_spread, keys_in_both, print_targets, ratio_cell, ratio_table, summary
from .targets import TRANSFORMER_FAMILY, family_targets
from .transformer_lrn_systems import BASELINE, PAIRS, system_shape


def build_report(args, argv, *, p, data_bin: str, vocab: int, share_all: bool, systems: Dict[str, object],
                 results: Dict[str, List[dict]], grid, sweep_keys: Dict[int, str], decodes: Dict[str, bool],
                 train_batches, skipped: Dict[str, str], state: Dict[str, dict]) -> dict:
    """The run's numbers: config, per-system summaries over the repeats, per-repeat ratios of
    :data:`PAIRS`, ms per output token of the sweep, the decoder states, the targets' table."""
    report = {
        **report_head(args, argv),
        "config": {"size": args.size, "preset": asdict(p), "device": args.device, "repeats": args.repeats,
                   "train_steps": args.train_steps, "warmup_steps": args.warmup_steps,
                   "max_tokens": args.max_tokens, "gen_sentences_b1": args.gen_sentences_b1,
                   "gen_sentences_b64": args.gen_sentences_b64, "forced_lengths": args.forced_lengths,
                   "sweep_lengths": args.sweep_lengths, "sweep_cell": list(args.sweep_cell),
                   "sweep_repeats": min(args.sweep_repeats, args.repeats),
                   "state_length": args.state_length, "grid": [c.key for c in grid],
                   "gen_configs": [c.key for c in grid], "data": data_bin, "synthetic_data": not args.data,
                   "vocab": vocab, "share_all_embeddings": share_all,
                   "train_batch_target_tokens": [int(b["ntokens"]) for b in train_batches],
                   "transformer_lrn_arch": args.transformer_lrn_arch,
                   "decoder_layers": {n: system_shape(n, p)[1] for n in systems}},
        "skipped": skipped, "systems": {}, "ratios": {}, "state_memory": state,
        "targets_table": [t.as_table_row() for t in family_targets(TRANSFORMER_FAMILY)],
    }
    for name, s in systems.items():
        entry = {"params": s.params, "note": s.note, "argv": s.argv}
        for key in results[name][0]:
            entry[key] = summary([m[key] for m in results[name] if key in m])
        report["systems"][name] = entry
    report["ratios"] = ratio_table(results, PAIRS, lambda a, b: keys_in_both(results, a, b), require_all=False)
    if sweep_keys:
        beam, bs = args.sweep_cell
        dec_names = [n for n in systems if decodes[n]]
        report["time_per_token"] = {
            "beam": beam, "batch_size": bs, "lengths": list(sweep_keys),
            "ms_per_token": {n: [1e3 / (report["systems"][n][sweep_keys[L]]["median"] * L) for L in sweep_keys]
                             for n in dec_names}}
    return report


def print_report(report: dict) -> None:
    cfg, systems = report["config"], report["systems"]
    m = report["machine"]
    print(f"\n## Results: --size {cfg['size']} on {cfg['device']} ({m.get('gpu') or m.get('cpu')}, "
          f"{m['torch_threads']} threads), {cfg['repeats']} interleaved repeats; median (min-max)\n")
    print(f"Data: {cfg['data']}" + (" (synthetic)" if cfg["synthetic_data"] else "")
          + f"; vocabulary {cfg['vocab']}\n")
    print("| system | params | train tok/s | note |\n|---|---:|---:|---|")
    for name, s in systems.items():
        tok = fmt_spread(s["train_tok_s"]) if "train_tok_s" in s else "-"
        print(f"| {name} | {s['params']:,} ({s['params'] / 1e6:.2f}M) | {tok} | {s['note']} |")
    for lrn, base in (("transformer-lrn", BASELINE), ("transformer-lrn-dec2", "transformer-dec2")):
        if lrn in systems and base in systems:
            diff, layers = systems[base]["params"] - systems[lrn]["params"], cfg["decoder_layers"][lrn]
            d = cfg["preset"]["embed"]
            print(f"\n{lrn} has {diff:,} fewer parameters than {base} ({diff / systems[base]['params']:.1%}): "
                  f"{diff / layers:,.0f} per decoder layer (d^2 = {d * d:,}: self-attention's 4d^2+4d "
                  f"against LRN's 3d^2 projection and its biases / norms)")
    print(f"\nTraining: target tokens/s over {cfg['train_steps']} full fairseq updates per repeat (max "
          f"{cfg['max_tokens']} tokens per batch, {cfg['warmup_steps']} warm-up update(s) excluded).")

    grid = cfg["grid"]
    dec = [n for n in systems if any(k in systems[n] for k in grid)]
    if dec:
        print("\n### Decoding: sentences/s (SequenceGenerator, every hypothesis forced to L tokens)\n")
        print("| system | " + " | ".join(k.replace("_", " ") for k in grid) + " |")
        print("|---|" + "---:|" * len(grid))
        for n in dec:
            print(f"| {n} | " + " | ".join(fmt_spread(systems[n][k], 1) if k in systems[n] else "-"
                                           for k in grid) + " |")
        print(f"\nBatch 1: {cfg['gen_sentences_b1']} random test sentences; batch 64: the "
              f"{cfg['gen_sentences_b64']} of median source length; greedy = beam 1.")
    if report["ratios"]:
        print("\n### Ratios (per-repeat ratios within this run, median (min-max))\n")
        keys = ["train_tok_s"] + grid
        print("| pair | " + " | ".join(k.replace("_", " ") for k in keys) + " |")
        print("|---|" + "---:|" * len(keys))
        for pair, r in report["ratios"].items():
            print(f"| {pair} | " + " | ".join(
                ratio_cell(r, k) if k in r else "-"
                for k in keys) + " |")
    print_sweep(report)
    print_state(report.get("state_memory"))
    for name, why in report["skipped"].items():
        print(f"Skipped {name}: {why}.")
    print_targets(report["targets"])


def print_sweep(report: dict) -> None:
    """The time-per-output-token table (``--sweep-lengths``)."""
    cfg = report["config"]
    sweep = report.get("time_per_token")
    if sweep:
        lengths = sweep["lengths"]
        print(f"\n### Time per output token vs L (ms per sentence's output token; beam {sweep['beam']}, batch "
              f"{sweep['batch_size']}; lengths outside the grid timed in {cfg['sweep_repeats']} repeat(s))\n")
        print("| system | " + " | ".join(f"L={L}" for L in lengths) + " |")
        print("|---|" + "---:|" * len(lengths))
        for n, ms in sweep["ms_per_token"].items():
            print(f"| {n} | " + " | ".join(f"{v:.3f}" for v in ms) + " |")


def print_state(state) -> None:
    """The decoder-state table (bytes per sentence, measured and by formula)."""
    if state:
        any_s = next(iter(state.values()))
        print(f"\n### Decoder state per sentence at L={any_s['length']} (KiB; beam {any_s['beam']}, "
              f"{any_s['sentences']} sentences, source length {any_s['src_len']}; measured in the generator's "
              "incremental_state after the last step, / (batch x beam))\n")
        print("| system | grows with output (self-attn K/V) | constant (LRN states) | encoder-attn static "
              "| total | formula: grows / constant / encoder |")
        print("|---|---:|---:|---:|---:|---|")
        for n, s in state.items():
            f = s["formula"]
            print(f"| {n} | {s['grows'] / 1024:.1f} | {s['constant'] / 1024:.2f} | {s['encoder_static'] / 1024:.1f} "
                  f"| {s['total'] / 1024:.1f} | {f['grows'] / 1024:.1f} / {f['constant'] / 1024:.2f} / "
                  f"{f['encoder_static'] / 1024:.1f} |")


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep, state = report.get("time_per_token"), report.get("state_memory")
    ncols = 1 + bool(state)
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4.3), squeeze=False)
    ax = axes[0][0]
    if sweep:
        for n, ms in sweep["ms_per_token"].items():
            ax.plot(sweep["lengths"], ms, marker="o", label=n)
        ax.legend(fontsize=8)
    ax.set_xlabel("forced output length L (tokens)")
    ax.set_ylabel("ms per output token (per sentence)")
    ax.set_title(f"{report['config']['device']} decoding, beam {(sweep or {}).get('beam')}, "
                 f"batch {(sweep or {}).get('batch_size')} ({report['config']['size']})")
    ax.grid(alpha=0.3)
    if state:
        ax = axes[0][1]
        names = list(state)
        bottom = [0.0] * len(names)
        for part, label in (("grows", "self-attn K/V (grows)"), ("constant", "LRN states"),
                            ("encoder_static", "encoder-attn static")):
            vals = [state[n][part] / 1024 for n in names]
            ax.bar(names, vals, bottom=bottom, label=label)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_ylabel("KiB per sentence-hypothesis")
        ax.set_title(f"decoder state at L={next(iter(state.values()))['length']}")
        ax.tick_params(axis="x", rotation=15)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
