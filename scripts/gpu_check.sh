#!/usr/bin/env bash
# GPU check for the fused LRN kernels, run from the repository root on a CUDA machine:
#   (a) versions, (b) the fused-vs-reference tests compiled on CUDA, (c) the kernel benchmark
#   (default grid + launch-config sweep). With $OUT set, logs, JSON and plot are written there.
# Needs torch + Triton (+ pytest); not fairseq. Took 1.5 minutes on an H200 (2026-11-27) with the first
# kernels; the sweep of the second compiles about 30 more kernel variants (a few seconds each).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET
OUT="${OUT:-}"
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
dest() { if [ -n "$OUT" ]; then echo "$OUT/$1"; else echo /dev/null; fi; }
[ -n "$OUT" ] && mkdir -p "$OUT"
status=0

echo "== versions"
nvidia-smi || status=1
"$PYTHON" - <<'PY' 2>&1 | tee "$(dest versions.txt)"
import sys, torch, triton
print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| triton", triton.__version__)
print("device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "NO CUDA DEVICE")
PY
"$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" || { echo "no CUDA device: stopping"; exit 1; }

echo "== tests (fused vs reference, compiled on CUDA)"
timeout 300 "$PYTHON" -m pytest -q -rfEs -p no:cacheprovider tests/ops/test_triton_lrn.py 2>&1 \
    | tee "$(dest pytest.txt)" || status=1

echo "== benchmark"
args=(--sweep)
[ -n "$OUT" ] && args+=(--json "$OUT/benchmark.json" --plot "$OUT/benchmark.png")
# Tables go to stdout (and benchmark.md); progress and skipped measurements to stderr.
timeout 360 "$PYTHON" scripts/benchmark_kernel.py "${args[@]}" | tee "$(dest benchmark.md)" || status=1
exit $status
