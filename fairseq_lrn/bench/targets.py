"""The issue's targets as one table of data (benchmarks, not tests), and their evaluation.

Each :class:`Target` is a row: which benchmark family (``--size``) it belongs to, what is
compared (``numerator`` against ``denominator``, on ``metric``), the threshold, and where it
applies (device, forced length, the size it was set at). The reports call :func:`evaluate`;
no threshold is written in report code.
"""

from dataclasses import dataclass
from typing import List, Optional, Tuple

# Families: which report evaluates the row.
LRN_FAMILY = "lrn"                   # --size tiny / iwslt / wmt: LRN vs lstm vs transformer
TRANSFORMER_FAMILY = "transformer"   # --size transformer-*: transformer_lrn vs transformer
DECODING_FAMILY = "decoding"         # benchmark_decoding.py: trained checkpoints, CTranslate2 / fairseq-generate / fast

# Metrics.
TRAIN = "train tok/s"                # ratios["a/b"]["train_tok_s"] >= threshold
SENT = "sent/s"                      # ratios["a/b"][key] >= threshold, every generation config key
BLEU_DIFF = "BLEU"                   # quality BLEU(a) - BLEU(b) >= threshold (same wall-clock budget)
BLEU_CELLS = "BLEU of the output"    # bleu[a][cell] - bleu[b][cell] >= threshold, every test-set cell

# ``numerator`` of a BLEU row: the run's primary LRN (fused, else cpu, else reference).
PRIMARY_LRN = "primary-lrn"
LRN_PREFERENCE = ("lrn-fused", "lrn-cpu", "lrn-reference")


@dataclass(frozen=True)
class Target:
    family: str
    numerator: str
    denominator: str
    metric: str
    threshold: float
    device: Optional[str] = None      # applies on this --device only (None: any)
    length: Optional[int] = None      # sent/s at this forced length only (None: every length)
    set_at_size: Optional[str] = None  # the --size it was set at: other sizes get a note
    cells: Tuple[str, ...] = ()       # only the keys holding all these parts ("beam5", "b32", "t2"; () = all)

    def as_table_row(self) -> dict:
        """The row as the transformer-* report's ``targets_table`` lists it."""
        row = {"numerator": self.numerator, "denominator": self.denominator, "metric": self.metric,
               "ratio": self.threshold, "length": self.length}
        return {**row, "cells": list(self.cells)} if self.cells else row

    def applies_to(self, key: str) -> bool:
        """Whether the generation key ``key`` is one of this target's cells."""
        parts = key.split("_")
        return (self.length is None or key.endswith(f"_L{self.length}")) and all(c in parts for c in self.cells)


TARGETS = (
    # LRN vs lstm (the targets are set at --size iwslt)
    Target(LRN_FAMILY, "lrn-cpu", "lstm", TRAIN, 1.8, device="cpu", set_at_size="iwslt"),
    Target(LRN_FAMILY, "lrn-cpu", "lstm", SENT, 1.3, device="cpu", set_at_size="iwslt"),
    Target(LRN_FAMILY, "lrn-fused", "lstm", TRAIN, 2.5, device="cuda", set_at_size="iwslt"),
    Target(LRN_FAMILY, "lrn-fused", "lrn-reference", TRAIN, 1.5, device="cuda", set_at_size="iwslt"),
    Target(LRN_FAMILY, PRIMARY_LRN, "lstm", BLEU_DIFF, 0.0, set_at_size="iwslt"),
    # transformer_lrn vs transformer
    Target(TRANSFORMER_FAMILY, "transformer-lrn", "transformer", SENT, 1.1, length=30),
    Target(TRANSFORMER_FAMILY, "transformer-lrn", "transformer", SENT, 1.3, length=150),
    Target(TRANSFORMER_FAMILY, "transformer-lrn-dec2", "transformer", SENT, 1.9),
    Target(TRANSFORMER_FAMILY, "transformer-lrn", "transformer", TRAIN, 1.0),
    # decoding on a CPU with 2 cores (issue 20), each way of using them: 2 threads on one batch
    # ("t2"), or 2 one-thread workers on two batches (CTranslate2's inter_threads; "t1", "w2").
    # The fast command against CTranslate2's fastest mode ...
    *(row for cores in (("t2",), ("t1", "w2")) for row in (
        Target(DECODING_FAMILY, "transformer-lrn/fast-best", "transformer/ct2-best", SENT, 1.3,
               cells=("beam5", "b32", *cores)),
        Target(DECODING_FAMILY, "transformer-lrn/fast-best", "transformer/ct2-best", SENT, 1.0,
               cells=("beam5", "b1", *cores)),
        Target(DECODING_FAMILY, "transformer-lrn-dec2/fast-best", "transformer-dec2/ct2-best", SENT, 1.3,
               cells=("beam5", "b32", *cores)),
        Target(DECODING_FAMILY, "lrn/fast-best", "transformer/ct2-best", SENT, 2.0, cells=("beam5", "b32", *cores)),
        # ... and against fairseq-generate on the same checkpoint
        *(Target(DECODING_FAMILY, f"{m}/fast-best", f"{m}/fairseq-generate", SENT, ratio, cells=(batch, *cores))
          for m in ("transformer-lrn", "transformer-lrn-dec2", "lrn") for batch, ratio in (("b32", 1.8), ("b1", 1.5))))),
    # every quantized mode within 0.3 BLEU of fp32 on real text
    *(Target(DECODING_FAMILY, f"{m}/fast-int8", f"{m}/fast-fp32", BLEU_CELLS, -0.3)
      for m in ("transformer-lrn", "transformer-lrn-dec2", "lrn")),
)


