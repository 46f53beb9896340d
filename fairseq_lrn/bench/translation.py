"""``scripts/benchmark_models.py``'s run, shared by its two families: :mod:`.lrn` (``--size tiny /
iwslt / wmt``: LRN vs lstm vs transformer) and :mod:`.transformer_lrn` (``--size transformer-*``).

A family module declares, as data and small functions:

* ``PRESETS`` (its sizes), ``SYSTEMS`` / ``DEFAULT_SYSTEMS``, ``build_systems`` (name -> fairseq
  flags on :func:`recipe`, sized), ``check_args`` / ``finish_args`` / ``wrong_systems`` (its options);
* its cells: ``LENGTH_MAJOR`` (the order of :func:`generation_cells`), ``cells(ctx, name, repeat)``
  (what a system decodes in a repeat), ``trains(name)``, ``STEP_TIMES``, ``QUICK_B1``,
  ``WARM_EVERY_BATCH`` (CUDA warm-up on every distinct batch);
* its report: ``pairs`` / ``ratio_keys`` / ``REQUIRE_ALL`` (the ratios), ``config`` / ``entry``
  (the columns), ``FAMILY`` (its rows of :mod:`.targets`), ``body`` and ``plot`` (tables, figure);
* its measurements besides the repeats: ``after`` (systems still built), ``after_close`` (if any).

This module runs the rest the same way for both: the data, the fixed batches, the cells, warm-up,
interleaved repeats, the report's shared parts, the targets, ``--json`` / ``--plot``.
"""

import importlib.util
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List

import torch

from . import data
from .harness import finish_report, interleaved, report_head, start_run
from .shapes import train_flags
from .stats import ratio_table
from .targets import evaluate

# (key, beam, batch size) of the generation measurements; greedy = beam 1.
GEN_CONFIGS = (("beam5_b1", 5, 1), ("beam5_b64", 5, 64), ("greedy_b1", 1, 1), ("greedy_b64", 1, 64))


@dataclass
class Cell:
    """A timed decoding setting: fixed test ``batches``, each forced to its entry of ``lengths``."""
    key: str
    beam: int
    batch_size: int
    lengths: List[int] = field(repr=False)
    batches: list = field(repr=False)


def per_device(value, device: str):
    return value[device] if isinstance(value, dict) else value


def recipe(args, p, data_bin: str, langs, share_all: bool, clip_norm: float, warmup_updates: int,
           max_tokens=None, extra=()) -> List[str]:
    """fairseq-train flags every system of both families shares (:func:`.shapes.train_flags` for
    ``--task translation``, label-smoothed cross-entropy 0.1; ``langs``: (source, target), None
    left to fairseq)."""
    lang_flags = [t for flag, lang in zip(("--source-lang", "--target-lang"), langs) if lang for t in (flag, lang)]
    return train_flags(data_bin, task="translation", task_flags=lang_flags,
                       criterion=["--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"],
                       clip_norm=clip_norm, lr=p.lr, warmup_updates=warmup_updates,
                       max_tokens=max_tokens or args.max_tokens, dropout=p.dropout, seed=args.seed,
                       device=args.device, share_all=share_all,
                       extra=["--no-progress-bar", "--log-format", "simple", *extra])


def finish_args(parser, args, family) -> None:
    """Check ``benchmark_models.py``'s options and fill in the size's defaults (``--quick``: 1
    repeat, 2 timed steps, few sentences); the family checks its own options first."""
    family.check_args(parser, args)
    args.systems = list(args.systems or family.DEFAULT_SYSTEMS)
    bad = [n for n in args.systems if n not in family.SYSTEMS]
    if bad:
        parser.error(family.wrong_systems(args, bad))
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    if args.data and not os.path.isdir(args.data):
        parser.error(f"--data {args.data!r} is not a directory")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        parser.error("--plot needs matplotlib: pip install matplotlib")
    p, dev = family.PRESETS[args.size], args.device
    args.max_tokens = args.max_tokens or per_device(p.max_tokens, dev)
    args.train_steps = args.train_steps or per_device(p.train_steps, dev)
    args.gen_sentences_b1 = args.gen_sentences_b1 or per_device(p.gen_b1, dev)
    args.gen_sentences_b64 = args.gen_sentences_b64 or per_device(p.gen_b64, dev)
    if args.quick:
        args.repeats, args.train_steps = 1, min(args.train_steps, 2)
        args.gen_sentences_b1, args.gen_sentences_b64 = min(args.gen_sentences_b1, family.QUICK_B1), 64
    family.finish_args(parser, args)


