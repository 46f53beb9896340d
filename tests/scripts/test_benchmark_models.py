"""scripts/benchmark_models.py: smoke runs on the tiny sizes (structure of the results, not speed),
and the pieces of fairseq_lrn/bench/ that turn measurements into claims (ratios, targets, sizing)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fairseq_lrn.bench import stats, targets  # neither imports fairseq
from fairseq_lrn.bench.lrn import transformer_layer_params

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "benchmark_models.py"

GEN_KEYS = ("beam5_b1", "beam5_b64", "greedy_b1", "greedy_b64")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """One --work-dir for the module's runs: the synthetic data-bin (the same statistics at
    --size tiny and transformer-tiny) is binarized once."""
    return tmp_path_factory.mktemp("bench-work")


def run_benchmark(tmp_path, work, *args, timeout=240):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--size", "tiny", "--device", "cpu", "--threads", "1",
           "--work-dir", str(work), "--json", str(out), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def flag_value(argv, flag):
    return argv[argv.index(flag) + 1]


def assert_plots_series(png, n_series):
    """The PNG decodes, and holds a pixel of each of matplotlib's first ``n_series`` cycle
    colours (C0, C1, ...: one per series drawn; a blank or failed figure has none)."""
    from matplotlib import colors, image

    pixels = image.imread(str(png))
    assert pixels.ndim == 3 and min(pixels.shape[:2]) >= 300, pixels.shape
    present = {tuple(p) for p in (pixels[..., :3] * 255).round().astype(int).reshape(-1, 3).tolist()}
    for k in range(n_series):
        colour = tuple(round(c * 255) for c in colors.to_rgb(f"C{k}"))
        assert colour in present, f"series C{k} {colour} is not drawn in {png}"


def assert_speeds_are_the_measured_ones(report, stdout, keys):
    """One repeat: each summary is that repeat's value, printed as measured, and each ratio is the
    quotient of the two systems' values."""
    systems = report["systems"]
    for name, s in systems.items():
        for key in keys:
            assert s[key]["median"] == s[key]["min"] == s[key]["max"] == s[key]["values"][0], (name, key)
        assert f"{name:<14s} train {s['train_tok_s']['values'][0]:9,.0f} tok/s" in stdout, name
    for pair, row in report["ratios"].items():
        a, b = pair.split("/")
        for key in keys:
            if key in row:
                assert row[key] == pytest.approx(systems[a][key]["values"][0] / systems[b][key]["values"][0]), \
                    (pair, key)


def test_quick_run_reports_every_system(tmp_path, work):
    png = tmp_path / "bench.png"
    report, stdout = run_benchmark(tmp_path, work, "--quick", "--no-memory", "--plot", png)
    systems = report["systems"]
    assert set(systems) == {"lrn-cpu", "lrn-reference", "lstm", "transformer"}
    if not torch.cuda.is_available():
        assert "lrn-fused" in report["skipped"]
    for name, s in systems.items():
        assert s["params"] > 0, name
        assert len(s["train_tok_s"]["values"]) == report["config"]["repeats"] == 1
    assert_speeds_are_the_measured_ones(report, stdout, ["train_tok_s", *GEN_KEYS])
    # lrn-cpu and lrn-reference are one model with two implementations: their fairseq arguments
    # differ in --lrn-impl only
    cpu, ref = systems["lrn-cpu"]["argv"], systems["lrn-reference"]["argv"]
    assert (flag_value(cpu, "--lrn-impl"), flag_value(ref, "--lrn-impl")) == ("cpu", "reference")
    assert [a for a in cpu if a != "cpu"] == [a for a in ref if a != "reference"]
    # the transformer is sized on LRN's parameter count: its measured count is embeddings + layers x
    # the per-layer formula the sizing uses, and no other (layers, ffn) candidate is closer to LRN's
    t, lrn = systems["transformer"], systems["lrn-cpu"]["params"]
    E, F, L = (int(flag_value(t["argv"], f)) for f in ("--encoder-embed-dim", "--encoder-ffn-embed-dim",
                                                         "--encoder-layers"))
    assert f"{L}+{L} layers, dim {E}, ffn {F}" in t["note"]
    embeddings = t["params"] - L * transformer_layer_params(E, F)
    assert embeddings == 2 * report["config"]["preset"]["vocab"] * E  # source + target (tied output)
    best = min(abs(embeddings + n * transformer_layer_params(E, f) - lrn) for f in (4 * E, 2 * E) for n in range(1, 13))
    assert abs(t["params"] - lrn) == best and abs(t["params"] - lrn) <= 0.15 * lrn
    assert "--encoder-bidirectional" in systems["lstm"]["argv"]
    # ratios against lstm, and the CPU targets as measured ratios
    assert set(report["ratios"]) >= {"lrn-cpu/lstm", "lrn-reference/lstm", "transformer/lstm", "lrn-cpu/lrn-reference"}
    assert {t["what"].split(":")[0] for t in report["targets"]} >= {"train tok/s", *(f"{k} sent/s" for k in GEN_KEYS)}
    assert "| lrn-cpu |" in stdout and "| lstm |" in stdout  # the markdown table
    assert_plots_series(png, len(GEN_KEYS))  # a bar series per generation config


