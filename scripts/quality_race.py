#!/usr/bin/env python3
"""Same-wall-clock quality race: train several NMT systems for the same time, then score them.

Works on any raw parallel corpus given as fairseq-preprocess-style prefixes (PREFIX.SRC / PREFIX.TGT,
plain untokenized text, one sentence per line):

    python scripts/quality_race.py --src en --tgt fr --train DATA/train --valid DATA/valid --test DATA/test \\
        --work-dir race --budget-minutes 15 --json race.json

1. Preparation (as for WMT; each step resumable, see below), in --work-dir:
     tok/     Moses punctuation normalisation, non-printing-character removal, aggressive (-a)
              tokenization (sacremoses, data-prep/text_processing.py); training pairs with an empty
              side or more than --max-len tokens are dropped (tok/train.clean.*)
     bpe/     joint BPE learned on the training data of both languages (subword-nmt, --bpe-merges)
              and the segmented text
     bin/     fairseq-preprocess --joined-dictionary (plus bin/code, the BPE codes)
   Every output is written under a temporary name and renamed when complete, and .done/STEP.json
   records each finished step with its settings (input files' sizes and times included): a rerun
   skips the finished steps, a changed input or setting reruns from the first step it affects.
   --prepare-only stops here.
2. For each system in turn (--systems; a fresh WORK/systems/NAME each time): fairseq-train for
   --budget-minutes of wall-clock (--stop-time-hours; fairseq then validates and saves once more),
   fairseq-generate on the test set with checkpoint_best.pt (--beam, --remove-bpe), Moses
   detokenization and sacreBLEU + chrF against the raw test references (scripts/evaluate.py).
   A system that fails is reported as failed; the others still run.
3. A markdown table (and --json, rewritten after each system): parameters, training wall-clock (the
   clock --stop-time-hours reads: from the trainer's start, validations included), updates, epochs
   (fractional when the budget ends inside one), training words/s (target tokens/s, the wps of
   fairseq's last epoch summary), best validation loss, BLEU, chrF, decoding time (fairseq-generate's
   own "Translated ... in Xs", without start-up). The JSON adds the exact commands, the logs' paths,
   the sacreBLEU signatures and data facts, among them reference_roundtrip_bleu: the BLEU of the test
   references tokenized and detokenized again, the ceiling the Moses pre/post-processing leaves (on
   software messages "%s" comes back as "% s", and normalisation rewrites some quotes).

The systems (SYSTEMS below) share one optimiser recipe, chosen for a ~15-minute CPU budget, i.e. a
few hundred to a few thousand updates: Adam (0.9, 0.98), lr 1e-3 (--lr), inverse-sqrt schedule with
200 warm-up updates (--warmup-updates; fairseq's usual 4000 would not end within the budget),
clip-norm 1.0, label-smoothed cross-entropy 0.1, --max-tokens 4096, dropout 0.1 (little
regularisation is needed in so short a run), all embeddings shared, validation after each epoch, no
per-epoch checkpoints, seed 1. --train-args adds flags to every fairseq-train command (later flags
win), --tiny swaps in tiny model sizes (for tests and smoke runs). Decoding: beam 5, batch 64,
--max-len-a 1.5 --max-len-b 10 (an undertrained model must not babble for 200 tokens). Batches are
built with --required-batch-size-multiple 1: fairseq-fixed 0.12.3.1 otherwise drops the last n % 8
sentences of a split (so fairseq-generate would skip test sentences).
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO, REPO / "data-prep", REPO / "scripts"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import evaluate  # noqa: E402  scripts/evaluate.py
import text_processing as text  # noqa: E402  data-prep/text_processing.py
from fairseq_lrn.cli import fairseq_command, parse_generate_output, run_fairseq, user_dir  # noqa: E402
from prep_io import PrepError, atomic, read_lines  # noqa: E402  data-prep/prep_io.py

# ---------------------------------------------------------------------------------------------------
# The systems: name -> architecture flags. "args" is the real size, "tiny" the --tiny size.
_LRN = ["--arch", "lrn", "--encoder-layers", "2", "--decoder-layers", "2", "--encoder-embed-dim", "256",
        "--decoder-embed-dim", "256", "--encoder-hidden-size", "512", "--decoder-hidden-size", "512",
        "--decoder-out-embed-dim", "256", "--share-all-embeddings"]
_LRN_TINY = ["--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "32",
             "--decoder-embed-dim", "32", "--encoder-hidden-size", "64", "--decoder-hidden-size", "64",
             "--decoder-out-embed-dim", "32"]
_TRANSFORMER = ["--encoder-embed-dim", "256", "--decoder-embed-dim", "256", "--encoder-ffn-embed-dim", "1024",
                "--decoder-ffn-embed-dim", "1024", "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
                "--encoder-layers", "6", "--decoder-layers", "6", "--share-all-embeddings"]
_TRANSFORMER_TINY = ["--encoder-embed-dim", "32", "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
                     "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2",
                     "--decoder-attention-heads", "2", "--encoder-layers", "1", "--decoder-layers", "1"]
SYSTEMS = {
    "transformer": {
        "args": ["--arch", "transformer", *_TRANSFORMER],
        "tiny": _TRANSFORMER_TINY,
        "note": "fairseq transformer, d=256, ffn 1024, 4 heads, 6+6 layers (post-norm)"},
    "transformer_lrn": {  # the same command with only --arch switched
        "args": ["--arch", "transformer_lrn", *_TRANSFORMER],
        "tiny": _TRANSFORMER_TINY,
        "note": "as transformer, LRN in place of decoder self-attention (fairseq_lrn)"},
    "lrn-additive": {
        "args": [*_LRN, "--decoder-attention", "additive"],
        "tiny": _LRN_TINY,
        "note": "fairseq_lrn lrn, 2+2 layers, embed 256, hidden 512, additive attention"},
    "lrn-general": {
        "args": [*_LRN, "--decoder-attention", "general"],
        "tiny": _LRN_TINY,
        "note": "fairseq_lrn lrn, 2+2 layers, embed 256, hidden 512, general (Luong) attention"},
    "lstm": {
        "args": ["--arch", "lstm", "--encoder-layers", "2", "--decoder-layers", "2", "--encoder-embed-dim", "256",
                 "--decoder-embed-dim", "256", "--encoder-hidden-size", "512", "--decoder-hidden-size", "512",
                 "--decoder-out-embed-dim", "256", "--encoder-bidirectional", "--share-all-embeddings"],
        "tiny": _LRN_TINY,
        "note": "fairseq lstm, 2+2 layers, embed 256, hidden 512 (per direction; bidirectional encoder), "
                "input feeding + attention"},
}


# fairseq-fixed 0.12.3.1's batch_by_size (its compiled data_utils_fast) drops the last n % N sentences
# with --required-batch-size-multiple N (default 8): 1518 test sentences gave 1512 translations.
# Multiple 1 keeps every sentence, in training, validation and generation alike.
BATCHING = ["--required-batch-size-multiple", "1"]


def recipe(args, budget_hours, cuda):
    """The fairseq-train flags every system shares (see the module docstring)."""
    return ["--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr", str(args.lr),
            "--lr-scheduler", "inverse_sqrt", "--warmup-updates", str(args.warmup_updates),
            "--warmup-init-lr", "1e-07", "--clip-norm", "1.0", "--dropout", str(args.dropout),
            "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
            "--max-tokens", str(args.max_tokens), "--stop-time-hours", f"{budget_hours:.8f}",
            "--validate-interval", "1", "--no-epoch-checkpoints", "--seed", "1",
            "--log-format", "simple", "--log-interval", str(args.log_interval), "--no-progress-bar",
            *BATCHING, *([] if cuda else ["--cpu"])]


class RaceError(Exception):
    """Bad input or a failed step the user can act on; the message names the file involved."""


def log(msg):
    print(f"quality_race: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------
# Input checks and preparation

def split_files(args):
    """{split: {lang: Path}} of the raw input files."""
    return {split: {lang: Path(f"{getattr(args, split)}.{lang}") for lang in (args.src, args.tgt)}
            for split in ("train", "valid", "test")}


def _read_utf8(path, split):
    try:
        return list(read_lines(path))
    except UnicodeDecodeError:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise RaceError(f"{split} file {path} is not UTF-8 text (line {number}: {exc.reason})") from None
        raise


def check_inputs(files):
    """Raise RaceError for a missing or empty file or a source/target line-count mismatch.

    Returns {split: {"pairs": n, "empty_lines": [(line number, file), ...]}}."""
    for split, by_lang in files.items():
        for lang, path in by_lang.items():
            if not path.is_file():
                raise RaceError(f"missing {split} file: {path} (--{split} PREFIX reads PREFIX.{lang})")
    stats = {}
    for split, by_lang in files.items():
        (src_lang, src), (tgt_lang, tgt) = by_lang.items()
        src_lines, tgt_lines = _read_utf8(src, split), _read_utf8(tgt, split)
        if not src_lines:
            raise RaceError(f"{split} file {src} is empty")
        if len(src_lines) != len(tgt_lines):
            raise RaceError(f"{split}: line counts differ: {src} has {len(src_lines)} lines, "
                            f"{tgt} has {len(tgt_lines)}")
        empty = [(i + 1, str(path)) for i, (s, t) in enumerate(zip(src_lines, tgt_lines))
                 for path, line in ((src, s), (tgt, t)) if not line.strip()]
        stats[split] = {"pairs": len(src_lines), "empty_lines": empty}
        if empty and split != "train":
            where = ", ".join(f"{f} line {n}" for n, f in empty[:5]) + (" ..." if len(empty) > 5 else "")
            log(f"warning: {len(empty)} empty line(s) in the {split} set ({where}); they are kept "
                f"(an empty source is translated as an empty sentence)")
    return stats


def fingerprint(path):
    st = path.stat()
    return {"path": str(path.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


class StepRunner:
    """Runs preparation steps in order, skipping those whose marker records the same settings.

    Once a step runs, every later one runs too (its inputs may have changed)."""

    def __init__(self, work):
        self.markers = work / ".done"
        self.rerun = False

    def __call__(self, name, settings, fn):
        marker = self.markers / f"{name}.json"
        record = json.dumps(settings, sort_keys=True)
        if not self.rerun and marker.is_file() and marker.read_text() == record:
            log(f"prepare {name}: done already, skipped")
            return
        self.rerun = True
        marker.unlink(missing_ok=True)
        log(f"prepare {name}: running")
        start = time.time()
        fn()
        with atomic(marker) as [tmp]:
            tmp.write_text(record)
        log(f"prepare {name}: done in {time.time() - start:.1f}s")


def dictionary_size(data_bin, lang):
    """Entries of a fairseq dictionary: the dict file's lines plus <s>, <pad>, </s>, <unk>."""
    with open(data_bin / f"dict.{lang}.txt", encoding="utf-8") as f:
        return 4 + sum(1 for _ in f)