def family_targets(family: str, targets=TARGETS) -> List[Target]:
    return [t for t in targets if t.family == family]


def primary_lrn(systems) -> Optional[str]:
    """The first of lrn-fused, lrn-cpu, lrn-reference among ``systems``."""
    return next((n for n in LRN_PREFERENCE if n in systems), None)


def _label(family: str, metric: str, key: Optional[str]) -> str:
    if key is None:
        return metric
    return f"{key} {metric}" if family == LRN_FAMILY else f"{metric} {key}"


def _bleu_cell_rows(t: Target, report: dict) -> List[dict]:
    """BLEU(numerator) - BLEU(denominator) of every test-set cell both were scored on."""
    bleu = report.get("bleu") or {}
    a, b = bleu.get(t.numerator, {}), bleu.get(t.denominator, {})
    return [{"what": f"{t.metric} {key}: {t.numerator} - {t.denominator}", "value": a[key] - b[key],
             "target": t.threshold, "met": a[key] - b[key] >= t.threshold}
            for key in a if key in b and t.applies_to(key)]


def _bleu_row(t: Target, report: dict) -> Optional[dict]:
    q = report.get("quality")
    if not q:
        return None
    a = primary_lrn(list(q["systems"])) if t.numerator == PRIMARY_LRN else t.numerator
    if not a or a not in q["systems"] or t.denominator not in q["systems"]:
        return None
    diff = q["systems"][a]["bleu"] - q["systems"][t.denominator]["bleu"]
    return {"what": f"BLEU {a} - {t.denominator} after {q['budget_seconds']:g} s", "value": diff,
            "target": t.threshold, "met": diff >= t.threshold}


def evaluate(report: dict, family: str, device: Optional[str] = None, size: Optional[str] = None,
             targets=TARGETS) -> List[dict]:
    """Rows ``{"what", "value", "target", "met"}`` of the family's targets that apply on
    ``device``, from the report's ``ratios`` (per-repeat ratios, medians), its
    ``config.gen_configs`` (the generation keys; ``_L<n>`` suffixes are forced lengths) and its
    ``quality``. A pair that was not measured gives no row; a length-bound target whose length
    was not run gives a row with value and met None ("not measured")."""
    rows = []
    ratios, gen_keys = report["ratios"], report["config"]["gen_configs"]
    for t in targets:
        if t.family != family or (t.device is not None and t.device != device):
            continue
        new = []
        if t.metric == BLEU_DIFF:
            row = _bleu_row(t, report)
            new = [row] if row else []
        elif t.metric == BLEU_CELLS:
            new = _bleu_cell_rows(t, report)
        else:
            r = ratios.get(f"{t.numerator}/{t.denominator}")
            if r is None:
                continue
            if t.metric == TRAIN:
                keys = ["train_tok_s"]
            else:
                keys = [k for k in gen_keys if t.applies_to(k)]
            for key in keys:
                if key in r:
                    where = _label(family, t.metric, None if key == "train_tok_s" else key)
                    new.append({"what": f"{where}: {t.numerator} / {t.denominator}", "value": r[key],
                                "target": t.threshold, "met": r[key] >= t.threshold})
            if not keys and t.length is not None:
                new.append({"what": f"{t.metric} at L={t.length}: {t.numerator} / {t.denominator}",
                            "value": None, "target": t.threshold, "met": None})
        if t.set_at_size and size and size != t.set_at_size:
            for row in new:
                row["what"] += f" (targets are set at --size {t.set_at_size}; this is {size})"
        rows += new
    return rows