def test_memory_and_quality(tmp_path, work):
    report, stdout = run_benchmark(
        tmp_path, work, "--systems", "lrn-cpu", "lstm", "--repeats", "1", "--train-steps", "1",
        "--skip-generation", "--quality", "--budget-seconds", "2", "--quality-points", "2")
    for name in ("lrn-cpu", "lstm"):
        assert report["systems"][name]["peak_mem_mib"] > 0, report.get("memory_method")
        q = report["quality"]["systems"][name]
        assert len(q["curve"]) == 2 and q["updates"] == q["curve"][-1]["updates"] > q["curve"][0]["updates"] > 0
        assert q["bleu"] == q["curve"][-1]["bleu"]  # the reported BLEU is the last point's, as printed
        for point in q["curve"]:
            assert f"{name:<14s} {point['seconds']:7.1f} s  {point['updates']:6d} updates  BLEU {point['bleu']:6.2f}" \
                in stdout, (name, point)
        assert q["curve"][0]["seconds"] >= 1 and q["curve"][-1]["seconds"] >= 2  # each slice's budget spent
    assert "peak RSS" in report["memory_method"]
    assert "### Quality" in stdout


TL_SYSTEMS = {"transformer", "transformer-lrn", "transformer-dec2", "transformer-lrn-dec2", "transformer-lrn-wide"}


def test_transformer_lrn_quick_run_and_decoder_state(tmp_path, work):
    """--size transformer-tiny: the transformer_lrn vs transformer systems run, and the generator's
    measured incremental state at L=150 shows LRN's constant state against the growing K/V cache."""
    png = tmp_path / "tl.png"
    report, stdout = run_benchmark(
        tmp_path, work, "--size", "transformer-tiny", "--quick", "--forced-lengths", "4", "12",
        "--sweep-lengths", "2", "4", "12", "--state-length", "150", "--plot", png, timeout=120)
    systems = report["systems"]
    assert set(systems) == TL_SYSTEMS, report["skipped"]
    t, lrn = systems["transformer"], systems["transformer-lrn"]
    assert 0 < lrn["params"] < t["params"]  # LRN's projection is 3d^2 against self-attention's 4d^2
    assert abs(systems["transformer-lrn-wide"]["params"] - t["params"]) <= 0.02 * t["params"]
    assert systems["transformer-lrn-dec2"]["params"] < lrn["params"]
    grid = report["config"]["grid"]
    assert len(grid) == 8 and "beam5_b64_L12" in grid and "greedy_b1_L4" in grid
    for name in TL_SYSTEMS:
        trains = name in ("transformer", "transformer-lrn", "transformer-lrn-wide")
        for key in (["train_tok_s"] if trains else []) + ([] if name == "transformer-lrn-wide" else grid):
            s = systems[name][key]
            assert s["median"] == s["values"][0], (name, key)  # one repeat: the measured value
    for name in TL_SYSTEMS - {"transformer-lrn-wide"}:
        ms = report["time_per_token"]["ms_per_token"][name]
        assert len(ms) == 3 and all(v > 0 for v in ms), name
    for pair in ("transformer-lrn/transformer", "transformer-lrn-dec2/transformer",
                 "transformer-dec2/transformer"):
        a, b = pair.split("/")
        assert report["ratios"][pair]["beam5_b64_L12"] == pytest.approx(
            systems[a]["beam5_b64_L12"]["values"][0] / systems[b]["beam5_b64_L12"]["values"][0]), pair
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
    whats = {t["what"] for t in report["targets"]}
    assert any("transformer-lrn-dec2 / transformer" in w for w in whats)
    assert any(w.startswith("train tok/s") for w in whats)
    assert all(isinstance(t["met"], bool) for t in report["targets"] if t["value"] is not None)
    assert report["targets_table"] == [t.as_table_row() for t in targets.family_targets(targets.TRANSFORMER_FAMILY)]
    assert "### Decoder state per sentence at L=150" in stdout and "| transformer-lrn |" in stdout
    assert_plots_series(png, len(report["time_per_token"]["ms_per_token"]))  # a line per system


# ----------------------------------------------------------------------------- in-process, no fairseq