def prepare(args, files):
    """Build WORK/bin from the raw files (resumable); return a description of the data."""
    work = args.work_dir
    tok, bpe, data_bin = work / "tok", work / "bpe", work / "bin"
    langs = (args.src, args.tgt)
    input_stats = check_inputs(files)
    step = StepRunner(work)
    workers = max(1, args.threads)

    def tokenize():
        for split, by_lang in files.items():
            for lang, path in by_lang.items():
                text.transform_file(text.MosesPreprocessor(lang), [path], tok / f"{split}.{lang}", workers,
                                    total=input_stats[split]["pairs"], desc=f"tokenize {split}.{lang}")

    def clean():
        kept, dropped = text.clean_corpus(*(tok / f"train.{lang}" for lang in langs),
                                          *(tok / f"train.clean.{lang}" for lang in langs),
                                          min_len=1, max_len=args.max_len, ratio=float("inf"))
        log(f"clean: kept {kept} training pairs, dropped {dropped} (an empty side or > {args.max_len} tokens)")
        if kept == 0:
            raise RaceError(f"no training pair left after cleaning {tok}/train.{{{','.join(langs)}}}")

    def learn_bpe():
        text.learn_bpe([tok / f"train.clean.{lang}" for lang in langs], bpe / "code", args.bpe_merges)

    def apply_bpe():
        segment = text.BpeSegmenter(bpe / "code")
        for split in files:
            name = "train.clean" if split == "train" else split
            for lang in langs:
                n = sum(1 for _ in read_lines(tok / f"{name}.{lang}"))
                text.transform_file(segment, [tok / f"{name}.{lang}"], bpe / f"{split}.{lang}", workers,
                                    total=n, desc=f"bpe {split}.{lang}")

    def binarize():
        tmp = work / "bin.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        proc = run_fairseq("preprocess", "--source-lang", args.src, "--target-lang", args.tgt,
                           *(a for split in files for a in (f"--{split}pref", bpe / split)),
                           "--destdir", tmp, "--joined-dictionary", "--workers", workers,
                           capture=True, check=False)
        if proc.returncode != 0:
            raise RaceError(f"fairseq-preprocess failed on {bpe}/{{train,valid,test}}.{{{','.join(langs)}}}:\n"
                            + proc.stderr[-3000:])
        (tmp / "preprocess.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
        shutil.copyfile(bpe / "code", tmp / "code")
        shutil.rmtree(data_bin, ignore_errors=True)
        os.replace(tmp, data_bin)

    inputs = {split: {lang: fingerprint(p) for lang, p in by_lang.items()} for split, by_lang in files.items()}
    step("tokenize", {"inputs": inputs, "moses": "normalize+nonprinting+tokenize -a"}, tokenize)
    step("clean", {"max_len": args.max_len}, clean)
    step("learn-bpe", {"merges": args.bpe_merges}, learn_bpe)
    step("apply-bpe", {}, apply_bpe)
    step("binarize", {"joined_dictionary": True}, binarize)
    train_pairs = sum(1 for _ in read_lines(bpe / f"train.{args.src}"))
    # BLEU of the tokenized test references detokenized again against the raw ones: the ceiling that
    # Moses tokenization + detokenization leaves (below 100 where normalisation changes characters,
    # e.g. quotes, or the detokenizer cannot restore a split such as "%s" -> "% s").
    from sacrebleu.metrics import BLEU

    roundtrip = evaluate.detokenize(list(read_lines(tok / f"test.{args.tgt}")), args.tgt)
    ceiling = BLEU().corpus_score(roundtrip, [list(read_lines(files["test"][args.tgt]))]).score
    return {"bin": str(data_bin), "vocab_size": dictionary_size(data_bin, args.src),
            "bpe_merges": args.bpe_merges, "train_pairs": train_pairs,
            "train_pairs_dropped": input_stats["train"]["pairs"] - train_pairs,
            "valid_pairs": input_stats["valid"]["pairs"], "test_pairs": input_stats["test"]["pairs"],
            "test_references": str(files["test"][args.tgt]), "reference_roundtrip_bleu": round(ceiling, 2)}


# ---------------------------------------------------------------------------------------------------
# Training logs

_INNER = re.compile(r"\| train_inner \| epoch (\d+):\s+(\d+) / (\d+) (.*)$")
_SUMMARY = re.compile(r"\| (train|valid) \| epoch (\d+) \|(.*)$")
_PARAMS = re.compile(r"num\. (?:shared )?model params: ([\d,]+)")
_DONE = re.compile(r"done training in ([\d.]+) seconds")
_STOPPED = re.compile(r"Stopping training due to cumulative_training_time: ([\d.e+-]+) >")
_NUM = re.compile(r"^-?[\d.]+(?:e[-+]?\d+)?$|^-?inf$|^nan$", re.I)


def _stats(text_, sep):
    """'k1 v1 | k2 v2' (sep '|') or 'k1=v1, k2=v2' (sep ',') -> {k: float}; non-numbers skipped."""
    out = {}
    for item in text_.split(sep):
        key, _, value = item.strip().replace("=", " ", 1).partition(" ")
        value = value.strip().replace(",", "")
        if key and _NUM.match(value):
            out[key] = float(value)
    return out


def parse_train_log(log_text):
    """Numbers of a fairseq-train log (--log-format simple): tolerant of missing lines.

    Returns params, train_seconds (the clock --stop-time-hours reads: from the trainer's start, validation
    included; "done training in" gives train_loop_seconds, the training loop alone), updates, epochs
    (fractional when the last one was cut short),
    wps (the last epoch summary's words/s; the last train_inner line's when no summary was printed),
    wps_per_epoch, valid_loss (last validation), best_valid_loss."""
    train, valid, inner = {}, {}, {}
    batches_per_epoch, params, done, stopped = None, None, None, None
    for line in log_text.splitlines():
        if m := _INNER.search(line):
            epoch, total = int(m[1]), int(m[3])
            batches_per_epoch = total
            inner = {"epoch": epoch, **_stats(m[4], ",")}
        elif m := _SUMMARY.search(line):
            (train if m[1] == "train" else valid)[int(m[2])] = _stats(m[3], "|")
        elif m := _PARAMS.search(line):
            params = int(m[1].replace(",", ""))
        elif m := _DONE.search(line):
            done = float(m[1])
        elif m := _STOPPED.search(line):
            stopped = round(float(m[1]) * 3600, 1)
    r = {"params": params, "train_seconds": stopped, "train_loop_seconds": done, "updates": None, "epochs": None,
         "wps": None, "wps_per_epoch": [train[e].get("wps") for e in sorted(train)],
         "valid_loss": None, "best_valid_loss": None}
    updates = [s["num_updates"] for s in (*train.values(), *valid.values(), inner) if "num_updates" in s]
    if updates:
        r["updates"] = int(max(updates))
    if train:
        last = max(train)
        r["wps"] = train[last].get("wps")
        if r["train_seconds"] is None:  # not stopped by the budget (e.g. --max-epoch in --train-args)
            r["train_seconds"] = train[last].get("wall", done)
        ends = {e: train[e].get("num_updates") for e in train}
        if batches_per_epoch is None and last > 1 and ends.get(1):
            batches_per_epoch = ends[1]
        start = ends.get(last - 1, 0 if last == 1 else None)
        if batches_per_epoch and start is not None and ends[last] is not None:
            r["epochs"] = round(last - 1 + min(1.0, (ends[last] - start) / batches_per_epoch), 3)
        else:
            r["epochs"] = float(last)
    elif inner:
        r["wps"] = inner.get("wps")
        r["epochs"] = float(inner["epoch"])
    if valid:
        last = valid[max(valid)]
        r["valid_loss"] = last.get("loss")
        r["best_valid_loss"] = last.get("best_loss", last.get("loss"))
    return r


_TRANSLATED = re.compile(r"Translated ([\d,]+) sentences \(([\d,]+) tokens\) in ([\d.]+)s")


# ---------------------------------------------------------------------------------------------------
# The race

def _flag_groups(argv):
    """["--a", "1", "--b", "--c", "x"] -> [["--a", "1"], ["--b"], ["--c", "x"]] (a flag and its values)."""
    groups = []
    for token in argv:
        if token.startswith("--") or not groups:
            groups.append([token])
        else:
            groups[-1].append(token)
    return groups


def override(argv, extra):
    """`argv` with every flag of `extra` replaced by (or, when new, followed by) its value in `extra`."""
    extra_groups = _flag_groups(extra)
    replaced = {g[0] for g in extra_groups}
    return [t for g in _flag_groups(argv) if g[0] not in replaced for t in g] + [t for g in extra_groups for t in g]


def cuda_available():
    import torch

    return torch.cuda.is_available()


def run_system(name, args, data, cuda, env):
    """Train, translate and score one system; return its result dict (with "error" if it failed)."""
    sdir = args.work_dir / "systems" / name
    shutil.rmtree(sdir, ignore_errors=True)  # a fresh run: fairseq would resume a stale checkpoint_last.pt
    sdir.mkdir(parents=True)
    spec = SYSTEMS[name]
    train_argv = [*spec["args"], *recipe(args, args.budget_minutes / 60, cuda)]
    if args.tiny:
        train_argv = override(train_argv, spec["tiny"])
    train_argv = [data["bin"], "--user-dir", user_dir(), *override(train_argv, shlex.split(args.train_args)),
                  "--save-dir", str(sdir / "checkpoints")]
    result = {"note": spec["note"], "train_command": shlex.join(["fairseq-train", *train_argv]),
              "train_log": str(sdir / "train.log")}
    log(f"{name}: training for {args.budget_minutes:g} min (log: {sdir / 'train.log'})")
    start = time.time()
    with open(sdir / "train.log", "w", encoding="utf-8") as f:
        rc = subprocess.run(fairseq_command("train", *train_argv), stdout=f, stderr=subprocess.STDOUT,
                            env=env).returncode
    result["train_process_seconds"] = round(time.time() - start, 1)
    log_text = (sdir / "train.log").read_text(encoding="utf-8", errors="replace")
    result.update(parse_train_log(log_text))
    best = sdir / "checkpoints" / "checkpoint_best.pt"
    if rc != 0 or not best.is_file():
        tail = "\n".join(log_text.splitlines()[-15:])
        result["error"] = (f"fairseq-train exited with {rc}" if rc else f"no {best} was written") + f":\n{tail}"
        return result

    gen_argv = [data["bin"], "--user-dir", user_dir(), "--path", best, "--gen-subset", "test",
                "--beam", args.beam, "--batch-size", 64, *BATCHING, "--remove-bpe",
                "--max-len-a", 1.5, "--max-len-b", 10,
                *([] if cuda else ["--cpu"])]
    result["generate_command"] = shlex.join(["fairseq-generate", *map(str, gen_argv)])
    log(f"{name}: translating the test set (beam {args.beam})")
    start = time.time()
    proc = run_fairseq("generate", *gen_argv, capture=True, check=False, env=env)
    result["decode_process_seconds"] = round(time.time() - start, 1)
    hyp_path = sdir / "generate-test.txt"
    hyp_path.write_text(proc.stdout, encoding="utf-8")
    (sdir / "generate.log").write_text(proc.stderr, encoding="utf-8")
    if proc.returncode != 0:
        result["error"] = f"fairseq-generate exited with {proc.returncode}:\n{proc.stderr[-2000:]}"
        return result
    if m := _TRANSLATED.search(proc.stdout + proc.stderr):
        result["decode_seconds"] = float(m[3])
    translated = parse_generate_output(proc.stdout)
    if len(translated) != data["test_pairs"]:
        result["error"] = (f"fairseq-generate translated {len(translated)} of {data['test_pairs']} test "
                           f"sentences ({hyp_path})")
        return result
    try:
        score = evaluate.evaluate(hyp_path, [data["test_references"]], lang=args.tgt, bpe="none", detok="moses")
    except evaluate.EvalError as exc:
        result["error"] = str(exc)
        return result
    result.update(bleu=round(score["bleu"]["score"], 2), chrf=round(score["chrf"]["score"], 2),
                  bleu_signature=score["bleu"]["signature"], chrf_signature=score["chrf"]["signature"],
                  bleu_verbose=score["bleu"]["verbose"], hypotheses=str(hyp_path))
    log(f"{name}: BLEU {result['bleu']:.2f}, chrF {result['chrf']:.2f}")
    return result


def _fmt(value, spec="{:.2f}"):
    return "-" if value is None else spec.format(value)


def markdown_table(systems):
    rows = ["| system | params | train s | updates | epochs | train words/s | best valid loss | BLEU | chrF "
            "| decode s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in systems.items():
        if "error" in r and r.get("bleu") is None:
            first = r["error"].splitlines()[0]
            rows.append(f"| {name} | {_fmt(r.get('params'), '{:,}')} | failed: {first} |||||||| ")
            continue
        rows.append(f"| {name} | {_fmt(r['params'], '{:,}')} | {_fmt(r['train_seconds'], '{:.0f}')} | "
                    f"{_fmt(r['updates'], '{:,}')} | {_fmt(r['epochs'], '{:g}')} | {_fmt(r['wps'], '{:,.0f}')} | "
                    f"{_fmt(r['best_valid_loss'], '{:.3f}')} | {_fmt(r['bleu'])} | {_fmt(r['chrf'])} | "
                    f"{_fmt(r.get('decode_seconds'), '{:.1f}')} |")
    return "\n".join(rows)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help="source language suffix (e.g. en)")
    p.add_argument("--tgt", required=True, help="target language suffix (e.g. fr)")
    for split in ("train", "valid", "test"):
        p.add_argument(f"--{split}", required=True, metavar="PREFIX",
                       help=f"{split} files PREFIX.SRC and PREFIX.TGT (raw text)")
    p.add_argument("--work-dir", type=Path, required=True, metavar="DIR",
                   help="prepared data (DIR/bin, ...) and each system's checkpoints and logs (DIR/systems/NAME)")
    p.add_argument("--bpe-merges", type=int, default=8000, metavar="N", help="joint BPE merges (default: 8000)")
    p.add_argument("--max-len", type=int, default=250, metavar="N",
                   help="drop training pairs with more tokens than this on a side (default: 250)")
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), metavar="NAME",
                   help=f"systems to race, in order (default: all: {' '.join(SYSTEMS)})")
    p.add_argument("--budget-minutes", type=float, default=15.0, metavar="M",
                   help="training wall-clock per system (fairseq-train --stop-time-hours M/60; default: 15)")
    p.add_argument("--prepare-only", action="store_true", help="build DIR/bin and stop")
    p.add_argument("--threads", type=int, default=os.cpu_count(), metavar="N",
                   help="torch threads (OMP/MKL) of training and decoding, and preparation processes "
                        "(default: all cores)")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON")
    p.add_argument("--beam", type=int, default=5, help="beam size for the test set (default: 5)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of every system (default: 1e-3)")
    p.add_argument("--warmup-updates", type=int, default=200, metavar="N", help="warm-up updates (default: 200)")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout of every system (default: 0.1)")
    p.add_argument("--max-tokens", type=int, default=4096, metavar="N", help="tokens per batch (default: 4096)")
    p.add_argument("--log-interval", type=int, default=25, metavar="N", help="fairseq-train --log-interval")
    p.add_argument("--train-args", default="", metavar="'ARGS'",
                   help="extra fairseq-train flags for every system, one quoted string (later flags win)")
    p.add_argument("--tiny", action="store_true",
                   help="tiny models (1+1 layers, d=32/64) for tests and smoke runs; scores mean nothing")
    args = p.parse_args(argv)
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown:
        p.error(f"unknown system(s) {' '.join(unknown)}; choose from {' '.join(SYSTEMS)}")
    if args.src == args.tgt:
        p.error("--src and --tgt must differ")
    if args.budget_minutes <= 0:
        p.error("--budget-minutes must be positive")
    if args.threads < 1:
        p.error("--threads must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        data = prepare(args, split_files(args))
    except (RaceError, PrepError, OSError) as exc:
        log(f"error: {exc}")
        return 1
    log(f"data: {data['bin']}, joint vocabulary {data['vocab_size']} entries, {data['train_pairs']} training pairs; "
        f"BLEU of the test references tokenized and detokenized again: {data['reference_roundtrip_bleu']:.2f} "
        "(the ceiling the preprocessing leaves)")
    report = {"data": data, "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "systems": {}}
    if not args.prepare_only:
        cuda = cuda_available()
        report["config"]["device"] = "cuda" if cuda else "cpu"
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        for name in args.systems:
            report["systems"][name] = run_system(name, args, data, cuda, env)
            if args.json:  # after each system: a long race keeps its finished results
                with atomic(args.json) as [tmp]:
                    tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"\nQuality race: {args.budget_minutes:g} min of training per system on {report['config']['device']} "
              f"({args.threads} threads); {data['train_pairs']:,} training pairs, joint vocabulary "
              f"{data['vocab_size']:,}; test: {data['test_pairs']:,} sentences, beam {args.beam}\n")
        print(markdown_table(report["systems"]))
        signatures = {r["bleu_signature"] for r in report["systems"].values() if r.get("bleu_signature")}
        for sig in sorted(signatures):
            print(f"\nsacreBLEU signature: {sig}")
    if args.json:
        with atomic(args.json) as [tmp]:
            tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
    failed = [n for n, r in report["systems"].items() if "error" in r]
    for n in failed:
        log(f"{n} failed: {report['systems'][n]['error']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
