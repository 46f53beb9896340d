"""scripts/benchmark_lm.py: a smoke run with a tiny budget (structure of the results, not speed)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "benchmark_lm.py"


def write_english(folder: Path, lines: int = 340, words: int = 400, seed: int = 0):
    """An English-like corpus, generated (tests read no outside files): ``words`` random
    lower-case word types drawn with Zipf frequencies into sentences of 4-14 words, so that
    the vocabulary, not one layer, dominates the parameter counts as with real text.
    Returns the train and valid files (300 and 40 lines)."""
    import random

    rng = random.Random(seed)
    vocab = sorted({"".join(rng.choice("etaoinshrdlucmfwyp") for _ in range(rng.randint(2, 9)))
                    for _ in range(words)})
    weights = [1.0 / (rank + 2.7) for rank in range(len(vocab))]
    sentences = [" ".join(rng.choices(vocab, weights, k=rng.randint(4, 14))) + " ." for _ in range(lines)]
    train, valid = folder / "train.en", folder / "valid.en"
    train.write_text("\n".join(sentences[:300]) + "\n", encoding="utf-8")
    valid.write_text("\n".join(sentences[300:]) + "\n", encoding="utf-8")
    return train, valid


def test_tiny_race_reports_every_system(tmp_path):
    train, valid = write_english(tmp_path)
    out = tmp_path / "lm.json"
    cmd = [sys.executable, str(SCRIPT), "--train", str(train), "--valid", str(valid), "--max-lines", "300",
           "--bpe-merges", "400", "--embed-dim", "16", "--layers", "1", "--tokens-per-sample", "32",
           "--max-tokens", "256", "--budget-seconds", "1", "--warmup-steps", "1", "--device", "cpu",
           "--threads", "1", "--work-dir", str(tmp_path / "work"), "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    systems = json.loads(out.read_text())["systems"]
    assert list(systems) == ["lrn_lm", "lstm_lm", "transformer_lm"]
    lrn = systems["lrn_lm"]["params"]
    for name, s in systems.items():
        assert abs(s["params"] - lrn) <= 0.15 * lrn, (name, s["params"], lrn)  # matched sizes
        assert s["updates"] > 1 and s["train_tok_s"] > 0, name
        assert 1.0 < s["valid_ppl"] < math.inf, name
        assert f"| {name} | {s['params']:,} |" in proc.stdout  # the markdown table
    assert "--share-decoder-input-output-embed" in systems["lstm_lm"]["argv"]
