"""scripts/benchmark_lm.py: a smoke run with a tiny budget (structure of the results, not speed)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "benchmark_lm.py"
TEXT = REPO.parent / "shared" / "data" / "gettext-en-fr"  # the shared corpus beside the checkout


def write_english(folder: Path):
    """Real English text when the shared corpus is here, else a few generated sentences."""
    if (TEXT / "train.en").exists():
        return TEXT / "train.en", TEXT / "valid.en"
    from fairseq_lrn.toy_data import write_corpus

    write_corpus(str(folder), "reordering", {"train": 300, "valid": 40}, src="en", tgt="xx")
    return folder / "train.en", folder / "valid.en"


def test_tiny_race_reports_every_system(tmp_path):
    train, valid = write_english(tmp_path)
    out = tmp_path / "lm.json"
    cmd = [sys.executable, str(SCRIPT), "--train", str(train), "--valid", str(valid), "--max-lines", "300",
           "--bpe-merges", "200", "--embed-dim", "16", "--layers", "1", "--tokens-per-sample", "32",
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