def speed_data(args, preset, work: str):
    """(data-bin, (source, target language), share all embeddings) of the speed measurements:
    ``--data`` (languages given or inferred) or synthetic data (one dictionary)."""
    if not args.data:
        return data.synthetic_bin(work, preset.vocab, {"train": preset.train_sentences, "test": preset.test_sentences},
                                  preset.median_len, seed=args.seed), (data.SRC, data.TGT), preset.share_all
    inferred = data.infer_langs(args.data)
    langs = (args.source_lang or inferred[0], args.target_lang or inferred[1])
    joined = data.dictionaries_joined(args.data, langs[0] or data.SRC, langs[1] or data.TGT)
    if preset.share_all and not joined:
        print("!! the data-bin's dictionaries differ: --share-decoder-input-output-embed instead of "
              "--share-all-embeddings (preprocess with --joined-dictionary)")
    return args.data, langs, preset.share_all and joined


def generation_cells(args, task, length_major: bool) -> List[Cell]:
    """The cells of every generation config (:data:`GEN_CONFIGS`) on fixed test batches, forced
    to each batch's longest reference, or to each ``--forced-lengths`` L (keys ``<config>_L<L>``;
    ``length_major``: all configs of the first L first)."""
    if args.skip_generation:
        return []
    sets = {bs: data.generation_batches(task, args.gen_sentences_b1 if bs == 1 else args.gen_sentences_b64, bs,
                                        seed=args.seed) for bs in (1, 64)}
    lengths = args.forced_lengths or [None]
    order = [(L, c) for L in lengths for c in GEN_CONFIGS] if length_major else \
        [(L, c) for c in GEN_CONFIGS for L in lengths]
    return [Cell(key if L is None else f"{key}_L{L}", beam, bs,
                 sets[bs][1] if L is None else [L] * len(sets[bs][0]), sets[bs][0])
            for L, (key, beam, bs) in order]


def measure(system, train: bool, train_batches, warmup: int, cells: List[Cell], step_times: bool = False) -> dict:
    """One repeat of one system: ``warmup`` untimed + the timed updates (target tokens/s; each
    update's seconds with ``step_times``), then sentences/s of each cell."""
    out = {}
    if train:
        system.train_steps(train_batches[:warmup])
        timed = train_batches[warmup:]
        seconds = system.train_steps(timed)
        out["train_tok_s"] = sum(int(b["ntokens"]) for b in timed) / sum(seconds)
        if step_times:
            out["train_step_s"] = seconds
    for c in cells:
        out[c.key] = system.time_generation(c.batches, c.beam, c.lengths)
    return out


def warm_up(system, train: bool, train_batches, warmup: int, cells: List[Cell], every_batch: bool) -> None:
    """Untimed first calls: the first training batch(es) and one sentence of each batch-1 cell;
    ``every_batch`` (the fused kernels on CUDA: Triton compiles kernels per class of shapes):
    every distinct batch once instead."""
    if train:
        system.train_steps(train_batches if every_batch else train_batches[:max(warmup, 1)])
    for c in cells:
        if c.batch_size == 1 or every_batch:
            n = len(c.batches) if every_batch else 1
            system.generate(c.batches[:n], c.beam, c.lengths[:n])


