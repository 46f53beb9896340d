"""``scripts/benchmark_lm.py``: ``lrn_lm`` against fairseq's ``lstm_lm`` and ``transformer_lm``,
the last two sized on ``lrn_lm``'s body (the parameters besides the tied embedding), each trained
alone for the same wall-clock on prepared text (Moses + BPE + ``build_data_bin``), then scored by
validation perplexity per BPE token. The family as data (its recipe, systems and table) and its run."""

import hashlib
import json
import math
import os
import sys
from typing import Dict, List

import torch

from fairseq_lrn.atomic_files import write_json
from fairseq_lrn.tools.data_bin import build_data_bin

from .harness import machine_info, start_run
from .shapes import closest, train_flags
from .stats import md_table
from .systems import Batches, System

SYSTEMS = ("lrn_lm", "lstm_lm", "transformer_lm")


# ----------------------------------------------------------------------------- systems

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
    """The LSTM hidden size whose body parameter count is closest to ``body`` (the smallest on ties)."""
    return closest(range(8, 8 * E + 1), lambda H: lstm_body_params(E, H, L), body)


def match_transformer(body: int, E: int, L: int):
    """(layers, ffn) of a transformer_lm body closest to ``body`` parameters (ties: the layer
    count closest to ``L``, then the wider FFN, then fewer layers)."""
    candidates = sorted(((n, F) for F in (4 * E, 2 * E, E) for n in range(1, 13)),
                        key=lambda c: (abs(c[0] - L), -c[1], c[0]))
    return closest(candidates, lambda c: transformer_body_params(E, c[1], c[0]), body)


def system_flags(name: str, args, size) -> List[str]:
    """fairseq flags of one system besides the recipe: ``size`` is the hidden size (the LSTM) or
    (layers, ffn) (the transformer)."""
    E = str(args.embed_dim)
    if name == "transformer_lm":
        layers, ffn = size
        return ["--arch", "transformer_lm", "--decoder-embed-dim", E, "--decoder-output-dim", E,
                "--decoder-input-dim", E, "--decoder-ffn-embed-dim", str(ffn), "--decoder-layers", str(layers),
                "--decoder-attention-heads", str(max(1, args.embed_dim // 64))]
    return ["--arch", name, "--decoder-embed-dim", E, "--decoder-out-embed-dim", E,
            "--decoder-hidden-size", str(size), "--decoder-layers", str(args.layers)]


def build_systems(args, data_bin: str) -> Dict[str, System]:
    """The requested systems with their train and valid splits loaded; lstm_lm and transformer_lm
    sized on lrn_lm's body, for which lrn_lm is built first."""
    base = train_flags(data_bin, task="language_modeling", criterion=["--criterion", "cross_entropy"],
                       task_flags=["--tokens-per-sample", str(args.tokens_per_sample), "--sample-break-mode", "none"],
                       clip_norm=1.0, lr=args.lr, warmup_updates=args.warmup_updates, max_tokens=args.max_tokens,
                       dropout=args.dropout, seed=args.seed, device=args.device,
                       extra=["--required-batch-size-multiple", "1"])
    systems = {}

    def build(name, size, note):
        systems[name] = System(name, base + system_flags(name, args, size), note)
        systems[name].load_splits(("train", "valid"))

    hidden = args.lrn_hidden or args.embed_dim
    build("lrn_lm", hidden, f"{args.layers} layers, hidden {hidden}")
    lrn = systems["lrn_lm"]
    body = lrn.params - lrn.model.decoder.embed_tokens.weight.numel()
    if "lstm_lm" in args.systems:
        hidden = match_lstm_hidden(body, args.embed_dim, args.layers)
        build("lstm_lm", hidden, f"{args.layers} layers, hidden {hidden}")
    if "transformer_lm" in args.systems:
        layers, ffn = match_transformer(body, args.embed_dim, args.layers)
        build("transformer_lm", (layers, ffn), f"{layers} layers, ffn {ffn}")
    if "lrn_lm" not in args.systems:
        systems.pop("lrn_lm").close()
    return {name: systems[name] for name in args.systems}


# ----------------------------------------------------------------------------- data

def prepare(train: str, valid: str, work: str, lang: str, merges: int, max_lines: int) -> str:
    """Tokenize + BPE + binarize ``train``/``valid`` into ``work/prep-<key>/bin``; return it.
    The key hashes the inputs (path, size, mtime) and settings, so a rerun reuses the result."""
    from ..prep import text

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


# ----------------------------------------------------------------------------- measuring

def train_for(system: System, seconds: float, max_tokens: int, seed: int, warmup: int) -> dict:
    """Train ``system`` for ``warmup`` untimed updates (first-call costs: lazy initialisation,
    kernel compilation), then for ``seconds`` of wall-clock (batch fetching included). Returns
    the updates (warm-up included), the timed target tokens, tokens/s and the epochs done."""
    batches = Batches(system.task, max_tokens, seed)
    system.train_steps([next(batches) for _ in range(warmup)])
    done = system.train_for(batches, seconds)
    return {"seconds": done["seconds"], "updates": warmup + done["updates"], "tokens": done["tokens"],
            "train_tok_s": done["tokens"] / done["seconds"], "epochs": batches.epochs}


def valid_perplexity(system: System, max_tokens: int) -> float:
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


def run(args) -> dict:
    """The race of ``scripts/benchmark_lm.py``'s ``args``: prepare, then each system alone
    (the machine to itself) trained and scored; prints the table, writes ``--json``."""
    work = start_run(args, prefix="lm-race-")["work"]
    print(f"== preparing {args.train} / {args.valid} in {work}", flush=True)
    data_bin = prepare(args.train, args.valid, work, args.lang, args.bpe_merges, args.max_lines)
    results = {}
    for name, system in build_systems(args, data_bin).items():
        print(f"== {name}: {system.params:,} params ({system.note}), training for {args.budget_seconds:g} s",
              flush=True)
        result = train_for(system, args.budget_seconds, args.max_tokens, args.seed, args.warmup_steps)
        result.update(params=system.params, shape=system.note, argv=system.argv,
                      valid_ppl=valid_perplexity(system, args.max_tokens))
        print(f"   {result['updates']} updates, {result['train_tok_s']:,.0f} tok/s, "
              f"valid ppl {result['valid_ppl']:.2f}", flush=True)
        results[name] = result
        system.close()
    print(f"\n### Language models: {args.budget_seconds:g} s of training each, validation perplexity per "
          f"BPE token ({args.bpe_merges} merges), device {args.device}\n")
    md_table(["system", "params", "shape", "updates", "epochs", "train tok/s", "valid ppl"],
             [[name, f"{r['params']:,}", r["shape"], f"{r['updates']:,}", f"{r['epochs']:.2f}",
               f"{r['train_tok_s']:,.0f}", f"{r['valid_ppl']:.2f}"] for name, r in results.items()], "lrlrrrr")
    report = {"data_bin": data_bin, "config": vars(args), "machine": machine_info(args), "systems": results}
    if args.json:
        write_json(args.json, report)
    return report
