#!/usr/bin/env bash
# The LRN WMT14 English-German recipe: train, average checkpoints, generate (beam 4), score.
# See --help. Data: bash data-prep/prepare-wmt14en2de.sh --out DIR --joined-dictionary
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"

usage() {
  cat <<'EOF'
Usage: bash scripts/train_wmt14_en_de.sh --data DIR/data-bin --save CKPT_DIR [options] [-- fairseq-train flags]

Trains the paper-scale LRN model (--arch lrn_wmt_en_de: 6+6 layers, hidden 1024, embeddings 512,
layer norm, all embeddings tied) with the paper's optimisation, then averages the last checkpoints,
translates newstest2014 with beam 4 and scores it with scripts/evaluate.py (sacreBLEU + chrF, and
the paper-comparable tokenized BLEU, labelled as such).

  --data DIR          binarized data from data-prep/prepare-wmt14en2de.sh --joined-dictionary (required)
  --save DIR          checkpoints, translations and scores go here (required)
  --gpus N            GPUs on this machine (default 1); N > 1 trains data-parallel through
                      fairseq's --distributed-world-size N (one process per GPU)
  --max-tokens N      tokens per GPU per batch (default 4096)
  --update-freq K     accumulate K batches per update (default 1)
  --max-update N      training updates (default 300000)
  --save-every N      save (and validate) every N updates (default 5000)
  --average N         average the N newest update checkpoints (default 5)
  --lrn-impl IMPL     auto|fused|cpu|reference (default auto: the fused kernel on GPU)
  --ref FILE          raw reference (default: DIR/../raw/newstest2014.de next to --data)
  --bpe KIND          subword_nmt|sentencepiece (default: sentencepiece if DIR/../subword/spm.model exists)
  --from STEP         start at train|average|generate|evaluate (default train)
  --dry-run           print the commands instead of running them
  -- ARGS             passed on to fairseq-train last, so they override the above (e.g. -- --fp16)

Optimisation (the paper's): label-smoothed cross-entropy 0.1, Adam (0.9, 0.999) eps 1e-9, clip-norm 5.0,
lr 5e-4 with 4000 warm-up updates then inverse square-root decay, dropout 0.1, beam 4.
The paper used ~3000 target tokens per batch; --max-tokens counts source or target tokens with padding,
so 4096 on 1 GPU is close to it. The effective batch is max-tokens x gpus x update-freq: with more
GPUs keep it near 4096 x K for the paper's setting, or raise the learning rate with the batch size.
The number of updates the paper trained for is not known to us; 300000 (about 8 epochs) is our choice.

Expected time: data preparation about 1-2 hours on 16 cores (an estimate: Moses tokenization
measured ~1000 lines/s per core, ~9M lines). Training, measured on synthetic data of this
model's size (scripts/benchmark_models.py --size wmt, BENCHMARKS.md): 55k target tokens/s on one
H200 with the fused kernel in fp32, i.e. about 0.06 s per update of ~3300 target tokens, so
300000 updates take roughly 5-6 hours there plus validation and checkpoints (not measured on
real WMT data). The paper reports 0.99 s per batch for LRN in TensorFlow on its hardware.
Disk: about 1.2 GB per checkpoint (95.7M parameters in fp32 plus Adam's two moments). --update-epoch-batch-itr True makes a
resumed run (rerun the same command after a crash) see exactly the batches it would have seen.

Several machines: start the train step on every node with scripts/launch_distributed.py
(torchrun + NCCL; see its --help and --dry-run), e.g. on node K of M:
  python scripts/launch_distributed.py --nnodes M --node-rank K --master-addr HOST --master-port PORT \
    -- <the train command's arguments, see --dry-run>
then rerun this script with --from average.
EOF
}

DATA="" SAVE="" GPUS=1 MAX_TOKENS=4096 UPDATE_FREQ=1 MAX_UPDATE=300000 SAVE_EVERY=5000 AVERAGE=5
LRN_IMPL=auto REF="" BPE="" FROM=train DRY_RUN=0 EXTRA=()
while (($#)); do
  case "$1" in
    --data) DATA="$2"; shift 2 ;;
    --save) SAVE="$2"; shift 2 ;;
    --gpus) GPUS="$2"; shift 2 ;;
    --max-tokens) MAX_TOKENS="$2"; shift 2 ;;
    --update-freq) UPDATE_FREQ="$2"; shift 2 ;;
    --max-update) MAX_UPDATE="$2"; shift 2 ;;
    --save-every) SAVE_EVERY="$2"; shift 2 ;;
    --average) AVERAGE="$2"; shift 2 ;;
    --lrn-impl) LRN_IMPL="$2"; shift 2 ;;
    --ref) REF="$2"; shift 2 ;;
    --bpe) BPE="$2"; shift 2 ;;
    --from) FROM="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "train_wmt14_en_de.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "train_wmt14_en_de.sh: error: $*" >&2; exit 1; }
