#!/usr/bin/env python3
"""Same-wall-clock quality race: train several NMT systems for the same time, then score them.

Works on any raw parallel corpus given as fairseq-preprocess-style prefixes (PREFIX.SRC / PREFIX.TGT,
plain untokenized text, one sentence per line):

    python scripts/quality_race.py --src en --tgt fr --train DATA/train --valid DATA/valid --test DATA/test \\
        --work-dir race --budget-minutes 25 --json race.json --plot race-valid.png

1. Preparation (as for WMT; each step resumable, see below), in --work-dir:
     tok/     Moses punctuation normalisation, non-printing-character removal, aggressive (-a)
              tokenization (sacremoses, fairseq_lrn/prep/text.py); training pairs with an empty
              side or more than --max-len tokens are dropped (tok/train.clean.*)
     bpe/     joint BPE learned on the training data of both languages (subword-nmt, --bpe-merges)
              and the segmented text
     bin/     fairseq-preprocess --joined-dictionary (plus bin/code, the BPE codes)
   Every output is written under a temporary name and renamed when complete, and .done/STEP.json
   records each finished step with its settings (input files' sizes and times included): a rerun
   skips the finished steps, a changed input or setting reruns from the first step it affects.
   --prepare-only stops here.
2. For each system in turn (--systems; a fresh WORK/systems/NAME each time): fairseq-train for
   --budget-minutes of wall-clock (--stop-time-hours; fairseq then validates and saves once more),
   fairseq-generate on the test set with checkpoint_best.pt (--beam, --remove-bpe), Moses
   detokenization and sacreBLEU + chrF against the raw test references (fairseq_lrn.tools.scoring,
   as scripts/evaluate.py scores).
   The *-distilled students train on the teacher's (transformer's) beam translations of the training
   source instead of the references: sequence-level distillation (fairseq_lrn.tools.distill, done once
   for all students, resumable, in WORK/distilled/transformer); race the transformer first.
   A system that fails is reported as failed; the others still run.
   --lenpen-grid LP ...: then, for each system (finished ones of --json included, not trained
   again), the validation set is translated with each length penalty (fairseq-generate --lenpen),
   the one with the best validation BLEU is kept, and the test set is translated with it: the
   "lenpen chosen on valid" column (JSON: "lenpen"). The test set never chooses. It shows how much
   of a gap is output length (the brevity penalty), e.g. of students trained on a teacher's short
   translations.
   With --json, a system already finished in that report (same data) is kept and not trained again
   (--rerun trains it again): a race that does not fit one sitting goes on where it stopped.
3. A markdown table (and --json, rewritten after each system): parameters, training wall-clock (the
   clock --stop-time-hours reads: from the trainer's start, validations included), updates, epochs
   (fractional when the budget ends inside one), training words/s (target tokens/s over the whole
   run: fairseq's epoch summaries weighted by their train_wall), best validation loss, BLEU, chrF, decoding time (fairseq-generate's
   own "Translated ... in Xs", without start-up). The JSON adds the exact commands, the logs' paths,
   the sacreBLEU signatures and data facts, among them reference_roundtrip_bleu: the BLEU of the test
   references tokenized and detokenized again, the ceiling the Moses pre/post-processing leaves (on
   software messages "%s" comes back as "% s", and normalisation rewrites some quotes).

The systems (fairseq_lrn/bench/race/systems.py): fairseq's transformer and transformer_lrn at 3+3
layers x 256 (FFN 1024, 4 heads), lrn 2+2 (embed 256, hidden 512) with additive, general, and the
authors' conditional decoder, fairseq's lstm, and the 6+2 students (transformer and transformer_lrn,
on the references and distilled). They share one optimiser recipe, chosen for a ~25-minute CPU
budget, i.e. about a thousand updates: Adam (0.9, 0.98), lr 1e-3 (--lr), inverse-sqrt schedule with
300 warm-up updates (--warmup-updates; fairseq's usual 4000 would not end within the budget),
clip-norm 1.0, label-smoothed cross-entropy 0.1, --max-tokens 4096, dropout 0.1 (little
regularisation is needed in so short a run), all embeddings shared, validation after each epoch, no
per-epoch checkpoints, seed 1. 6+6 transformers do not translate within such a budget on 2 cores
(BLEU 3 after 15 minutes), 3+3 ones do. --train-args adds flags to every fairseq-train command
(later flags win), --tiny swaps in tiny model sizes (for tests and smoke runs). Decoding: beam 5,
batch 64, --max-len-a 1.5 --max-len-b 10 (an undertrained model must not babble for 200 tokens).
Every test sentence is translated: the plugin's last_partial_batch fix keeps the ones fairseq 0.12
drops. --plot draws each system's validation loss against its training wall-clock.
"""

import argparse
import os
import sys
from pathlib import Path

# The parts live in fairseq_lrn/bench/race/ (one job a module); the names tests and users call stay here.
from fairseq_lrn.bench.race.common import RaceError, log
from fairseq_lrn.bench.race.corpus import prepare, split_files
from fairseq_lrn.bench.race.report import (markdown_table, plot_valid_curves, previous_results,  # noqa: F401
                                           print_summary, write_json)
