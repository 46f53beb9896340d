#!/usr/bin/env python3
"""Build a lexical shortlist for ``fairseq-lrn-translate --shortlist`` from a data-bin's training split.

IBM Model 1 translation probabilities t(target | source) by EM on the binarized training split (the
data the model was trained on); each source word keeps its --per-source most probable target words,
and every batch also gets the --frequent most frequent target words (fairseq_lrn/translate/shortlist.py
says how the decoder uses it; BENCHMARKS.md what it costs in BLEU and gains in speed).

    python scripts/build_shortlist.py DATA_BIN -s en -t fr --out shortlist.en-fr.txt
    fairseq-lrn-translate DATA_BIN --path CKPT --shortlist shortlist.en-fr.txt < test.bpe.en

The file is written under a temporary name and renamed when complete.
"""

import argparse
import sys
import time

from fairseq_lrn.translate.shortlist import DEFAULT_FREQUENT, DEFAULT_PER_SOURCE, ShortlistError, build_shortlist


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_bin", help="the data-bin the model was trained on (dictionaries and the train split)")
    parser.add_argument("-s", "--source-lang", required=True)
    parser.add_argument("-t", "--target-lang", required=True)
    parser.add_argument("--out", required=True, help="the shortlist file to write")
    parser.add_argument("--per-source", type=int, default=DEFAULT_PER_SOURCE,
                        help="target words kept per source word (default: %(default)s)")
    parser.add_argument("--frequent", type=int, default=DEFAULT_FREQUENT,
                        help="most frequent target words every batch gets (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=5, help="EM iterations of IBM Model 1 (default: 5)")
    args = parser.parse_args(argv)
    start = time.time()
    try:
        shortlist, src_dict, tgt_dict = build_shortlist(args.data_bin, args.source_lang, args.target_lang,
                                                        per_source=args.per_source, frequent=args.frequent,
                                                        iterations=args.iterations)
        shortlist.save(args.out, src_dict, tgt_dict)
    except (ShortlistError, OSError) as exc:
        print(f"build_shortlist: error: {exc}", file=sys.stderr)
        return 1
    print(f"build_shortlist: {args.out}: {shortlist.table.size(0)} source words x {args.per_source} targets, "
          f"{shortlist.always.numel()} for every batch, from {shortlist.info['training_pairs']} training pairs "
          f"in {time.time() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
