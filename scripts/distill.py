#!/usr/bin/env python3
"""Sequence-level knowledge distillation in one command (see fairseq_lrn/tools/distill.py):

    python scripts/distill.py DATA_BIN --teacher CKPT --out DIR -s en -t de [--cpu] \
        [-- fairseq-train arguments for the student]

translates the training source of DATA_BIN with the teacher (resumably, in order), writes
DIR/data-bin (same dictionaries, the teacher's translations as the target) and
DIR/distill_report.json (the sentences whose original target was kept), then optionally trains.
"""

import sys

from fairseq_lrn.tools.distill import main

if __name__ == "__main__":
    sys.exit(main())