from fairseq_lrn.bench.race.run import cuda_available, run_system, tune_lenpen
from fairseq_lrn.bench.race.systems import SYSTEMS, override, recipe  # noqa: F401
from fairseq_lrn.bench.race.train_log import parse_train_log  # noqa: F401
from fairseq_lrn.prep.io import PrepError


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help="source language suffix (e.g. en)")
    p.add_argument("--tgt", required=True, help="target language suffix (e.g. fr)")
    for split in ("train", "valid", "test"):
        p.add_argument(f"--{split}", required=True, metavar="PREFIX",
                       help=f"{split} files PREFIX.SRC and PREFIX.TGT (raw text)")
    p.add_argument("--work-dir", type=Path, required=True, metavar="DIR",
                   help="prepared data (DIR/bin, ...) and each system's checkpoints and logs (DIR/systems/NAME)")
    p.add_argument("--bpe-merges", type=int, default=8000, metavar="N", help="joint BPE merges (default: 8000)")
    p.add_argument("--max-len", type=int, default=250, metavar="N",
                   help="drop training pairs with more tokens than this on a side (default: 250)")
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), metavar="NAME",
                   help=f"systems to race, in order (default: all: {' '.join(SYSTEMS)})")
    p.add_argument("--budget-minutes", type=float, default=25.0, metavar="M",
                   help="training wall-clock per system (fairseq-train --stop-time-hours M/60; default: 25)")
    p.add_argument("--prepare-only", action="store_true", help="build DIR/bin and stop")
    p.add_argument("--threads", type=int, default=os.cpu_count(), metavar="N",
                   help="torch threads (OMP/MKL) of training and decoding, and preparation processes "
                        "(default: all cores)")
    p.add_argument("--json", type=Path, metavar="OUT",
                   help="write the results as JSON, after each system; when OUT exists (same data), its finished "
                        "systems are kept and not trained again (unless --rerun), so a race can go on across runs")
    p.add_argument("--rerun", action="store_true",
                   help="train the --systems again even when --json already has their results")
    p.add_argument("--plot", type=Path, metavar="PNG",
                   help="draw each system's validation loss against training wall-clock (needs matplotlib)")
    p.add_argument("--beam", type=int, default=5, help="beam size for the test set (default: 5)")
    p.add_argument("--lenpen-grid", type=float, nargs="+", metavar="LP",
                   help="also choose each system's length penalty on the validation set: decode it with each LP "
                        "(fairseq-generate --lenpen), keep the best validation BLEU, and report the test BLEU with "
                        "it; done for finished systems of --json too, without training them again")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of every system (default: 1e-3)")
    p.add_argument("--warmup-updates", type=int, default=300, metavar="N", help="warm-up updates (default: 300)")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout of every system (default: 0.1)")
    p.add_argument("--max-tokens", type=int, default=4096, metavar="N", help="tokens per batch (default: 4096)")
    p.add_argument("--log-interval", type=int, default=25, metavar="N", help="fairseq-train --log-interval")
    p.add_argument("--train-args", default="", metavar="'ARGS'",
                   help="extra fairseq-train flags for every system, one quoted string (later flags win)")
    p.add_argument("--tiny", action="store_true",
                   help="tiny models (1+1 layers, d=32/64) for tests and smoke runs; scores mean nothing")
    args = p.parse_args(argv)
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown:
        p.error(f"unknown system(s) {' '.join(unknown)}; choose from {' '.join(SYSTEMS)}")
    if args.src == args.tgt:
        p.error("--src and --tgt must differ")
    if args.budget_minutes <= 0:
        p.error("--budget-minutes must be positive")
    if args.threads < 1:
        p.error("--threads must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        data = prepare(args, split_files(args))
    except (RaceError, PrepError, OSError) as exc:
        log(f"error: {exc}")
        return 1
    log(f"data: {data['bin']}, joint vocabulary {data['vocab_size']} entries, {data['train_pairs']} training pairs; "
        f"BLEU of the test references tokenized and detokenized again: {data['reference_roundtrip_bleu']:.2f} "
        "(the ceiling the preprocessing leaves)")
    try:
        finished = previous_results(args.json, data) if args.json else {}
    except RaceError as exc:
        log(f"error: {exc}")
        return 1
    report = {"data": data, "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "systems": finished}
    if not args.prepare_only:
        cuda = cuda_available()
        report["config"]["device"] = "cuda" if cuda else "cpu"
        os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        env = dict(os.environ)
        for name in args.systems:
            if not args.rerun and "bleu" in finished.get(name, {}):
                log(f"{name}: finished already in {args.json} (BLEU {finished[name]['bleu']:.2f}), skipped; "
                    "--rerun trains it again")
            else:
                report["systems"][name] = {**run_system(name, args, data, cuda, env),
                                           "budget_minutes": args.budget_minutes, "threads": args.threads}
            system = report["systems"][name]
            tuned = system.get("lenpen", {})
            if args.lenpen_grid and "bleu" in system and (tuned.get("grid") != args.lenpen_grid or "error" in tuned):
                system["lenpen"] = tune_lenpen(name, args, data, cuda, env)
            if args.json:  # after each system: a long race keeps its finished results
                write_json(report, args.json)
        print_summary(report, args)
        if args.plot:
            plot_valid_curves(report["systems"], args.plot)
    if args.json:
        write_json(report, args.json)
    failed = [n for n in args.systems if "error" in report["systems"].get(n, {})]
    for n in failed:
        log(f"{n} failed: {report['systems'][n]['error']}")
    tuning_failed = [n for n in args.systems if "error" in report["systems"].get(n, {}).get("lenpen", {})]
    for n in tuning_failed:
        log(f"{n}: choosing the length penalty failed: {report['systems'][n]['lenpen']['error']}")
    failed += tuning_failed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