def test_paired_ratio_is_the_median_of_per_repeat_ratios():
    """3 repeats where the ratio of the medians (4/4 = 1) is not the median of the ratios."""
    results = {"a": [{"x": 2.0}, {"x": 4.0}, {"x": 9.0}], "b": [{"x": 1.0}, {"x": 8.0}, {"x": 4.0}]}
    r = stats.paired_ratio(results, "a", "b", "x")
    assert r == {"median": 2.0, "min": 0.5, "max": 2.25, "values": [2.0, 0.5, 2.25]}
    assert stats.paired_ratio(results, "a", "missing", "x") is None
    table = stats.ratio_table(results, [("a", "b"), ("b", "a")], lambda a, b: ["x"], require_all=True)
    assert table["a/b"] == {"x": 2.0, "spread": {"x": (0.5, 2.25)}}
    assert table["b/a"]["x"] == 0.5  # ratios 0.5, 2, 4/9: their median, not 1 / 2.0
    assert table["b/a"]["spread"]["x"] == (4 / 9, 2.0)
    # a key one repeat lacks: the pair is dropped when every key is required, kept without it otherwise
    results["a"][1]["y"] = results["b"][1]["y"] = 1.0
    assert "a/b" not in stats.ratio_table(results, [("a", "b")], lambda a, b: ["x", "y"], require_all=True)
    assert set(stats.ratio_table(results, [("a", "b")], lambda a, b: ["x", "y"], require_all=False)["a/b"]) == \
        {"x", "spread"}


def lrn_report(ratios, gen_configs=GEN_KEYS, quality=None):
    return {"ratios": ratios, "config": {"gen_configs": list(gen_configs)}, **({"quality": quality} if quality else {})}


def test_lrn_targets_met_and_missed_from_known_ratios():
    report = lrn_report({"lrn-cpu/lstm": {"train_tok_s": 1.9, "beam5_b1": 1.3, "beam5_b64": 1.29,
                                          "greedy_b1": 2.0, "greedy_b64": 0.5},
                         "lrn-fused/lstm": {"train_tok_s": 2.4}, "lrn-fused/lrn-reference": {"train_tok_s": 1.6}},
                        quality={"budget_seconds": 60, "systems": {"lrn-fused": {"bleu": 10.0}, "lrn-cpu": {"bleu": 30.0},
                                                                    "lstm": {"bleu": 12.5}}})
    cpu = targets.evaluate(report, targets.LRN_FAMILY, "cpu", "iwslt")
    assert [(r["what"], r["value"], r["target"], r["met"]) for r in cpu] == [
        ("train tok/s: lrn-cpu / lstm", 1.9, 1.8, True),
        ("beam5_b1 sent/s: lrn-cpu / lstm", 1.3, 1.3, True),
        ("beam5_b64 sent/s: lrn-cpu / lstm", 1.29, 1.3, False),
        ("greedy_b1 sent/s: lrn-cpu / lstm", 2.0, 1.3, True),
        ("greedy_b64 sent/s: lrn-cpu / lstm", 0.5, 1.3, False),
        ("BLEU lrn-fused - lstm after 60 s", -2.5, 0.0, False),  # the primary LRN: fused before cpu
    ]
    cuda = targets.evaluate(report, targets.LRN_FAMILY, "cuda", "wmt")
    assert [(r["what"].split(" (")[0], r["met"]) for r in cuda] == [
        ("train tok/s: lrn-fused / lstm", False), ("train tok/s: lrn-fused / lrn-reference", True),
        ("BLEU lrn-fused - lstm after 60 s", False)]
    assert all(r["what"].endswith("(targets are set at --size iwslt; this is wmt)") for r in cuda)
    assert targets.evaluate(lrn_report({}), targets.LRN_FAMILY, "cpu", "iwslt") == []  # nothing measured


def test_transformer_targets_by_forced_length():
    keys = [f"{k}_L{L}" for L in (30, 60) for k in GEN_KEYS]
    ratio = {k: 1.2 for k in keys}
    report = lrn_report({"transformer-lrn/transformer": {**ratio, "train_tok_s": 0.99},
                         "transformer-lrn-dec2/transformer": {**ratio, "beam5_b1_L60": 2.0}}, keys)
    rows = {r["what"]: r for r in targets.evaluate(report, targets.TRANSFORMER_FAMILY)}
    # L=30 row per config (1.2 >= 1.1), L=150 not run, dec2 on every length (>= 1.9), training (>= 1.0)
    assert [w for w in rows if "transformer-lrn / " in w and "L30" in w] == \
        [f"sent/s {k}_L30: transformer-lrn / transformer" for k in GEN_KEYS]
    assert all(r["met"] for w, r in rows.items() if w.endswith("_L30: transformer-lrn / transformer"))
    assert not any("_L60: transformer-lrn / transformer" in w for w in rows)  # no L=60 target for it
    assert rows["sent/s at L=150: transformer-lrn / transformer"] == \
        {"what": "sent/s at L=150: transformer-lrn / transformer", "value": None, "target": 1.3, "met": None}
    dec2 = {w: r["met"] for w, r in rows.items() if "dec2" in w}
    assert len(dec2) == 8 and dec2["sent/s beam5_b1_L60: transformer-lrn-dec2 / transformer"] is True
    assert sum(dec2.values()) == 1
    assert rows["train tok/s: transformer-lrn / transformer"]["met"] is False
