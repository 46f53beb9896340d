"""The race's results: the markdown table and the JSON report."""

from fairseq_lrn import atomic_files


def _fmt(value, spec="{:.2f}"):
    return "-" if value is None else spec.format(value)


def markdown_table(systems):
    rows = ["| system | params | train s | updates | epochs | train words/s | best valid loss | BLEU | chrF "
            "| decode s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in systems.items():
        if "error" in r and r.get("bleu") is None:
            first = r["error"].splitlines()[0]
            rows.append(f"| {name} | {_fmt(r.get('params'), '{:,}')} | failed: {first} |||||||| ")
            continue
        rows.append(f"| {name} | {_fmt(r['params'], '{:,}')} | {_fmt(r['train_seconds'], '{:.0f}')} | "
                    f"{_fmt(r['updates'], '{:,}')} | {_fmt(r['epochs'], '{:g}')} | {_fmt(r['wps'], '{:,.0f}')} | "
                    f"{_fmt(r['best_valid_loss'], '{:.3f}')} | {_fmt(r['bleu'])} | {_fmt(r['chrf'])} | "
                    f"{_fmt(r.get('decode_seconds'), '{:.1f}')} |")
    return "\n".join(rows)


def write_json(report, path):
    """Write `report` to `path` atomically (a reader never sees half a report)."""
    atomic_files.write_json(path, report, indent=2)


def print_summary(report, args):
    """The race's headline, its markdown table and the sacreBLEU signatures, on stdout."""
    data = report["data"]
    print(f"\nQuality race: {args.budget_minutes:g} min of training per system on {report['config']['device']} "
          f"({args.threads} threads); {data['train_pairs']:,} training pairs, joint vocabulary "
          f"{data['vocab_size']:,}; test: {data['test_pairs']:,} sentences, beam {args.beam}\n")
    print(markdown_table(report["systems"]))
    signatures = {r["bleu_signature"] for r in report["systems"].values() if r.get("bleu_signature")}
    for sig in sorted(signatures):
        print(f"\nsacreBLEU signature: {sig}")