[[ -n "$DATA" && -n "$SAVE" ]] || die "--data and --save are required (see --help)"
PREP="$(dirname "$DATA")"
REF="${REF:-$PREP/raw/newstest2014.de}"
if [[ -z "$BPE" ]]; then
  if [[ -f "$PREP/subword/spm.model" ]]; then BPE=sentencepiece; else BPE=subword_nmt; fi
fi
[[ "$BPE" == subword_nmt || "$BPE" == sentencepiece ]] || die "--bpe must be subword_nmt or sentencepiece, not $BPE"
STEPS=(train average generate evaluate)
step_index() { local i; for i in "${!STEPS[@]}"; do [[ "${STEPS[$i]}" == "$1" ]] && echo "$i" && return; done; echo -1; }
FROM_INDEX="$(step_index "$FROM")"
((FROM_INDEX >= 0)) || die "--from must be one of: ${STEPS[*]}"
step_from() { (($(step_index "$1") >= FROM_INDEX)); }  # does step $1 run?
AVG="$SAVE/checkpoint_avg$AVERAGE.pt"
GEN="$SAVE/generate-test.txt"  # where fairseq-generate --results-path "$SAVE" writes

run() {  # print the command, then run it unless --dry-run
  printf '+'; printf ' %q' "$@"; printf '\n'
  ((DRY_RUN)) || "$@"
}

if step_from train; then
  if ((!DRY_RUN)); then
    [[ -f "$DATA/dict.en.txt" ]] || die "$DATA/dict.en.txt not found: is --data the data-bin of prepare-wmt14en2de.sh?"
    cmp -s "$DATA/dict.en.txt" "$DATA/dict.de.txt" \
      || die "$DATA has separate dictionaries; --share-all-embeddings needs prepare-wmt14en2de.sh --joined-dictionary"
    mkdir -p "$SAVE"
  fi
  DIST=()
  if ((GPUS > 1)); then DIST=(--distributed-world-size "$GPUS"); fi
  echo "effective batch: $MAX_TOKENS tokens x $GPUS GPU(s) x update-freq $UPDATE_FREQ" >&2
  run "$PYTHON" -m fairseq_cli.train "$DATA" --user-dir "$REPO/fairseq_lrn" \
    --task translation --source-lang en --target-lang de \
    --arch lrn_wmt_en_de --share-all-embeddings --lrn-impl "$LRN_IMPL" --dropout 0.1 \
    --criterion label_smoothed_cross_entropy --label-smoothing 0.1 \
    --optimizer adam --adam-betas '(0.9, 0.999)' --adam-eps 1e-9 --clip-norm 5.0 \
    --lr 5e-4 --lr-scheduler inverse_sqrt --warmup-updates 4000 --warmup-init-lr 1e-7 \
    --max-tokens "$MAX_TOKENS" --update-freq "$UPDATE_FREQ" --max-update "$MAX_UPDATE" \
    --save-dir "$SAVE" --save-interval-updates "$SAVE_EVERY" --keep-interval-updates "$AVERAGE" \
    --no-epoch-checkpoints --update-epoch-batch-itr True --seed 1 --log-format simple --log-interval 100 \
    "${DIST[@]}" "${EXTRA[@]}"
fi

if step_from average; then
  run "$PYTHON" "$REPO/scripts/average_checkpoints.py" --inputs "$SAVE" --num-update-checkpoints "$AVERAGE" \
    --output "$AVG" --user-dir "$REPO/fairseq_lrn"
fi

if step_from generate; then
  run "$PYTHON" -m fairseq_cli.generate "$DATA" --user-dir "$REPO/fairseq_lrn" \
    --task translation --source-lang en --target-lang de --gen-subset test \
    --path "$AVG" --beam 4 --batch-size 64 --remove-bpe "$BPE" --results-path "$SAVE"
fi

if step_from evaluate; then
  run "$PYTHON" "$REPO/scripts/evaluate.py" --hyp "$GEN" --ref "$REF" --lang de --tokenized-bleu
fi
