"""The decoding-speed family (``scripts/benchmark_decoding.py``): how fast trained checkpoints
translate on a CPU, with each runtime its users would deploy, in one run, interleaved.

The family as data: :data:`MODELS` (the checkpoints a user gives, by the model they are, and
the runtimes that decode that model), :data:`RUNTIMES` (how each decodes), the :class:`Cell`
grid (beam x batch x threads x test set / forced lengths), the ratios (:func:`pairs`) and the
targets (rows of :mod:`.targets`, family ``decoding``). The harness (:mod:`.harness`) runs the
repeats and writes the report.

A system is ``MODEL/RUNTIME`` (``transformer/ct2-int8``). Per repeat, ``MODEL/ct2-best`` and
``MODEL/fast-best`` are the faster of that runtime's two modes in that cell (CTranslate2's
fastest mode, the fast command's), so that ratios and targets compare against the best of each.
"""

import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from ..atomic_files import atomic_outputs
from ..prep.io import write_lines
from . import decoding_runtimes as rt
from .decoding_runtimes import Cell, TestSet
from .harness import finish_report, interleaved, report_head, start_run, summarize
from .stats import fmt_spread, md_table, print_ratios, print_targets, ratio_table
from .targets import DECODING_FAMILY, evaluate, family_targets


@dataclass(frozen=True)
class Runtime:
    note: str
    kind: str               # "ct2" | "generate" | "fast"
    option: str = ""        # the CTranslate2 compute type / the fast command's --quantize
    shortlist: bool = False  # the fast command with --shortlist (benchmark_decoding.py --shortlist FILE)
    step: str = "auto"      # the fast command's --step
    native: str = "auto"    # the fast command's --native


RUNTIMES = {
    "ct2-int8": Runtime("CTranslate2, int8 weights (compute_type int8: quantized at loading)", "ct2", "int8"),
    "ct2-float32": Runtime("CTranslate2, float32", "ct2", "float32"),
    "ct2-int8-vmap": Runtime("CTranslate2, int8, with the shortlist as its vocabulary map (use_vmap)", "ct2", "int8",
                             shortlist=True),
    "fairseq-generate": Runtime("fairseq-generate (SequenceGenerator)", "generate"),
    "fast-fp32": Runtime("fairseq-lrn-translate --quantize none", "fast", "none"),
    "fast-int8": Runtime("fairseq-lrn-translate --quantize int8", "fast", "int8"),
    "fast-int8-shortlist": Runtime("fairseq-lrn-translate --quantize int8 --shortlist FILE", "fast", "int8",
                                   shortlist=True),
    "fast-int8-eager": Runtime("fairseq-lrn-translate --quantize int8 --step eager (the step not traced)", "fast",
                               "int8", step="eager"),
    "fast-int8-torch-select": Runtime("fairseq-lrn-translate --quantize int8 --native no (the search steps' "
                                      "candidate selection and bookkeeping and the int8 products as PyTorch "
                                      "operations, not compiled)",
                                      "fast", "int8", native="no"),
}
CT2 = ("ct2-int8", "ct2-float32")
FAST = ("fast-fp32", "fast-int8")  # the modes that keep the translations' quality (fast-best)
SHORTLISTED = ("fast-int8-shortlist",)  # may change translations: BLEU in the report, not in fast-best
CT2_SHORTLISTED = ("ct2-int8-vmap",)  # CTranslate2 with the same lists: what fast-int8-shortlist is compared with
EAGER = ("fast-int8-eager",)  # the same translations as fast-int8: how much the traced step gives
TORCH_SELECT = ("fast-int8-torch-select",)  # fast-int8's translations: how much the compiled parts give
TRANSFORMER_RUNTIMES = CT2 + CT2_SHORTLISTED + ("fairseq-generate",)
LRN_RUNTIMES = FAST + SHORTLISTED + EAGER + TORCH_SELECT + ("fairseq-generate",)
# model -> (what the checkpoint is, the runtimes that decode it, the transformer it is compared with)
MODELS: Dict[str, Tuple[str, Tuple[str, ...], Optional[str]]] = {
    "transformer": ("fairseq transformer (6+6 or 3+3 layers)", TRANSFORMER_RUNTIMES, None),
    "transformer-dec2": ("fairseq transformer with a 2-layer decoder (6+2, same dims)", TRANSFORMER_RUNTIMES,
                         None),
    "transformer-lrn": ("transformer_lrn, the transformer's depth and dims", LRN_RUNTIMES,
                        "transformer"),
    "transformer-lrn-dec2": ("transformer_lrn, 6+2 layers (transformer-dec2's)", LRN_RUNTIMES,
                             "transformer-dec2"),
    "lrn": ("lrn (2+2, the quality race's size)", LRN_RUNTIMES, "transformer"),
    "lrn-conditional": ("lrn with the authors' decoder (--decoder-style conditional)", LRN_RUNTIMES,
                        "transformer"),
}
BEST = {"ct2-best": CT2, "fast-best": FAST}


