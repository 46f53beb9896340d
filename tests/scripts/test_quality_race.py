"""scripts/quality_race.py: an end-to-end race on a toy corpus (tiny models, seconds of budget), bad input,
and the train-log parser."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fairseq_lrn.toy_data import write_corpus

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "quality_race.py"
SYSTEMS = ["transformer", "transformer_lrn", "lrn-additive", "lrn-general", "lrn-conditional", "lstm"]


def load_script():
    spec = importlib.util.spec_from_file_location("quality_race", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def race(corpus, work, *args, timeout=300):
    cmd = [sys.executable, str(SCRIPT), "--src", "en", "--tgt", "xx", *(a for split in ("train", "valid", "test")
           for a in (f"--{split}", str(corpus / split))), "--work-dir", str(work), "--threads", "1", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})


def test_race_end_to_end(tmp_path):
    corpus, work, out = tmp_path / "corpus", tmp_path / "work", tmp_path / "race.json"
    write_corpus(str(corpus), "reordering", {"train": 300, "valid": 20, "test": 20}, src="en", tgt="xx")
    for name in ("train.xx", "test.en"):  # an empty line: dropped from training, kept (and translated) in test
        lines = (corpus / name).read_text().splitlines(keepends=True)
        (corpus / name).write_text("".join(["\n", *lines[1:]]))
    proc = race(corpus, work, "--tiny", "--bpe-merges", "50", "--budget-minutes", "0.04", "--max-tokens", "400",
                "--log-interval", "1", "--systems", *SYSTEMS, "--json", out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    report = json.loads(out.read_text())
    assert report["data"]["vocab_size"] > 4
    assert report["data"]["train_pairs"] == 299 and report["data"]["train_pairs_dropped"] == 1
    assert f"1 empty line(s) in the test set ({corpus / 'test.en'} line 1)" in proc.stderr
    assert list(report["systems"]) == SYSTEMS
    for name, r in report["systems"].items():
        assert "error" not in r, (name, r.get("error"))
        assert 0 <= r["bleu"] <= 100 and 0 <= r["chrf"] <= 100, name
        assert r["bleu_signature"].startswith("nrefs:1|"), name
        assert r["updates"] > 0 and r["epochs"] > 0 and r["wps"] is not None, (name, r)
        assert r["params"] > 0 and r["best_valid_loss"] > 0 and r["train_seconds"] > 0, (name, r)
        assert r["decode_seconds"] is not None, name
        assert Path(r["hypotheses"]).is_file()
        assert f"| {name} | {r['params']:,} |" in proc.stdout  # the markdown table
    assert "--arch lrn " in report["systems"]["lrn-general"]["train_command"]
    assert "--decoder-attention general" in report["systems"]["lrn-general"]["train_command"]
    assert "--share-all-embeddings" in report["systems"]["lstm"]["train_command"]
    assert "--decoder-style conditional" in report["systems"]["lrn-conditional"]["train_command"]
    assert (work / "bin" / "code").is_file() and not (work / "bin.tmp").exists()

    # the race goes on from its JSON: the teacher is not trained again, a student learns from its translations
    plot = tmp_path / "valid.png"
    proc = race(corpus, work, "--tiny", "--bpe-merges", "50", "--budget-minutes", "0.04", "--max-tokens", "400",
                "--systems", "transformer", "transformer_lrn-6-2-distilled", "--json", out, "--plot", plot,
                "--lenpen-grid", "0.5", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "transformer: finished already in" in proc.stderr
    resumed = json.loads(out.read_text())
    assert list(resumed["systems"]) == [*SYSTEMS, "transformer_lrn-6-2-distilled"]
    tuned = resumed["systems"]["transformer"].pop("lenpen")  # chosen for the finished teacher, not retrained
    assert resumed["systems"]["transformer"] == report["systems"]["transformer"]
    for name, lenpen in (("transformer", tuned), ("transformer_lrn-6-2-distilled",
                                                  resumed["systems"]["transformer_lrn-6-2-distilled"]["lenpen"])):
        assert "error" not in lenpen, lenpen["error"]
        assert set(lenpen["valid_bleu"]) == {"0.5", "2"} and lenpen["grid"] == [0.5, 2.0]
        best = max(lenpen["valid_bleu"].values())
        assert lenpen["valid_bleu"][f"{lenpen['chosen']:g}"] == best and 0 <= lenpen["bleu"] <= 100
        assert "--gen-subset test" in lenpen["generate_command"]
        assert f"--lenpen {lenpen['chosen']:g}" in lenpen["generate_command"]
        assert f"{lenpen['bleu']:.2f} / {lenpen['chrf']:.2f} (lenpen {lenpen['chosen']:g})" in proc.stdout
        assert (work / "systems" / name / "generate-valid-lenpen0.5.txt").is_file()
    assert resumed["systems"]["lstm"].get("lenpen") is None  # not in --systems
    student = resumed["systems"]["transformer_lrn-6-2-distilled"]
    assert "error" not in student, student["error"]
    assert student["distillation"]["sentences"] == 299 and student["distillation"]["backend"] == "generate"
    distilled_bin = student["distillation"]["data_bin"]
    assert distilled_bin in student["train_command"] and "--encoder-layers 2" in student["train_command"]
    assert (Path(distilled_bin) / "dict.xx.txt").read_bytes() == (work / "bin" / "dict.xx.txt").read_bytes()
    assert plot.stat().st_size > 0 and all(r["valid_curve"] for r in resumed["systems"].values())

    # a rerun reuses the finished preparation
    proc = race(corpus, work, "--bpe-merges", "50", "--prepare-only")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("done already, skipped") == 5


def test_bad_input(tmp_path):
    corpus = tmp_path / "corpus"
    write_corpus(str(corpus), "reordering", {"train": 30, "valid": 5, "test": 5}, src="en", tgt="xx")
    lines = (corpus / "valid.xx").read_text().splitlines(keepends=True)
    (corpus / "valid.xx").write_text("".join(lines[:-1]))
    proc = race(corpus, tmp_path / "work", "--prepare-only", timeout=60)
    assert proc.returncode == 1
    assert f"valid.en has 5 lines, {corpus / 'valid.xx'} has 4" in proc.stderr, proc.stderr
    assert not (tmp_path / "work" / "bin").exists()

    (corpus / "valid.xx").write_bytes(b"".join(line.encode() for line in lines[:-1]) + b"caf\xe9\n")
    proc = race(corpus, tmp_path / "work", "--prepare-only", timeout=60)
    assert proc.returncode == 1 and f"valid file {corpus / 'valid.xx'} is not UTF-8 text (line 5" in proc.stderr

    (corpus / "test.en").unlink()
    proc = race(corpus, tmp_path / "work", "--prepare-only", timeout=60)
    assert proc.returncode == 1 and f"missing test file: {corpus / 'test.en'}" in proc.stderr, proc.stderr

    proc = race(corpus, tmp_path / "work", "--systems", "nope", timeout=60)
    assert proc.returncode == 2 and "unknown system(s) nope" in proc.stderr


def test_override():
    override = load_script().override
    assert (override(["--a", "1", "--b", "--c", "(0.9, 0.98)", "-1"], ["--c", "2", "--d"])
            == ["--a", "1", "--b", "--c", "2", "--d"])


LOG = """\
2026-12-01 | INFO | fairseq_cli.train | num. shared model params: 1,234,567 (num. trained: 1,234,567)
2026-12-01 | INFO | train_inner | epoch 001:     10 / 20 loss=9.1, nll_loss=9, ppl=512, wps=1500.5, ups=1.2, num_updates=10, lr=5e-05
2026-12-01 | INFO | valid | epoch 001 | valid on 'valid' subset | loss 8.5 | nll_loss 8.2 | ppl 300 | wps 9000 | num_updates 20
2026-12-01 | INFO | train | epoch 001 | loss 9.0 | nll_loss 8.9 | ppl 480 | wps 1,600 | ups 1.3 | num_updates 20 | lr 0.0001 | train_wall 15
2026-12-01 | INFO | train_inner | epoch 002:     5 / 20 loss=8.1, wps=1700, num_updates=25
2026-12-01 | INFO | fairseq_cli.train | Stopping training due to cumulative_training_time: 0.006 > stop_time_hours: 0.0055 hour(s)
2026-12-01 | INFO | valid | epoch 002 | valid on 'valid' subset | loss 8.6 | nll_loss 8.3 | ppl 310 | num_updates 25 | best_loss 8.5
2026-12-01 | INFO | train | epoch 002 | loss 8.0 | wps 1800.5 | num_updates 25 | train_wall 4
2026-12-01 | INFO | fairseq_cli.train | done training in 17.5 seconds
"""


def test_parse_train_log():
    r = load_script().parse_train_log(LOG)
    assert r["params"] == 1234567 and r["updates"] == 25
    assert r["train_seconds"] == 21.6 and r["train_loop_seconds"] == 17.5  # the budget's clock; the loop alone
    assert r["epochs"] == 1.25  # the budget ended a quarter into epoch 2
    assert r["wps_per_epoch"] == [1600.0, 1800.5]
    assert r["wps"] == round((1600 * 15 + 1800.5 * 4) / 19, 1)  # all words over all training time
    assert r["valid_loss"] == 8.6 and r["best_valid_loss"] == 8.5
    no_budget_stop = load_script().parse_train_log(LOG.replace("| train_wall 4", "| train_wall 4 | wall 30")
                                                   .replace("Stopping training", "(no) stopping training"))
    assert no_budget_stop["train_seconds"] == 30.0
    empty = load_script().parse_train_log("")
    assert empty["updates"] is None and empty["wps"] is None


def test_valid_curve_from_log_time_stamps():
    log = ("2026-12-06 10:00:00 | INFO | fairseq_cli.train | start\n"
           "2026-12-06 10:04:30 | INFO | valid | epoch 001 | valid on 'valid' subset | loss 9.5 | num_updates 180\n"
           "2026-12-06 10:09:00 | INFO | valid | epoch 002 | valid on 'valid' subset | loss 7.25 | num_updates 360\n")
    curve = load_script().parse_train_log(log)["valid_curve"]
    assert curve == [{"seconds": 270.0, "updates": 180.0, "loss": 9.5}, {"seconds": 540.0, "updates": 360.0, "loss": 7.25}]
    assert load_script().parse_train_log(LOG)["valid_curve"] == []  # no time of day in the stamps


def test_previous_results_only_on_the_same_data(tmp_path):
    previous_results = load_script().previous_results
    data = {"bin": "/w/bin", "vocab_size": 100, "train_pairs": 10, "test_pairs": 5, "test_references": "/c/test.xx"}
    path = tmp_path / "race.json"
    assert previous_results(path, data) == {}
    path.write_text(json.dumps({"data": data, "systems": {"lstm": {"bleu": 1.0}}}))
    assert previous_results(path, data) == {"lstm": {"bleu": 1.0}}
    RaceError = load_script().RaceError
    with pytest.raises(RaceError, match="holds results on other data \\(train_pairs differ\\)"):
        previous_results(path, {**data, "train_pairs": 11})
    path.write_text("{")
    with pytest.raises(RaceError, match="is not a race report"):
        previous_results(path, data)
