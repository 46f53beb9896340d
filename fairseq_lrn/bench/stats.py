"""Statistics of interleaved repeats and the number formats of the reports."""

import statistics
from typing import Dict, Iterable, List, Optional, Sequence, Tuple


def summary(values: List[float]) -> dict:
    """Median, min, max and the values themselves."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": values}


def paired_ratio(results: Dict[str, List[dict]], a: str, b: str, key: str) -> Optional[dict]:
    """Per-repeat ratio a/b of ``key`` (both measured in the same repeat), summarised: the median
    of the ratios, not the ratio of the medians. None when either system or any value is missing."""
    if a not in results or b not in results:
        return None
    if any(key not in r for r in results[a] + results[b]):
        return None
    return summary([ra[key] / rb[key] for ra, rb in zip(results[a], results[b])])


def ratio_table(results: Dict[str, List[dict]], pairs: Iterable[Tuple[str, str]],
                keys_of, require_all: bool) -> Dict[str, dict]:
    """``{"a/b": {key: median ratio, ..., "spread": {key: (min, max)}}}`` of the report.

    ``keys_of(a, b)``: the keys compared for a pair. ``require_all``: a pair appears only when
    every key has a ratio (else: with the keys that have one, if any)."""
    table = {}
    for a, b in pairs:
        per = {k: paired_ratio(results, a, b, k) for k in keys_of(a, b)}
        if require_all and not all(v is not None for v in per.values()):
            continue
        per = {k: v for k, v in per.items() if v is not None}
        if per:
            table[f"{a}/{b}"] = {**{k: v["median"] for k, v in per.items()},
                                 "spread": {k: (v["min"], v["max"]) for k, v in per.items()}}
    return table


def fmt(x: Optional[float], digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def fmt_spread(s: dict, digits: int = 0) -> str:
    return f"{fmt(s['median'], digits)} ({fmt(s['min'], digits)}-{fmt(s['max'], digits)})"


def ratio_cell(r: dict, key: str) -> str:
    """``median (min-max)`` of one key of a :func:`ratio_table` row."""
    return f"{r[key]:.2f} ({r['spread'][key][0]:.2f}-{r['spread'][key][1]:.2f})"


def md_table(header: Sequence[str], rows: Iterable[Sequence], align: Optional[str] = None) -> None:
    """Print a markdown table: ``header``, then ``rows``; ``align`` one ``l``/``r`` a column
    (default: the first left, the others right)."""
    print("| " + " | ".join(header) + " |")
    print("|" + "".join("---|" if a == "l" else "---:|" for a in (align or "l" + "r" * (len(header) - 1))))
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")


def print_ratios(ratios: Dict[str, dict], keys: Sequence[str], title: str = " within this run,",
                 pretty: bool = True) -> None:
    """The ratios' table of a report (``pretty``: ``_`` in the column names as spaces)."""
    if ratios:
        print(f"\n### Ratios (per-repeat ratios{title} median (min-max))\n")
        md_table(["pair", *(k.replace("_", " ") if pretty else k for k in keys)],
                 [[pair, *(ratio_cell(r, k) if k in r else "-" for k in keys)] for pair, r in ratios.items()])


def print_targets(rows: List[dict], unit: str = "x", title: str = "; bench/targets.py TARGETS",
                  met_words=("met", "NOT met")) -> None:
    """The targets' table of a report: what, measured, target (``unit`` after each number; " BLEU"
    on BLEU rows when ``unit`` is None), met."""
    if not rows:
        return
    print(f"\n### Targets (benchmarks, not tests{title})\n")
    cells = []
    for t in rows:
        u = (" BLEU" if t["what"].startswith("BLEU") else "x") if unit is None else unit
        value = "-" if t["value"] is None else f"{t['value']:.2f}{u}"
        met = "not measured" if t["met"] is None else met_words[0] if t["met"] else met_words[1]
        cells.append([t["what"], value, f">= {t['target']:g}{u}", met])
    md_table(["what", "measured", "target", "met"], cells, "lrrl")


def keys_in_both(results: Dict[str, List[dict]], a: str, b: str) -> Sequence[str]:
    """The measurement keys of the first repeat of both ``a`` and ``b``, sorted."""
    return sorted({k for m in results.get(a, [])[:1] for k in m} & {k for m in results.get(b, [])[:1] for k in m})
