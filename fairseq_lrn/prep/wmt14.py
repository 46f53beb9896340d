"""Prepare WMT14 English-German (en->de) for fairseq, as in the LRN paper.

Steps, each resumable: extract (train: Europarl v7 + CommonCrawl + News Commentary v9;
valid: newstest2013; test: newstest2014 from the SGML test-full archive), tokenize (Moses
punctuation normalisation, non-printing character removal and aggressive tokenization, through
sacremoses), clean (train only: 1-250 tokens per side, length ratio <= 1.5), learn-subwords (joint
BPE with subword-nmt, or a joint sentencepiece model), apply-subwords, binarize (fairseq-preprocess).

Output layout in --out DIR:
  orig/       downloaded archives (not used with --raw-dir)
  raw/        extracted plain text; raw/newstest2014.de is the detokenized test reference for scoring
  tok/        tokenized text (train.clean.* is the cleaned training data)
  subword/    bpe.codes or spm.model/spm.vocab, and the segmented train/valid/test text
  data-bin/   the binarized data for fairseq-train / fairseq-generate
Every output is written under a temporary name and renamed when complete; DIR/.done/ records the
finished steps with their settings. Rerunning the same command resumes after the last finished step;
changing a setting reruns the steps from the first one it affects.
"""

import argparse
import os
import sys
from pathlib import Path

from ..tools.data_bin import build_data_bin
from . import text
from . import wmt14_sources as sources
from .io import PrepError, StepRunner, check_aligned, count_lines

SRC, TGT = "en", "de"
STEPS = ("extract", "tokenize", "clean", "learn-subwords", "apply-subwords", "binarize")
VALID_SETS = {
    "newstest2013": (sources.DEV["newstest2013"],),
    "newstest2012+newstest2013": (sources.DEV["newstest2012"], sources.DEV["newstest2013"]),
}
CLEAN = {"min_len": 1, "max_len": 250, "ratio": 1.5}


def log(msg):
    print(f"prepare-wmt14: {msg}", file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="prepare-wmt14en2de.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The shell front runs `$PYTHON -m fairseq_lrn.prep.wmt14` (default: python); fairseq-preprocess runs\n"
               "with the same interpreter. The upstream archives:\n  " + "\n  ".join(sources.URLS.values()))
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument("--raw-dir", type=Path, metavar="RAW",
                   help="directory holding the upstream archives under their upstream names ("
                        + ", ".join(sources.URLS) + "); nothing is downloaded then")
    subwords = p.add_mutually_exclusive_group()
    subwords.add_argument("--bpe-merges", type=int, default=32000, metavar="N",
                          help="joint BPE merge operations, subword-nmt (default: 32000, the paper's setting)")
    subwords.add_argument("--spm", action="store_true", help="use a joint sentencepiece (unigram) model instead of BPE")
    p.add_argument("--vocab-size", type=int, metavar="N", help="sentencepiece vocabulary size (with --spm; default 32000)")
    p.add_argument("--joined-dictionary", action="store_true",
                   help="one dictionary for both languages (needed for --share-all-embeddings, as in the recipe)")
    p.add_argument("--valid", choices=sorted(VALID_SETS), default="newstest2013",
                   help="validation set (default: newstest2013; the paper's dev set was newstest2012+2013)")
    p.add_argument("--workers", type=int, default=os.cpu_count(), metavar="N",
                   help="processes for tokenization, subwords and binarization (default: all CPUs)")
    p.add_argument("--stop-after", choices=STEPS, help=argparse.SUPPRESS)  # tests: simulate an interruption
    args = p.parse_args(argv)
    if args.vocab_size is not None and not args.spm:
        p.error("--vocab-size needs --spm (BPE size is set with --bpe-merges)")
    if args.spm and args.vocab_size is None:
        args.vocab_size = 32000
    return args


def prepare(args):
    out = args.out
    raw, tok, sub, data_bin = out / "raw", out / "tok", out / "subword", out / "data-bin"
    corpora = {"train": sources.TRAIN, "valid": VALID_SETS[args.valid], "test": (sources.TEST,)}
    subwords = ({"kind": "sentencepiece", "vocab_size": args.vocab_size} if args.spm
                else {"kind": "bpe", "merges": args.bpe_merges})
    tok_input = {"train": "train.clean", "valid": "valid", "test": "test"}

    def extract():
        by_archive = {}
        for c in (c for split in corpora.values() for c in split):
            by_archive.setdefault(c.archive, []).append(c)
        for archive, members in by_archive.items():
            sources.extract(sources.fetch(archive, args.raw_dir, out / "orig"), members, raw)

    def tokenize():
        for split, split_corpora in corpora.items():
            for lang in (SRC, TGT):
                inputs = [raw / f"{c.name}.{lang}" for c in split_corpora]
                text.transform_file(text.MosesPreprocessor(lang), inputs, tok / f"{split}.{lang}", args.workers,
                                    total=sum(map(count_lines, inputs)), desc=f"tokenize {split}.{lang}")
            check_aligned(tok / f"{split}.{SRC}", tok / f"{split}.{TGT}")

    def clean():
        kept, dropped = text.clean_corpus(*(tok / f"train.{lang}" for lang in (SRC, TGT)),
                                          *(tok / f"train.clean.{lang}" for lang in (SRC, TGT)), **CLEAN)
        log(f"clean: kept {kept} training pairs, dropped {dropped}")

    def learn_subwords():
        inputs = [tok / f"train.clean.{lang}" for lang in (SRC, TGT)]
        if args.spm:
            text.learn_spm(inputs, sub / "spm.model", sub / "spm.vocab", args.vocab_size, args.workers)
        else:
            text.learn_bpe(inputs, sub / "bpe.codes", args.bpe_merges)

    def apply_subwords():
        segment = text.SpmSegmenter(sub / "spm.model") if args.spm else text.BpeSegmenter(sub / "bpe.codes")
        for split, name in tok_input.items():
            for lang in (SRC, TGT):
                src = tok / f"{name}.{lang}"
                text.transform_file(segment, [src], sub / f"{split}.{lang}", args.workers,
                                    total=count_lines(src), desc=f"{subwords['kind']} {split}.{lang}")
            check_aligned(sub / f"{split}.{SRC}", sub / f"{split}.{TGT}")

    def binarize():
        try:  # a rerun (changed settings) swaps the new folder for the old one only once it is complete
            build_data_bin(str(data_bin), **{split: str(sub / split) for split in tok_input}, source_lang=SRC,
                           target_lang=TGT, joined_dictionary=args.joined_dictionary,
                           workers=max(1, args.workers), replace=True)
        except RuntimeError as exc:
            raise PrepError(f"fairseq-preprocess failed on {sub}/{{train,valid,test}}.{{{SRC},{TGT}}}: {exc}") from exc

    step = StepRunner(out, log=log, stop_after=args.stop_after)
    plan = (
        ("extract", {"train": [c.name for c in sources.TRAIN], "valid": args.valid, "test": sources.TEST.name},
         extract),
        ("tokenize", {}, tokenize),
        ("clean", CLEAN, clean),
        ("learn-subwords", subwords, learn_subwords),
        ("apply-subwords", subwords, apply_subwords),
        ("binarize", {"joined_dictionary": args.joined_dictionary}, binarize),
    )
    for name, settings, fn in plan:
        if step(name, settings, fn):
            log(f"stopped after {name} (--stop-after)")
            return
    log(f"done: binarized data in {data_bin}, raw test reference {raw / f'{sources.TEST.name}.{TGT}'}")


def main(argv=None):
    args = parse_args(argv)
    try:
        prepare(args)
    except PrepError as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