def setup(args, family, start: dict) -> dict:
    """The run's context: its data, the family's systems (built and sized), the fixed training
    batches and the generation cells."""
    p = family.PRESETS[args.size]
    data_bin, langs, share_all = speed_data(args, p, start["work"])
    print(f"== data: {data_bin}" + ("" if args.data else " (synthetic: random Zipfian tokens, for speed only)"))
    skipped: Dict[str, str] = {}
    systems = family.build_systems(args, p, data_bin, langs, share_all, skipped)
    if not systems:
        raise SystemExit("no system can run here: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    task = next(iter(systems.values())).load_splits()
    batches = data.training_batches(task, args.max_tokens, args.warmup_steps + args.train_steps, seed=args.seed)
    ctx = {**start, "args": args, "preset": p, "data_bin": data_bin, "share_all": share_all, "systems": systems,
           "skipped": skipped, "task": task, "train_batches": batches,
           "cells": generation_cells(args, task, family.LENGTH_MAJOR)}
    tokens = [int(b["ntokens"]) for b in batches]
    print("== systems: " + ", ".join(f"{n} ({s.params:,} params)" for n, s in systems.items())
          + "".join(f"; {n} skipped: {why}" for n, why in skipped.items()))
    print(f"== {len(batches)} fixed training batches ({min(tokens)}-{max(tokens)} target tokens), "
          f"{args.warmup_steps} warm-up + {args.train_steps} timed updates per repeat; vocabulary "
          f"{len(task.target_dictionary)}; cells {[c.key for c in ctx['cells']]}; {args.repeats} repeats on "
          f"{args.device} ({torch.get_num_threads()} threads)", flush=True)
    return ctx


def repeats(ctx: dict, family) -> Dict[str, List[dict]]:
    """Every system warmed up, then ``--repeats`` interleaved repeats of :func:`measure` on the
    cells the family gives it in each repeat; ``{system: [one dict per repeat]}``."""
    args, systems, batches = ctx["args"], ctx["systems"], ctx["train_batches"]
    for name, s in systems.items():
        warm_up(s, family.trains(name), batches, args.warmup_steps, family.cells(ctx, name, 0),
                args.device == "cuda" and family.WARM_EVERY_BATCH)
    width = max(14, *map(len, systems))

    def line(name, m):
        return (f"{name:<{width}s} " + (f"train {m['train_tok_s']:9,.0f} tok/s  " if "train_tok_s" in m else "")
                + "  ".join(f"{k} {v:7.1f}" for k, v in m.items() if k not in ("train_tok_s", "train_step_s")))

    ctx["t_repeats"] = time.time()
    return interleaved(systems, args.repeats, lambda r, name, s: measure(
        s, family.trains(name), batches, args.warmup_steps, family.cells(ctx, name, r), family.STEP_TIMES),
        line, after_repeat=getattr(family, "after_repeat", None) and (lambda r, res: family.after_repeat(ctx, r, res)))


def build_report(ctx: dict, family, results: Dict[str, List[dict]], argv) -> dict:
    """The report's config, per-system summaries (the family's columns) and per-repeat ratios."""
    args, systems = ctx["args"], ctx["systems"]
    config = {"size": args.size, "preset": asdict(ctx["preset"]), "device": args.device, "repeats": args.repeats,
              "train_steps": args.train_steps, "warmup_steps": args.warmup_steps, "max_tokens": args.max_tokens,
              "gen_sentences_b1": args.gen_sentences_b1, "gen_sentences_b64": args.gen_sentences_b64,
              "gen_configs": [c.key for c in ctx["cells"]], "forced_lengths": args.forced_lengths,
              "data": ctx["data_bin"], "synthetic_data": not args.data,
              "train_batch_target_tokens": [int(b["ntokens"]) for b in ctx["train_batches"]]}
    return {**report_head(args, argv), "config": {**config, **family.config(ctx, systems, ctx["share_all"])},
            "skipped": ctx["skipped"],
            "systems": {n: {"params": s.params, "note": s.note, "argv": s.argv, **family.entry(results[n])}
                        for n, s in systems.items()},
            "ratios": ratio_table(results, family.pairs(systems), lambda a, b: family.ratio_keys(ctx, results, a, b),
                                  require_all=family.REQUIRE_ALL)}


def run(args, family, argv=None) -> dict:
    """The benchmark of ``args.size``'s family: systems built and sized, warmed up, measured in
    ``args.repeats`` interleaved repeats; the family's extra measurements; the report."""
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    ctx = setup(args, family, start_run(args, load_note="other jobs share this machine, timings will be noisy" + (
        "" if args.threads == 1 else "; with fewer free cores than threads, --threads 1 may be faster")))
    results = repeats(ctx, family)
    report = build_report(ctx, family, results, argv)
    family.after(ctx, ctx["systems"], results, report)
    for s in ctx.pop("systems").values():
        s.close()
    if hasattr(family, "after_close"):
        family.after_close(ctx, report)
    report["targets"] = evaluate(report, family.FAMILY, args.device, args.size)
    return finish_report(report, args, t_start=ctx["t_start"], load_start=ctx["load_start"],
                         print_report=lambda r: print_report(r, family), plot=family.plot)


def print_report(report: dict, family) -> None:
    cfg, m = report["config"], report["machine"]
    print(f"\n## Results: --size {cfg['size']} on {cfg['device']} ({m.get('gpu') or m.get('cpu')}, "
          f"{m['torch_threads']} threads), {cfg['repeats']} interleaved repeats; median (min-max)\n")
    family.body(report)
