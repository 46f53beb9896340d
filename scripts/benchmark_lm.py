#!/usr/bin/env python
"""Language-model race: ``lrn_lm`` vs fairseq's ``lstm_lm`` and ``transformer_lm`` at matched
parameter counts, each trained for the same wall-clock on real English text.

    python scripts/benchmark_lm.py --train TEXT/train.en --valid TEXT/valid.en \\
        --budget-seconds 300 --work-dir lm-race        # e.g. TEXT = ../shared/data/gettext-en-fr

1. Preparation (in ``--work-dir``, reused by later runs with the same inputs and settings): Moses
   punctuation normalisation + aggressive tokenization (sacremoses, fairseq_lrn/prep/text.py),
   BPE learned on the training text (subword-nmt, ``--bpe-merges``), ``fairseq-preprocess
   --only-source``. Perplexity is therefore per BPE token (the same units for every system).
2. Systems (fairseq_lrn/bench/lm.py), built in-process with fairseq's own machinery
   (fairseq_lrn/bench/systems.py ``System``):
   one ``--task language_modeling`` recipe for all (``--sample-break-mode none`` blocks of
   ``--tokens-per-sample``, tied input/output embeddings, Adam (0.9, 0.98), inverse-sqrt with
   warm-up, clip-norm 1.0, dropout 0.1, cross-entropy), the same embedding dim E (``--embed-dim``).
   ``lrn_lm`` has ``--layers`` L layers of ``--lrn-hidden``; the others' bodies (parameters besides
   the tied embedding) are matched to its count: ``lstm_lm`` has L layers and a solved hidden size,
   ``transformer_lm`` the (layers, FFN) closest among 1..12 layers x FFN {4E, 2E, E} (the defaults,
   E 256 and L 2, give it 1 layer with FFN 512; ``--layers 4`` gives 2 layers).
3. One system at a time (the machine to itself): ``--warmup-steps`` untimed updates (first-call
   costs), then training for ``--budget-seconds`` of wall-clock (batch fetching included), then
   validation perplexity ``exp(nll / tokens)`` over the whole ``--valid`` text, every block from a
   zero state (as fairseq-train's validation does).
4. A markdown table: params, updates, training tokens/s, validation perplexity (``--json`` too).

Systems, preparation, training, perplexity and the table: fairseq_lrn/bench/lm.py.
"""

import argparse
import os

import torch

from fairseq_lrn.bench import lm
from fairseq_lrn.bench.harness import quiet_fairseq


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--train", required=True, help="raw English training text, one sentence per line")
    add("--valid", required=True, help="raw English validation text")
    add("--lang", default="en", help="language of the text, for the Moses tokenizer (default: en)")
    add("--work-dir", help="prepared data (reused across runs; default: a temporary folder)")
    add("--systems", nargs="+", choices=lm.SYSTEMS, default=list(lm.SYSTEMS))
    add("--budget-seconds", type=float, default=300.0, help="training wall-clock per system (default: 300)")
    add("--bpe-merges", type=int, default=8000, help="BPE merges (default: 8000)")
    add("--max-lines", type=int, default=0, help="read only the first N lines of each file (0: all)")
    add("--embed-dim", type=int, default=256, help="embedding dim E of every system (default: 256)")
    add("--layers", type=int, default=2, help="layers of lrn_lm and lstm_lm (default: 2)")
    add("--lrn-hidden", type=int, help="lrn_lm hidden size (default: E)")
    add("--tokens-per-sample", type=int, default=128, help="tokens per block (default: 128)")
    add("--max-tokens", type=int, default=4096, help="tokens per batch (default: 4096)")
    add("--warmup-steps", type=int, default=2,
        help="untimed updates before each system's budget starts (counted in its updates; default: 2)")
    add("--lr", type=float, default=1e-3)
    add("--warmup-updates", type=int, default=200)
    add("--dropout", type=float, default=0.1)
    add("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    add("--threads", type=int, help="torch CPU threads (default: torch's)")
    add("--seed", type=int, default=1)
    add("--json", help="write the results here")
    args = parser.parse_args(argv)
    for path in (args.train, args.valid):
        if not os.path.isfile(path):
            parser.error(f"no such file: {path}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    quiet_fairseq()
    return lm.run(args)


if __name__ == "__main__":
    main()
