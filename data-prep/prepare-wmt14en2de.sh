#!/usr/bin/env bash
# Prepare WMT14 English-German for fairseq; see --help. The steps live in fairseq_lrn/prep/wmt14.py.
#   bash data-prep/prepare-wmt14en2de.sh --out DIR [--raw-dir RAW] [--bpe-merges N | --spm --vocab-size N]
#        [--joined-dictionary]
set -euo pipefail
exec "${PYTHON:-python}" -m fairseq_lrn.prep.wmt14 "$@"
