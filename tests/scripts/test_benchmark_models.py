"""scripts/benchmark_models.py: smoke runs on the tiny size (structure of the results, not speed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "benchmark_models.py"
GEN_KEYS = ("beam5_b1", "beam5_b64", "greedy_b1", "greedy_b64")


def run_benchmark(tmp_path, *args, timeout=240):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--size", "tiny", "--device", "cpu", "--threads", "1",
           "--work-dir", str(tmp_path / "work"), "--json", str(out), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def test_quick_run_reports_every_system(tmp_path):
    png = tmp_path / "bench.png"
    report, stdout = run_benchmark(tmp_path, "--quick", "--no-memory", "--plot", png)
    systems = report["systems"]
    assert set(systems) == {"lrn-cpu", "lrn-reference", "lstm", "transformer"}
    if not torch.cuda.is_available():
        assert "lrn-fused" in report["skipped"]
    for name, s in systems.items():
        assert s["params"] > 0, name
        assert s["train_tok_s"]["median"] > 0, name
        assert len(s["train_tok_s"]["values"]) == report["config"]["repeats"] == 1
        for key in GEN_KEYS:
            assert s[key]["median"] > 0, (name, key)
    # matched sizes: the transformer is sized on LRN's parameter count
    lrn, transformer = systems["lrn-cpu"]["params"], systems["transformer"]["params"]
    assert abs(transformer - lrn) <= 0.15 * lrn
    assert systems["lrn-cpu"]["params"] == systems["lrn-reference"]["params"]
    assert "--encoder-bidirectional" in systems["lstm"]["argv"]
    # ratios against lstm, and the CPU targets as measured ratios
    assert systems["lrn-cpu"]["train_tok_s"]["median"] / systems["lstm"]["train_tok_s"]["median"] == \
        report["ratios"]["lrn-cpu/lstm"]["train_tok_s"]
    assert {t["what"].split(":")[0] for t in report["targets"]} >= {"train tok/s", *(f"{k} sent/s" for k in GEN_KEYS)}
    assert "| lrn-cpu |" in stdout and "| lstm |" in stdout  # the markdown table
    assert png.exists() and png.stat().st_size > 1000


def test_memory_and_quality(tmp_path):
    report, stdout = run_benchmark(
        tmp_path, "--systems", "lrn-cpu", "lstm", "--repeats", "1", "--train-steps", "1",
        "--skip-generation", "--quality", "--budget-seconds", "2", "--quality-points", "2")
    for name in ("lrn-cpu", "lstm"):
        assert report["systems"][name]["peak_mem_mib"] > 0, report.get("memory_method")
        q = report["quality"]["systems"][name]
        assert len(q["curve"]) == 2 and q["updates"] > 0
        assert all(0 <= p["bleu"] <= 100 for p in q["curve"])
        assert q["curve"][-1]["seconds"] >= 2
    assert "peak RSS" in report["memory_method"]
    assert "### Quality" in stdout


TL_SYSTEMS = {"transformer", "transformer-lrn", "transformer-dec2", "transformer-lrn-dec2", "transformer-lrn-wide"}


def test_transformer_lrn_quick_run_and_decoder_state(tmp_path):
    """--size transformer-tiny: the transformer_lrn vs transformer systems run, and the generator's
    measured incremental state at L=150 shows LRN's constant state against the growing K/V cache."""
    png = tmp_path / "tl.png"
    report, stdout = run_benchmark(
        tmp_path, "--size", "transformer-tiny", "--quick", "--forced-lengths", "4", "12",
        "--sweep-lengths", "2", "4", "12", "--state-length", "150", "--plot", png, timeout=120)
    systems = report["systems"]
    assert set(systems) == TL_SYSTEMS, report["skipped"]
    t, lrn = systems["transformer"], systems["transformer-lrn"]
    assert 0 < lrn["params"] < t["params"]  # LRN's projection is 3d^2 against self-attention's 4d^2
    assert abs(systems["transformer-lrn-wide"]["params"] - t["params"]) <= 0.02 * t["params"]
    assert systems["transformer-lrn-dec2"]["params"] < lrn["params"]
    for name in ("transformer", "transformer-lrn", "transformer-lrn-wide"):
        assert systems[name]["train_tok_s"]["median"] > 0, name
    grid = report["config"]["grid"]
    assert len(grid) == 8 and "beam5_b64_L12" in grid and "greedy_b1_L4" in grid
    for name in TL_SYSTEMS - {"transformer-lrn-wide"}:
        assert all(systems[name][k]["median"] > 0 for k in grid), name
        ms = report["time_per_token"]["ms_per_token"][name]
        assert len(ms) == 3 and all(v > 0 for v in ms), name
    for pair in ("transformer-lrn/transformer", "transformer-lrn-dec2/transformer",
                 "transformer-dec2/transformer"):
        assert report["ratios"][pair]["beam5_b64_L12"] > 0, pair
    state = report["state_memory"]
    assert set(state) == TL_SYSTEMS - {"transformer-lrn-wide"}
    for name, s in state.items():
        assert s["length"] == 150 and s["steps"] == 151, name
        assert s["total"] > 0 and s["encoder_static"] > 0, name
    # the transformer's self-attention cache grows with the output, LRN keeps one vector per layer
    assert state["transformer"]["grows"] > state["transformer-lrn"]["grows"]
    lrn_state = state["transformer-lrn"]["grows"] + state["transformer-lrn"]["constant"]
    assert state["transformer"]["grows"] > 10 * lrn_state
    assert state["transformer-lrn"]["constant"] > 0
    assert state["transformer-dec2"]["grows"] > state["transformer-lrn-dec2"]["grows"]
    targets = {t["what"] for t in report["targets"]}
    assert any("transformer-lrn-dec2 / transformer" in w for w in targets)
    assert any(w.startswith("train tok/s") for w in targets)
    assert all(isinstance(t["met"], bool) for t in report["targets"] if t["value"] is not None)
    assert "### Decoder state per sentence at L=150" in stdout and "| transformer-lrn |" in stdout
    assert png.exists() and png.stat().st_size > 1000
