"""``scripts/benchmark_lm.py``'s run: data preparation (Moses + BPE + ``build_data_bin``), each
system trained alone for the same wall-clock (:mod:`.lm_systems`), validation perplexity per BPE
token, the markdown table and ``--json``."""

import hashlib
import json
import math
import os
import sys
import tempfile
import time
from typing import Dict

import torch

from fairseq_lrn.atomic_files import write_json
from fairseq_lrn.tools.data_bin import build_data_bin

from .lm_systems import build_systems
from .harness import machine_info
from .systems import System


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


# ----------------------------------------------------------------------------- report

def markdown_table(results: Dict[str, dict]) -> str:
    rows = ["| system | params | shape | updates | epochs | train tok/s | valid ppl |",
            "|---|---:|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r['params']:,} | {r['shape']} | {r['updates']:,} | {r['epochs']:.2f} | "
                    f"{r['train_tok_s']:,.0f} | {r['valid_ppl']:.2f} |")
    return "\n".join(rows)


def run(args) -> dict:
    """The race of ``scripts/benchmark_lm.py``'s ``args``: prepare, then each system alone
    (the machine to itself) trained and scored; prints the table, writes ``--json``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    work = args.work_dir or tempfile.mkdtemp(prefix="lm-race-")
    os.makedirs(work, exist_ok=True)
    print(f"== preparing {args.train} / {args.valid} in {work}", flush=True)
    data_bin = prepare(args.train, args.valid, work, args.lang, args.bpe_merges, args.max_lines)
    systems = build_systems(args, data_bin)
    results = {}
    for name, system in systems.items():
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
    print(markdown_table(results))
    report = {"data_bin": data_bin, "config": vars(args), "machine": machine_info(args), "systems": results}
    if args.json:
        write_json(args.json, report)
    return report
