#!/usr/bin/env python
"""Decoding speed on a CPU: trained checkpoints translated by the runtimes their users would
deploy, in one run, interleaved (``for repeat: for system: for cell``), with each output's BLEU.

Systems (``MODEL/RUNTIME``; give each model's checkpoint with ``--system MODEL=CKPT``):

* ``transformer``, ``transformer-dec2`` (fairseq ``transformer``, e.g. 6+6 or 3+3, and 6+2): CTranslate2
  int8 and float32 (``ct2-int8``, ``ct2-float32``), with ``--shortlist FILE`` also int8 with the same
  lists as CTranslate2's vocabulary map (``ct2-int8-vmap``), and ``fairseq-generate``;
* ``transformer-lrn``, ``transformer-lrn-dec2`` (``transformer_lrn`` at those depths), ``lrn`` and
  ``lrn-conditional`` (the authors' decoder, ``--decoder-style conditional``):
  ``fairseq-lrn-translate`` in fp32 and int8 (``fast-fp32``, ``fast-int8``), with ``--shortlist FILE``
  also int8 with that lexical shortlist (``fast-int8-shortlist``), int8 with the step not traced
  (``fast-int8-eager``: what ``--step``'s trace gives), int8 with the search steps as PyTorch operations
  (``fast-int8-torch-select``: what ``--native``'s compiled steps give), and ``fairseq-generate``.

Cells: beam 5 and greedy x batch 1 and 32 x 1 and 2 threads (and 2 one-thread workers: two
batches at once, CTranslate2's inter_threads, fairseq-lrn-translate --workers), on the test set (BLEU of each
output: sacreBLEU on the Moses-detokenized hypotheses against --test-reference) and with every
hypothesis forced to L=30 and L=100 tokens (min = max decoding length; speed alone). Decoding
time never includes model loading. Ratios are per repeat within this run; targets are the rows
of fairseq_lrn/bench/targets.py (family "decoding").

    python scripts/benchmark_decoding.py --data race/bin --test-source race/bpe/test.en \\
        --test-reference DATA/test.fr --system transformer=T/checkpoint_best.pt \\
        --system transformer-lrn=TL/checkpoint_best.pt --system lrn=L/checkpoint_best.pt --json d.json

The data-bin's test split must hold the sentences of --test-source (fairseq-generate decodes it;
the other runtimes read the file). CTranslate2 is an extra: pip install ctranslate2 (or .[bench]).
"""

import argparse
import os

from fairseq_lrn.bench.data import infer_langs
from fairseq_lrn.bench.decoding_runtimes import TestSet
from fairseq_lrn.bench.decoding_speed import MODELS, RUNTIMES, run
from fairseq_lrn.prep.io import read_lines


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--system", action="append", required=True, metavar="MODEL=CKPT",
        help=f"a checkpoint and the model it is ({', '.join(MODELS)}); repeat for several. CTranslate2's "
             "converter unpickles the transformer checkpoints (--unsafe_deserialization): give only "
             "checkpoints you trained or trust")
    add("--data", required=True, help="the data-bin: dictionaries and the binarized test split")
    add("--test-source", required=True, help="the test split's source text, tokenized and BPE'd (one sentence a line)")
    add("--test-reference", required=True, help="the raw (detokenized) references, for BLEU")
    add("--source-lang", help="source language (default: inferred from the data-bin's test split)")
    add("--target-lang", help="target language (default: inferred)")
    add("--detok-lang", help="language of the Moses detokenizer (default: the target language)")
    add("--shortlist", metavar="FILE",
        help="a shortlist of the data-bin (scripts/build_shortlist.py): adds the runtimes fast-int8-shortlist "
             "(fairseq-lrn-translate --quantize int8 --shortlist FILE) for the LRN models and ct2-int8-vmap "
             "(CTranslate2 int8 with the same lists as its vocabulary map, use_vmap) for the transformers")
    add("--runtimes", nargs="+", choices=list(RUNTIMES), default=list(RUNTIMES),
        help="runtimes to run (default: all that decode the given models)")
    add("--beams", nargs="+", type=int, default=[5, 1], help="beam sizes (1 = greedy; default: 5 1)")
    add("--batch-sizes", nargs="+", type=int, default=[1, 32], help="sentences per batch (default: 1 32)")
    add("--threads", nargs="+", type=int, default=[1, 2], help="CPU threads, one batch at a time (default: 1 2)")
    add("--workers", nargs="*", type=int, default=[2], metavar="N",
        help="also N batches at once, one thread each (CTranslate2's inter_threads, fairseq-lrn-translate "
             "--workers; on N cores often the fastest; default: 2; none: no such cells)")
    add("--forced-lengths", nargs="*", type=int, default=[30, 100], metavar="L",
        help="also decode with every hypothesis forced to L tokens (default: 30 100; none: only the test set)")
    add("--skip-test-set", action="store_true", help="only the forced lengths (no BLEU)")
    add("--repeats", type=int, default=3, help="interleaved repeats (default: %(default)s)")
    add("--quick", action="store_true", help="1 repeat of beam 5, batch 32, 2 threads, L=30: checks that it runs")
    add("--work-dir", help="CTranslate2 models and scratch files (default: a temporary folder)")
    add("--hypotheses-dir", metavar="DIR",
        help="write each system's output of each cell (first repeat; BPE removed, tokenized) to "
             "DIR/MODEL.RUNTIME.CELL.txt")
    add("--json", help="write all numbers here")
    add("--plot", help="write a PNG here (matplotlib)")
    args = parser.parse_args(argv)
    systems = {}
    for spec in args.system:
        model, sep, ckpt = spec.partition("=")
        if not sep or model not in MODELS:
            parser.error(f"--system {spec!r}: expected MODEL=CKPT with MODEL one of {', '.join(MODELS)}")
        if not os.path.isfile(ckpt):
            parser.error(f"--system {spec!r}: no such checkpoint file {ckpt!r}")
        systems[model] = ckpt
    args.system = systems
    for path in (args.test_source, args.test_reference) + ((args.shortlist,) if args.shortlist else ()):
        if not os.path.isfile(path):
            parser.error(f"no such file: {path}")
    if not os.path.isdir(args.data):
        parser.error(f"--data {args.data!r} is not a directory")
    src, tgt = infer_langs(args.data, split="test")
    args.source_lang, args.target_lang = args.source_lang or src, args.target_lang or tgt
    if not (args.source_lang and args.target_lang):
        parser.error(f"cannot infer the languages of {args.data}: pass --source-lang and --target-lang")
    args.detok_lang = args.detok_lang or args.target_lang
    if args.quick:
        args.repeats, args.beams, args.batch_sizes, args.threads, args.workers = 1, [5], [32], [2], []
        args.forced_lengths = args.forced_lengths[:1]
    if min(args.beams + args.batch_sizes + args.threads + args.workers + args.forced_lengths + [args.repeats]) < 1:
        parser.error("beams, batch sizes, threads, workers, forced lengths and --repeats must be >= 1")
    if args.skip_test_set and not args.forced_lengths:
        parser.error("--skip-test-set needs --forced-lengths")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    lines, references = list(read_lines(args.test_source)), list(read_lines(args.test_reference))
    if len(lines) != len(references):
        raise SystemExit(f"{args.test_source} has {len(lines)} lines but {args.test_reference} has {len(references)}")
    test = TestSet(args.data, args.source_lang, args.target_lang, args.test_source, lines)
    return run(args, test, references, argv)


if __name__ == "__main__":
    main()
