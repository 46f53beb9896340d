#!/usr/bin/env python3
"""Score translations the standard way: sacreBLEU and chrF, with their signatures, on detokenized text.

The hypotheses are fairseq-generate output or a plain file (one translation per line). From
fairseq-generate output the D- lines are used when present (fairseq's own post-processing of H-,
identical to H- unless generate ran with --tokenizer/--bpe), else the H- lines; both are put back in
sentence-id order and the first hypothesis of each id is kept. Then subword marks are removed
(--bpe) and the text is Moses-detokenized (--detok). References are plain files, never downloaded.

--tokenized-bleu adds the BLEU older papers report (the LRN paper's 26.26 included): Moses-tokenized
hypotheses and references, compound splitting ("a-b" -> "a ##AT##-##AT## b"), multi-bleu-style
scoring, cased and case-insensitive. It is labelled as such: it is not sacreBLEU and not comparable to it.
"""

import argparse
import json
import sys

from fairseq_lrn.tools.scoring import EvalError, format_report, score_file


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hyp", required=True, help="fairseq-generate output or a plain hypothesis file")
    p.add_argument("--ref", required=True, action="append", help="reference file (repeat for several references)")
    p.add_argument("--lang", default="de", help="target language, for the Moses (de)tokenizer (default: de)")
    p.add_argument("--bpe", choices=("none", "subword_nmt", "sentencepiece"), default="none",
                   help="subword marks to remove (default: none, e.g. after fairseq-generate --remove-bpe)")
    p.add_argument("--detok", choices=("moses", "none"), default="moses",
                   help="detokenizer (default: moses; none when the hypotheses are detokenized already)")
    p.add_argument("--tokenized-bleu", action="store_true",
                   help="also report the paper-comparable tokenized BLEU with compound splitting")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    try:
        result = score_file(args.hyp, args.ref, args.lang, args.bpe, args.detok, args.tokenized_bleu)
    except (EvalError, OSError) as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
