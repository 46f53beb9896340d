"""``benchmark_models.py --size transformer-*``: ``transformer_lrn`` vs fairseq's ``transformer``
at the same dimensions, in one run, interleaved (``for repeat: for system:``).

Systems (``--systems`` picks a subset):

* ``transformer``          fairseq's transformer, E+D layers (6+6 at transformer-base-256)
* ``transformer-lrn``      ``--arch transformer_lrn``, the same flags: LRN instead of decoder self-attention
* ``transformer-dec2``     fairseq's transformer with a 2-layer decoder (same encoder)
* ``transformer-lrn-dec2`` transformer_lrn with a 2-layer decoder
* ``transformer-lrn-wide`` transformer_lrn with ``--decoder-ffn-embed-dim`` raised until its parameter
                           count matches the transformer's (training only)

Measured: CPU/GPU decoding sentences/s through fairseq's SequenceGenerator (beam 5 / greedy, batch
1 / 64, hypotheses forced to each of ``--forced-lengths``), time per output token vs L
(``--sweep-lengths`` at ``--sweep-cell``), the generator's incremental-state bytes per sentence at
the longest L (grows-with-output / constant / encoder-attention static), training tokens/s.

This module holds the family's options and its run; the systems and presets are in
:mod:`.transformer_lrn_systems`, the timed cells in :mod:`.transformer_lrn_speed`, the report in
:mod:`.transformer_lrn_report` and the targets in :mod:`.targets`.
"""

import argparse
from typing import Dict

import torch

from . import data, transformer_lrn_report, transformer_lrn_speed
from .harness import finish_report, start_run
from .targets import TRANSFORMER_FAMILY, evaluate
from .transformer_lrn_systems import DECODE_SYSTEMS, PRESETS, SYSTEMS, TRAIN_SYSTEMS, build_systems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument_group("transformer-* sizes (transformer_lrn vs transformer)").add_argument
    add("--sweep-lengths", nargs="*", type=int, metavar="L",
        help="forced lengths of the time-per-output-token sweep (default: per size; none: no sweep)")
    add("--sweep-cell", nargs=2, type=int, default=(5, 64), metavar=("BEAM", "BATCH"),
        help="beam and batch size of the sweep (default: 5 64; a cell of the main grid is reused)")
    add("--sweep-repeats", type=int, default=1, metavar="N",
        help="repeats (the first N) that time the sweep's lengths outside the main grid (default: 1; the "
             "grid's own cells are timed in every repeat)")
    add("--state-length", type=int, help="forced length of the state-memory measurement "
        "(default: the longest --forced-lengths)")
    add("--transformer-lrn-arch", default="transformer_lrn", metavar="ARCH",
        help="fairseq --arch of the LRN systems (default: %(default)s)")
    add("--no-wide", action="store_true", help="skip transformer-lrn-wide (parameter-matched FFN)")


def finish_args(parser, args) -> None:
    p = PRESETS[args.size]
    for flag in ("quality", "fp16", "tf32"):
        if getattr(args, flag):
            parser.error(f"--{flag} is not supported with --size {args.size}")
    if args.profile is not None or args.lrn_args:
        parser.error(f"--profile / --lrn-args are not supported with --size {args.size}")
    args.systems = list(args.systems or SYSTEMS)
    if args.no_wide and "transformer-lrn-wide" in args.systems:
        args.systems.remove("transformer-lrn-wide")
    bad = [n for n in args.systems if n not in SYSTEMS]
    if bad:
        parser.error(f"--size {args.size} runs {', '.join(SYSTEMS)}; not {bad}")
    args.forced_lengths = list(args.forced_lengths or p.forced_lengths)
    args.sweep_lengths = list(p.sweep_lengths if args.sweep_lengths is None else args.sweep_lengths)
    args.state_length = args.state_length or max(args.forced_lengths)
    if min(args.forced_lengths + args.sweep_lengths + [args.state_length]) < 1:
        parser.error("forced lengths must be >= 1")
    args.max_tokens = args.max_tokens or p.max_tokens
    args.train_steps = args.train_steps or p.train_steps
    args.gen_sentences_b1 = args.gen_sentences_b1 or p.gen_b1
    args.gen_sentences_b64 = args.gen_sentences_b64 or p.gen_b64
    if args.quick:
        args.repeats, args.train_steps = 1, min(args.train_steps, 2)
        args.gen_sentences_b1, args.gen_sentences_b64 = 1, 64


# ----------------------------------------------------------------------------- main

def main(args, argv=None) -> dict:
    p = PRESETS[args.size]
    start = start_run(args)
    t_start, work = start["t_start"], start["work"]
    if args.data:
        data_bin = args.data
        inferred = data.infer_langs(data_bin)
        langs = (args.source_lang or inferred[0], args.target_lang or inferred[1])
        share_all = data.dictionaries_joined(data_bin, langs[0] or data.SRC, langs[1] or data.TGT)
        if not share_all:
            print("!! the data-bin's dictionaries differ: --share-decoder-input-output-embed instead of "
                  "--share-all-embeddings (preprocess with --joined-dictionary)")
    else:
        data_bin = data.synthetic_bin(work, p.vocab, {"train": p.train_sentences, "test": p.test_sentences},
                                      p.median_len, seed=args.seed)
        langs, share_all = (data.SRC, data.TGT), True
    print(f"== data: {data_bin}" + ("" if args.data else " (synthetic: random Zipfian tokens, for speed only)"))

    skipped: Dict[str, str] = {}
    systems = build_systems(args, p, data_bin, langs, share_all, skipped)
    if not systems:
        raise SystemExit("no system can run: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    first = next(iter(systems.values()))
    task = first.load_splits()
    vocab = len(task.target_dictionary)
    train_batches = data.training_batches(task, args.max_tokens, args.warmup_steps + args.train_steps, seed=args.seed)
    grid, sweep, sweep_keys = ([], [], {}) if args.skip_generation else transformer_lrn_speed.make_cells(args, task)
    trains = {n: n in TRAIN_SYSTEMS for n in systems}
    decodes = {n: n in DECODE_SYSTEMS for n in systems}
    print("== systems: " + ", ".join(f"{n} ({s.params:,} params)" for n, s in systems.items())
          + "".join(f"; {n} skipped: {why}" for n, why in skipped.items()))
    print(f"== vocabulary {vocab}; forced lengths {args.forced_lengths}; sweep {args.sweep_lengths} at beam "
          f"{args.sweep_cell[0]} batch {args.sweep_cell[1]}; {args.repeats} repeats on {args.device} "
          f"({torch.get_num_threads()} threads)", flush=True)

    state = {}
    for name, s in systems.items():
        st = transformer_lrn_speed.warm_up(s, name, p, args, train_batches, grid, sweep, trains[name], decodes[name])
        if st:
            state[name] = st

    results = transformer_lrn_speed.run_repeats(systems, args, train_batches=train_batches, grid=grid,
                                                sweep=sweep, trains=trains, decodes=decodes, t_start=t_start)

    report = transformer_lrn_report.build_report(
        args, argv, p=p, data_bin=data_bin, vocab=vocab, share_all=share_all, systems=systems, results=results,
        grid=grid, sweep_keys=sweep_keys, decodes=decodes, train_batches=train_batches, skipped=skipped,
        state=state)
    for s in systems.values():
        s.close()
    report["targets"] = evaluate(report, TRANSFORMER_FAMILY)
    return finish_report(report, args, t_start=t_start, load_start=start["load_start"],
                         print_report=transformer_lrn_report.print_report, plot=transformer_lrn_report.plot)

