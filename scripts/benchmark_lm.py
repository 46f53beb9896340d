#!/usr/bin/env python
"""Language-model race: ``lrn_lm`` vs fairseq's ``lstm_lm`` and ``transformer_lm`` at matched
parameter counts, each trained for the same wall-clock on real English text.

    python scripts/benchmark_lm.py --train TEXT/train.en --valid TEXT/valid.en \\
        --budget-seconds 300 --work-dir lm-race        # e.g. TEXT = ../shared/data/gettext-en-fr

1. Preparation (in ``--work-dir``, reused by later runs with the same inputs and settings): Moses
   punctuation normalisation + aggressive tokenization (sacremoses, data-prep/text_processing.py),
   BPE learned on the training text (subword-nmt, ``--bpe-merges``), ``fairseq-preprocess
   --only-source``. Perplexity is therefore per BPE token (the same units for every system).
2. Systems, built in-process with fairseq's own machinery (scripts/bench/systems.py ``System``):
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
"""

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from typing import Dict, List

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for _path in (REPO, os.path.join(REPO, "data-prep"), HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from bench.fairseq_setup import quiet_fairseq  # noqa: E402
from bench.machine import machine_info  # noqa: E402
from bench.systems import System, user_dir  # noqa: E402

from fairseq_lrn.tools.data_bin import build_data_bin  # noqa: E402

SYSTEMS = ("lrn_lm", "lstm_lm", "transformer_lm")


# ----------------------------------------------------------------------------- data

def prepare(train: str, valid: str, work: str, lang: str, merges: int, max_lines: int) -> str:
    """Tokenize + BPE + binarize ``train``/``valid`` into ``work/prep-<key>/bin``; return it.
    The key hashes the inputs (path, size, mtime) and settings, so a rerun reuses the result."""
    import text_processing as text  # data-prep/text_processing.py

    key = hashlib.sha1(json.dumps([[(p, os.path.getsize(p), os.path.getmtime(p)) for p in (train, valid)],
                                   lang, merges, max_lines]).encode()).hexdigest()[:10]
    prep = os.path.join(work, f"prep-{key}")
    data_bin = os.path.join(prep, "bin")
    if os.path.isdir(data_bin):  # build_data_bin writes it complete or not at all
        return data_bin
    os.makedirs(prep, exist_ok=True)
    tokenize = text.MosesPreprocessor(lang)
    for split, path in (("train", train), ("valid", valid)):
        with open(path, encoding="utf-8") as f:
            lines = [line.rstrip("\n") for _, line in zip(range(max_lines or sys.maxsize), f)]
        with open(os.path.join(prep, f"{split}.tok"), "w", encoding="utf-8") as f:
            f.writelines(tokenize(line) + "\n" for line in lines)
    text.learn_bpe([os.path.join(prep, "train.tok")], os.path.join(prep, "code"), merges)
    segment = text.BpeSegmenter(os.path.join(prep, "code"))
    for split in ("train", "valid"):
        with open(os.path.join(prep, f"{split}.tok"), encoding="utf-8") as src, \
                open(os.path.join(prep, f"{split}.bpe"), "w", encoding="utf-8") as dst:
            dst.writelines(segment(line.rstrip("\n")) + "\n" for line in src)
    return build_data_bin(data_bin, train=os.path.join(prep, "train.bpe"), valid=os.path.join(prep, "valid.bpe"),
                          source_lang=None, target_lang=None, in_process=True)


# ----------------------------------------------------------------------------- systems

def common_args(args, data_bin: str) -> List[str]:
    """The fairseq-train arguments every system shares."""
    return [data_bin, "--user-dir", user_dir(), "--task", "language_modeling",
            "--tokens-per-sample", str(args.tokens_per_sample), "--sample-break-mode", "none",
            "--max-tokens", str(args.max_tokens), "--criterion", "cross_entropy",
            "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--clip-norm", "1.0",
            "--lr", str(args.lr), "--lr-scheduler", "inverse_sqrt", "--warmup-updates", str(args.warmup_updates),
            "--warmup-init-lr", "1e-07", "--dropout", str(args.dropout), "--share-decoder-input-output-embed",
            "--seed", str(args.seed), "--num-workers", "0", "--required-batch-size-multiple", "1",
            *(["--cpu"] if args.device == "cpu" else [])]


def lrn_args(args) -> List[str]:
    E = str(args.embed_dim)
    return ["--arch", "lrn_lm", "--decoder-embed-dim", E, "--decoder-out-embed-dim", E,
            "--decoder-hidden-size", str(args.lrn_hidden or args.embed_dim), "--decoder-layers", str(args.layers)]


def lstm_args(args, hidden: int) -> List[str]:
    E = str(args.embed_dim)
    return ["--arch", "lstm_lm", "--decoder-embed-dim", E, "--decoder-out-embed-dim", E,
            "--decoder-hidden-size", str(hidden), "--decoder-layers", str(args.layers)]


def transformer_args(args, layers: int, ffn: int) -> List[str]:
    E = args.embed_dim
    return ["--arch", "transformer_lm", "--decoder-embed-dim", str(E), "--decoder-output-dim", str(E),
            "--decoder-input-dim", str(E), "--decoder-ffn-embed-dim", str(ffn), "--decoder-layers", str(layers),
            "--decoder-attention-heads", str(max(1, E // 64))]


def lstm_body_params(E: int, H: int, L: int) -> int:
    """Parameters of fairseq's LSTMDecoder without attention besides the embeddings: L LSTM
    cells (4H x (in + H) weights, two 4H biases) and the H -> E projection when H != E."""
    cells = sum(4 * H * ((E if k == 0 else H) + H) + 8 * H for k in range(L))
    return cells + (H * E + E if H != E else 0)


def transformer_body_params(E: int, F: int, L: int) -> int:
    """Parameters of fairseq's transformer_lm besides the embeddings: L post-norm decoder layers
    without encoder attention, plus the one LayerNorm (2E) it builds outside them."""
    return L * (4 * E * E + 2 * E * F + 9 * E + F) + 2 * E


def match_lstm_hidden(body: int, E: int, L: int) -> int:
    """The LSTM hidden size whose body parameter count is closest to ``body``."""
    return min(range(8, 8 * E + 1), key=lambda H: abs(lstm_body_params(E, H, L) - body))


def match_transformer(body: int, E: int, L: int):
    """(layers, ffn) of a transformer_lm body closest to ``body`` parameters (ties: the layer
    count closest to ``L``, then the wider FFN)."""
    candidates = [(abs(transformer_body_params(E, F, n) - body), abs(n - L), -F, n, F)
                  for F in (4 * E, 2 * E, E) for n in range(1, 13)]
    return min(candidates)[3:]


def build_system(name: str, argv: List[str], note: str) -> "System":
    """A fairseq system (model, criterion, Trainer) with its train and valid splits loaded."""
    system = System(name, argv, note)
    system.load_splits(("train", "valid"))
    return system


def build_systems(args, data_bin: str) -> Dict[str, "System"]:
    """The requested systems; lstm_lm and transformer_lm sized on lrn_lm's body (the parameters
    besides the tied embedding), for which lrn_lm is built first."""
    base = common_args(args, data_bin)
    lrn = build_system("lrn_lm", base + lrn_args(args),
                       f"{args.layers} layers, hidden {args.lrn_hidden or args.embed_dim}")
    body = lrn.params - lrn.model.decoder.embed_tokens.weight.numel()
    systems = {"lrn_lm": lrn}
    if "lstm_lm" in args.systems:
        hidden = match_lstm_hidden(body, args.embed_dim, args.layers)
        systems["lstm_lm"] = build_system("lstm_lm", base + lstm_args(args, hidden),
                                          f"{args.layers} layers, hidden {hidden}")
    if "transformer_lm" in args.systems:
        layers, ffn = match_transformer(body, args.embed_dim, args.layers)
        systems["transformer_lm"] = build_system("transformer_lm", base + transformer_args(args, layers, ffn),
                                                 f"{layers} layers, ffn {ffn}")
    if "lrn_lm" not in args.systems:
        systems.pop("lrn_lm").close()
    return {name: systems[name] for name in args.systems}


# ----------------------------------------------------------------------------- measuring

def train_for(system: "System", seconds: float, max_tokens: int, seed: int, warmup: int) -> dict:
    """Train ``system`` for ``warmup`` untimed updates (first-call costs: lazy initialisation,
    kernel compilation), then for ``seconds`` of wall-clock (batch fetching included). Returns
    the updates (warm-up included), the timed target tokens and tokens/s."""
    task = system.task
    epoch_itr = task.get_batch_iterator(dataset=task.dataset("train"), max_tokens=max_tokens,
                                        max_positions=None, ignore_invalid_inputs=True, seed=seed,
                                        num_workers=0, epoch=1)
    itr = epoch_itr.next_epoch_itr(shuffle=True)

    def next_batch():
        nonlocal itr
        try:
            return next(itr)
        except StopIteration:
            itr = epoch_itr.next_epoch_itr(shuffle=True)
            return next(itr)

    system.train_steps([next_batch() for _ in range(warmup)])
    updates, tokens = warmup, 0
    system.sync()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        sample = next_batch()
        system.train_steps([sample])
        updates += 1
        tokens += int(sample["ntokens"])
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "updates": updates, "tokens": tokens, "train_tok_s": tokens / elapsed,
            "epochs": epoch_itr.epoch - 1 + (itr.n / len(itr) if len(itr) else 0)}


def valid_perplexity(system: "System", max_tokens: int) -> float:
    """``exp`` of the mean per-token cross-entropy (nats) over the whole validation split."""
    from fairseq import utils

    task = system.task
    itr = task.get_batch_iterator(dataset=task.dataset("valid"), max_tokens=max_tokens, max_positions=None,
                                  ignore_invalid_inputs=True, seed=1, num_workers=0,
                                  epoch=1).next_epoch_itr(shuffle=False)
    nll = ntokens = 0.0
    system.model.eval()
    try:
        with torch.no_grad():
            for sample in itr:
                if system.device.type == "cuda":
                    sample = utils.move_to_cuda(sample)
                loss, _, _ = system.criterion(system.model, sample)
                nll += float(loss)
                ntokens += int(sample["ntokens"])
    finally:
        system.model.train()
    return math.exp(nll / ntokens)


# ----------------------------------------------------------------------------- report

def markdown_table(results: Dict[str, dict]) -> str:
    rows = ["| system | params | shape | updates | epochs | train tok/s | valid ppl |",
            "|---|---:|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r['params']:,} | {r['shape']} | {r['updates']:,} | {r['epochs']:.2f} | "
                    f"{r['train_tok_s']:,.0f} | {r['valid_ppl']:.2f} |")
    return "\n".join(rows)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--train", required=True, help="raw English training text, one sentence per line")
    add("--valid", required=True, help="raw English validation text")
    add("--lang", default="en", help="language of the text, for the Moses tokenizer (default: en)")
    add("--work-dir", help="prepared data (reused across runs; default: a temporary folder)")
    add("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
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
    if args.threads:
        torch.set_num_threads(args.threads)
    work = args.work_dir or tempfile.mkdtemp(prefix="lm-race-")
    os.makedirs(work, exist_ok=True)
    print(f"== preparing {args.train} / {args.valid} in {work}", flush=True)
    data_bin = prepare(args.train, args.valid, work, args.lang, args.bpe_merges, args.max_lines)
    systems = build_systems(args, data_bin)
    results = {}
    for name, system in systems.items():  # one at a time: the machine to itself
        print(f"== {name}: {system.params:,} params ({system.note}), training for {args.budget_seconds:g} s",
              flush=True)
        run = train_for(system, args.budget_seconds, args.max_tokens, args.seed, args.warmup_steps)
        run.update(params=system.params, shape=system.note, argv=system.argv,
                   valid_ppl=valid_perplexity(system, args.max_tokens))
        print(f"   {run['updates']} updates, {run['train_tok_s']:,.0f} tok/s, valid ppl {run['valid_ppl']:.2f}",
              flush=True)
        results[name] = run
        system.close()
    print(f"\n### Language models: {args.budget_seconds:g} s of training each, validation perplexity per "
          f"BPE token ({args.bpe_merges} merges), device {args.device}\n")
    print(markdown_table(results))
    report = {"data_bin": data_bin, "config": vars(args), "machine": machine_info(args), "systems": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == "__main__":
    main()
