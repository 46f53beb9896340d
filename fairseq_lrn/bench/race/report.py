"""The race's results: the markdown table, the JSON report (and a race that goes on from it), the
validation-loss plot."""

import json

from fairseq_lrn import atomic_files

from .common import RaceError

# What must be equal for a finished system of an earlier run to stand in this run's table.
_SAME_DATA = ("bin", "vocab_size", "train_pairs", "test_pairs", "test_references")


def _fmt(value, spec="{:.2f}"):
    return "-" if value is None else spec.format(value)


def markdown_table(systems):
    """The race's table, a row per system; with a "BLEU / chrF, lenpen tuned" column when a system
    has a length penalty chosen on the validation set (``--lenpen-grid``)."""
    tuned = any("lenpen" in r for r in systems.values())
    rows = ["| system | params | train s | updates | epochs | train words/s | best valid loss | BLEU | chrF "
            "| decode s |" + (" BLEU / chrF, lenpen chosen on valid |" if tuned else ""),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if tuned else "")]
    for name, r in systems.items():
        if "error" in r and r.get("bleu") is None:
            first = r["error"].splitlines()[0]
            rows.append(f"| {name} | {_fmt(r.get('params'), '{:,}')} | failed: {first} |||||||| ")
            continue
        row = (f"| {name} | {_fmt(r['params'], '{:,}')} | {_fmt(r['train_seconds'], '{:.0f}')} | "
               f"{_fmt(r['updates'], '{:,}')} | {_fmt(r['epochs'], '{:g}')} | {_fmt(r['wps'], '{:,.0f}')} | "
               f"{_fmt(r['best_valid_loss'], '{:.3f}')} | {_fmt(r['bleu'])} | {_fmt(r['chrf'])} | "
               f"{_fmt(r.get('decode_seconds'), '{:.1f}')} |")
        if tuned:
            row += f" {_tuned_cell(r.get('lenpen'))} |"
        rows.append(row)
    return "\n".join(rows)


def _tuned_cell(lenpen):
    if lenpen is None:
        return "-"
    if lenpen.get("bleu") is None:
        return "failed"
    return f"{lenpen['bleu']:.2f} / {lenpen['chrf']:.2f} (lenpen {lenpen['chosen']:g})"


def write_json(report, path):
    """Write `report` to `path` atomically (a reader never sees half a report)."""
    atomic_files.write_json(path, report, indent=2)


def previous_results(path, data):
    """The finished systems of the race report at ``path`` ({} when there is none), checked to be on
    the same data; RaceError names the file and the difference otherwise."""
    if not path.exists():
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        old_data, systems = report["data"], report["systems"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RaceError(f"{path} is not a race report ({exc}); give another --json") from exc
    changed = [k for k in _SAME_DATA if old_data.get(k) != data.get(k)]
    if changed:
        raise RaceError(f"{path} holds results on other data ({', '.join(changed)} differ); give another --json")
    return systems


def plot_valid_curves(systems, path):
    """Validation loss against training wall-clock minutes, one line per system, into ``path``."""
    from ..plots import figure, save

    fig, (ax,) = figure(1, 8, 5)
    for name, r in systems.items():
        curve = r.get("valid_curve") or []
        if curve:
            ax.plot([p["seconds"] / 60 for p in curve], [p["loss"] for p in curve], marker="o", label=name)
    ax.set_xlabel("training wall-clock (minutes)")
    ax.set_ylabel("validation loss (label-smoothed, base 2)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, str(path))


def print_summary(report, args):
    """The race's headline, its markdown table and the sacreBLEU signatures, on stdout."""
    data = report["data"]
    budgets = sorted({r.get("budget_minutes", args.budget_minutes) for r in report["systems"].values()})
    minutes = "/".join(f"{b:g}" for b in budgets)
    print(f"\nQuality race: {minutes} min of training per system on {report['config']['device']} "
          f"({args.threads} threads); {data['train_pairs']:,} training pairs, joint vocabulary "
          f"{data['vocab_size']:,}; test: {data['test_pairs']:,} sentences, beam {args.beam}\n")
    print(markdown_table(report["systems"]))
    signatures = {r["bleu_signature"] for r in report["systems"].values() if r.get("bleu_signature")}
    for sig in sorted(signatures):
        print(f"\nsacreBLEU signature: {sig}")