def make_cells(beams, batch_sizes, threads, forced_lengths, test_set: bool = True, workers=()) -> List[Cell]:
    """The grid, test set first: (test set, L ...) x cores x beams x batch sizes; the cores are
    each of ``threads`` (one batch at a time), then each of ``workers`` > 1 (that many batches at
    once, one thread each)."""
    lengths = ([None] if test_set else []) + list(forced_lengths)
    cores = [(t, 1) for t in threads] + [(1, w) for w in workers if w > 1]
    return [Cell(b, n, t, L, w) for L in lengths for t, w in cores for b in beams for n in batch_sizes]


def make_systems(checkpoints: Dict[str, str], runtimes) -> Dict[str, dict]:
    """``{"MODEL/RUNTIME": {"model", "runtime", "checkpoint", "note"}}`` of the given checkpoints
    and the requested runtimes that decode their model."""
    return {f"{model}/{name}": {"model": model, "runtime": name, "checkpoint": ckpt,
                                "note": f"{MODELS[model][0]}; {RUNTIMES[name].note}"}
            for model, ckpt in checkpoints.items() for name in MODELS[model][1] if name in runtimes}


def unavailable(system: dict, shortlist: Optional[str] = None) -> Optional[str]:
    runtime = RUNTIMES[system["runtime"]]
    if runtime.shortlist and not shortlist:
        return "needs a shortlist: --shortlist FILE (scripts/build_shortlist.py)"
    return {"ct2": rt.ctranslate2_missing, "fast": rt.fast_command_missing}.get(runtime.kind, lambda: None)()


def pairs(names) -> List[Tuple[str, str]]:
    """The ratios of the report: each LRN model's fast modes (and their best) against its own
    fairseq-generate and against its transformer's CTranslate2 modes (and their best); each
    transformer's CTranslate2 against its fairseq-generate; int8 against fp32 of one runtime."""
    out = []
    for model, (_, _, base) in MODELS.items():
        fast = [f"{model}/{r}" for r in FAST + ("fast-best",) + SHORTLISTED]
        ct2 = [f"{model}/{r}" for r in CT2 + ("ct2-best",)]
        out += [(a, f"{model}/fairseq-generate") for a in fast + ct2]
        if base:
            out += [(a, f"{base}/{r}") for a in fast for r in CT2 + ("ct2-best",)]
            out += [(f"{model}/{a}", f"{base}/{b}") for a in SHORTLISTED for b in CT2_SHORTLISTED]
        out += [(f"{model}/fast-int8", f"{model}/fast-fp32"), (f"{model}/ct2-int8", f"{model}/ct2-float32"),
                (f"{model}/ct2-int8-vmap", f"{model}/ct2-int8"),
                (f"{model}/fast-int8-shortlist", f"{model}/fast-int8"), (f"{model}/fast-int8", f"{model}/fast-int8-eager"),
                (f"{model}/fast-int8", f"{model}/fast-int8-torch-select")]
    return [(a, b) for a, b in out if a in names and b in names]


def add_best(results: Dict[str, List[dict]]) -> None:
    """Per repeat and cell, ``MODEL/ct2-best`` / ``MODEL/fast-best``: the sent/s of the fastest
    of that runtime's modes that ran (of the one mode, when only one ran)."""
    for model in MODELS:
        for best, modes in BEST.items():
            runs = [results[f"{model}/{m}"] for m in modes if f"{model}/{m}" in results]
            if runs:
                results[f"{model}/{best}"] = [{k: max(r[k] for r in rep if k in r) for k in rep[0]}
                                              for rep in zip(*runs)]


def make_decoder(system: dict, test: TestSet, work: str, shortlist: Optional[str] = None
                 ) -> Callable[[Cell], rt.Decoded]:
    """``decode(cell)`` of one system (CTranslate2: one float32 conversion per checkpoint for both
    compute types, translators loaded once; ``shortlist``: the file of the shortlisted runtimes)."""
    runtime = RUNTIMES[system["runtime"]]
    if runtime.kind == "ct2":
        model_dir = rt.ct2_convert(system["checkpoint"], test, work)
        if runtime.shortlist:
            model_dir = rt.ct2_vocabulary_map(model_dir, shortlist, test)
        translators = rt.CT2Translators(runtime.option)
        return lambda cell: rt.ct2_translate(translators, model_dir, test, cell, use_vmap=runtime.shortlist)
    if runtime.kind == "fast":
        listed = shortlist if runtime.shortlist else None
        return lambda cell: rt.fast_translate(system["checkpoint"], test, cell, runtime.option, shortlist=listed,
                                              step=runtime.step, native=runtime.native)
    return lambda cell: rt.fairseq_generate(system["checkpoint"], test, cell)


