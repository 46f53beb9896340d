"""scripts/train_wmt14_en_de.sh: its commands, and the whole recipe on tiny data with a tiny model (CPU)."""

import os
import subprocess
import sys
from pathlib import Path

from tests.data_prep import tiny_wmt14

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "train_wmt14_en_de.sh"
ENV = {**os.environ, "PYTHON": sys.executable}


def run(*args):
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], env=ENV, capture_output=True, text=True)


def test_help():
    proc = run("--help")
    assert proc.returncode == 0
    for flag in ("--data", "--save", "--gpus", "--update-freq", "--average", "--from", "--dry-run", "estimate"):
        assert flag in proc.stdout


def test_commands_carry_the_papers_settings(tmp_path):
    proc = run("--data", tmp_path / "wmt14/data-bin", "--save", tmp_path / "ckpt", "--gpus", "4", "--dry-run",
               "--", "--fp16")
    assert proc.returncode == 0, proc.stderr
    train, average, generate, evaluate = proc.stdout.splitlines()
    for flags in ("--arch lrn_wmt_en_de --share-all-embeddings", "--label-smoothing 0.1", "--adam-eps 1e-9",
                  "--clip-norm 5.0", "--lr 5e-4 --lr-scheduler inverse_sqrt --warmup-updates 4000",
                  "--dropout 0.1", "--max-tokens 4096", "--distributed-world-size 4 --fp16"):
        assert flags in train
    assert "--num-update-checkpoints 5" in average
    assert "--beam 4" in generate and "--remove-bpe subword_nmt" in generate
    assert f"--ref {tmp_path}/wmt14/raw/newstest2014.de" in evaluate and "--tokenized-bleu" in evaluate


def test_separate_dictionaries_are_refused(tmp_path):
    data = tmp_path / "data-bin"
    data.mkdir()
    (data / "dict.en.txt").write_text("a 1\n")
    (data / "dict.de.txt").write_text("b 1\n")
    proc = run("--data", data, "--save", tmp_path / "ckpt")
    assert proc.returncode == 1 and "--joined-dictionary" in proc.stderr


def test_whole_recipe_on_tiny_data(tmp_path):
    tiny_wmt14.build_raw_dir(tmp_path)
    subprocess.run(["bash", str(REPO / "data-prep/prepare-wmt14en2de.sh"), "--out", str(tmp_path / "wmt14"),
                    "--raw-dir", str(tmp_path), "--bpe-merges", "50", "--joined-dictionary", "--workers", "1"],
                   env=ENV, check=True, capture_output=True)
    save = tmp_path / "ckpt"
    tiny_model = ["--encoder-hidden-size", 16, "--decoder-hidden-size", 16, "--encoder-embed-dim", 8,
                  "--decoder-embed-dim", 8, "--decoder-out-embed-dim", 8, "--encoder-layers", 2,
                  "--decoder-layers", 2, "--lr", 5e-2, "--warmup-updates", 1]
    proc = run("--data", tmp_path / "wmt14/data-bin", "--save", save, "--max-update", 4, "--save-every", 2,
               "--average", 2, "--max-tokens", 1000, "--", *tiny_model)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (save / "checkpoint_avg2.pt").is_file()
    assert sum(line.startswith("D-") for line in (save / "generate-test.txt").read_text().splitlines()) == 24
    assert "sacreBLEU: " in proc.stdout and "tokenized BLEU (paper-comparable, not sacreBLEU)" in proc.stdout
