#!/usr/bin/env python
"""Train a small LRN translation model end to end and score it with sacreBLEU.

By default on a generated TOY task (a made-up language with verb-final word order and
adjectives after nouns, so attention matters), on CPU, in a few minutes:

    python scripts/demo.py

With ``--data DATA_BIN`` it trains on a real fairseq data-bin instead (its test split is
translated and scored). The toy scores say nothing about real translation quality.
"""

import argparse
import os
import sys
import tempfile
import time

from fairseq_lrn.tools import user_dir
from fairseq_lrn.tools.data_bin import build_data_bin, corpus_prefixes
from fairseq_lrn.tools.generate_output import hypotheses_in_order, parse_generate_output
from fairseq_lrn.tools.run import run_fairseq
from fairseq_lrn.toy_data import write_corpus

SMALL_MODEL = ["--encoder-embed-dim", "64", "--decoder-embed-dim", "64", "--decoder-out-embed-dim", "64",
               "--encoder-hidden-size", "128", "--decoder-hidden-size", "128", "--dropout", "0.1"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", help="where data, checkpoints and outputs go (default: a new temp dir)")
    parser.add_argument("--data", help="a fairseq data-bin to train on instead of the toy task")
    parser.add_argument("--source-lang", help="with --data: source language suffix")
    parser.add_argument("--target-lang", help="with --data: target language suffix")
    parser.add_argument("--arch", default="lrn_iwslt_de_en", help="LRN architecture (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=2000, help="tokens per batch (default: %(default)s)")
    parser.add_argument("--train-size", type=int, default=6000, help="toy training pairs (default: %(default)s)")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--gpu", action="store_true", help="train on the GPU (default: CPU)")
    parser.add_argument("--examples", type=int, default=5, help="translations to print")
    args = parser.parse_args(argv)
    if args.data and not os.path.isdir(args.data):
        parser.error(f"--data {args.data!r} is not a directory")
    return args


def main(argv=None) -> float:
    args = parse_args(argv)
    work = args.work_dir or tempfile.mkdtemp(prefix="lrn-demo-")
    os.makedirs(work, exist_ok=True)
    device = [] if args.gpu else ["--cpu"]
    langs = []
    if args.data:
        data_bin = args.data
        for flag, value in (("--source-lang", args.source_lang), ("--target-lang", args.target_lang)):
            langs += [flag, value] if value else []
        print(f"== Training on {data_bin}")
    else:
        print("== TOY TASK: a generated language with verb-final order (scores say nothing about real MT)")
        corpus = os.path.join(work, "corpus")
        write_corpus(corpus, "reordering", {"train": args.train_size, "valid": 200, "test": 200})
        data_bin = build_data_bin(os.path.join(work, "data-bin"), replace=True, **corpus_prefixes(corpus))
        print(f"   data: {args.train_size} training pairs in {data_bin}")

    save_dir = os.path.join(work, "checkpoints")
    print(f"== fairseq-train --arch {args.arch} ({args.epochs} epochs); checkpoints in {save_dir}")
    start = time.time()
    run_fairseq("train", data_bin, "--user-dir", user_dir(), "--arch", args.arch,
                *(SMALL_MODEL if not args.data else []), *langs, *device,
                "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr", "0.003", "--clip-norm", "1.0",
                "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
                "--max-tokens", str(args.max_tokens), "--max-epoch", str(args.epochs),
                "--save-dir", save_dir, "--no-epoch-checkpoints", "--log-format", "tqdm",
                "--log-interval", "20", "--seed", "1")
    print(f"   trained in {time.time() - start:.0f} s")

    print(f"== fairseq-generate --beam {args.beam} on the test set")
    out = run_fairseq("generate", data_bin, "--user-dir", user_dir(), "--path",
                      os.path.join(save_dir, "checkpoint_best.pt"), "--beam", str(args.beam),
                      "--batch-size", "64", *langs, *device, capture=True).stdout
    generated = os.path.join(work, "generate-test.txt")
    with open(generated, "w", encoding="utf-8") as f:
        f.write(out)
    parsed = parse_generate_output(out)
    hypotheses, _ = hypotheses_in_order(parsed, what=generated)  # every test sentence, in id order
    sentences = [parsed[i] for i in range(len(hypotheses))]
    from sacrebleu.metrics import BLEU

    metric = BLEU()
    bleu = metric.corpus_score(hypotheses, [[s["T"] for s in sentences]])
    for s, hyp in list(zip(sentences, hypotheses))[:args.examples]:
        print(f"   source     : {s['S']}\n   reference  : {s['T']}\n   translation: {hyp}\n")
    label = "" if args.data else " (toy task)"
    print(f"== sacreBLEU{label}: {bleu.score:.2f} on {len(sentences)} sentences")
    print(f"   {bleu}  signature: {metric.get_signature()}")
    print(f"   outputs in {work}")
    return bleu.score


if __name__ == "__main__":
    main()
