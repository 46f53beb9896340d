#!/usr/bin/env bash
# Install fairseq-lrn into the active Python environment.
#   bash scripts/install.sh         # the package and its dependencies (fairseq, sacrebleu, ...)
#   bash scripts/install.sh test    # also the test tools (pytest, triton for the kernel tests, matplotlib,
#                                   # ctranslate2 for the decoding benchmark's test)
# torch is installed first, only when missing: TORCH_SPEC (default torch==2.13.0) picks the
# build; set it to the wheel your GPU needs, or install torch yourself beforehand.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=""
case "${1:-}" in
  "") ;;
  test) extra="[test]" ;;
  *) echo "usage: bash scripts/install.sh [test]" >&2; exit 2 ;;
esac
python -m pip --version >/dev/null
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install "${TORCH_SPEC:-torch==2.13.0}"
fi
python -m pip install -e ".${extra}"