def run(args, test: TestSet, references: List[str], argv=None) -> dict:
    """Every system on every cell, ``args.repeats`` interleaved repeats (``for repeat: for
    system: for cell``); BLEU of each test-set cell's output (sacreBLEU on the Moses-detokenized
    hypotheses, from the first repeat); the report, its ratios and targets."""
    from ..tools.scoring import detokenize, sacrebleu_score

    start = start_run(args, prefix="lrn-decoding-")
    if args.hypotheses_dir:
        os.makedirs(args.hypotheses_dir, exist_ok=True)
    cells = make_cells(args.beams, args.batch_sizes, args.threads, args.forced_lengths, not args.skip_test_set,
                       args.workers)
    systems, skipped = {}, {}
    for name, system in make_systems(args.system, args.runtimes).items():
        why = unavailable(system, args.shortlist)
        if why:
            skipped[name] = why
            print(f"!! {name} skipped: {why}")
        else:
            system["decode"] = make_decoder(system, test, start["work"], args.shortlist)
            systems[name] = system
    if not systems:
        raise SystemExit("no system can run: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    print(f"== {len(test.lines)} test sentences; systems: {', '.join(systems)}; cells: "
          f"{', '.join(c.key for c in cells)}; {args.repeats} repeats", flush=True)
    bleu: Dict[str, Dict[str, float]] = {n: {} for n in systems}

    def measure(r, name, system):
        out = {}
        for cell in cells:
            decoded = system["decode"](cell)
            out[cell.key] = len(test.lines) / decoded.seconds
            if r == 0 and cell.length is None:
                bleu[name][cell.key] = sacrebleu_score(detokenize(decoded.hypotheses, args.detok_lang), references)
            if r == 0 and args.hypotheses_dir:
                path = os.path.join(args.hypotheses_dir, f"{name.replace('/', '.')}.{cell.key}.txt")
                with atomic_outputs(path) as (temp,):
                    write_lines(temp, decoded.hypotheses)
        return out

    results = interleaved(systems, args.repeats, measure,
                          line=lambda n, m: f"{n:<34s} " + "  ".join(f"{k} {v:8.1f}" for k, v in m.items()))
    add_best(results)
    report = {**report_head(args, argv),
              "config": {"device": "cpu", "repeats": args.repeats, "cells": [c.key for c in cells],
                         "gen_configs": [c.key for c in cells], "data": test.data_bin,
                         "test_source": test.source_file, "test_sentences": len(test.lines),
                         "source_lang": test.source_lang, "target_lang": test.target_lang,
                         "checkpoints": dict(args.system), "shortlist": args.shortlist},
              "skipped": skipped,
              "systems": {n: {**({k: v for k, v in systems[n].items() if k != "decode"} if n in systems else
                                 {"note": "the faster mode of each repeat and cell"}),
                              **summarize(runs)} for n, runs in results.items()},
              "bleu": bleu, "ratios": ratio_table(results, pairs(results), lambda a, b: [c.key for c in cells],
                                                  require_all=False)}
    report["targets"] = evaluate(report, DECODING_FAMILY, "cpu")
    report["targets_table"] = [t.as_table_row() for t in family_targets(DECODING_FAMILY)]
    return finish_report(report, args, t_start=start["t_start"], load_start=start["load_start"],
                         print_report=print_report, plot=plot)


def print_report(report: dict) -> None:
    cfg, systems, m = report["config"], report["systems"], report["machine"]
    keys = cfg["cells"]
    print(f"\n## Decoding speed on cpu ({m.get('cpu')}), {cfg['test_sentences']} test sentences, "
          f"{cfg['repeats']} interleaved repeats; sentences/s, median (min-max)\n")
    md_table(["system", *(k.replace("_", " ") for k in keys)],
             [[name, *(fmt_spread(s[k], 1) if k in s else "-" for k in keys)] for name, s in systems.items()])
    test_keys = [k for k in keys if k.endswith("_test")]
    if test_keys and report["bleu"]:
        print("\n### BLEU of each output (sacreBLEU, Moses-detokenized; test-set cells)\n")
        md_table(["system", *(k.replace("_", " ") for k in test_keys)],
                 [[name, *(f"{by_cell[k]:.2f}" if k in by_cell else "-" for k in test_keys)]
                  for name, by_cell in report["bleu"].items()])
    print("\nCells: greedy = beam 1; b<N>: sentences per batch; t<N>: CPU threads; w<N>: N batches at once, one thread each (CTranslate2 inter_threads, fairseq-lrn-translate --workers; fairseq-generate gets N threads); test: the test set decoded "
          "freely (max 200 tokens); L<N>: every hypothesis forced to N tokens (min = max length), speed alone. "
          "Seconds are decoding time without model loading.")
    for name, s in systems.items():
        print(f"- {name}: {s['note']}")
    for name, why in report["skipped"].items():
        print(f"Skipped {name}: {why}.")
    print_ratios(report["ratios"], keys)
    print_targets(report["targets"], unit="")


def plot(report: dict, path: str) -> None:
    from .plots import bars, figure, save

    keys, systems = report["config"]["cells"], report["systems"]
    fig, (ax,) = figure(1, max(6.0, 1.2 * len(keys)), 4.3)
    bars(ax, keys, {name: [s[k]["median"] if k in s else 0 for k in keys] for name, s in systems.items()}, log=True,
         rotation=0, ticklabels=[k.replace("_", "\n") for k in keys], legend_size=6)
    ax.set(ylabel="sentences / s (log)", title="CPU decoding speed")
    save(fig, path)
