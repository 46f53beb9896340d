"""``python -m fairseq_lrn.translate`` = ``fairseq-lrn-translate`` (see :mod:`fairseq_lrn.translate.cli`)."""

import sys

from .cli import main

sys.exit(main())
