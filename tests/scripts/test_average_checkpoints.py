"""scripts/average_checkpoints.py on small checkpoints shaped like fairseq-train's."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "average_checkpoints.py"


def fake_checkpoint(path, updates, scale):
    torch.save({
        "args": None,
        "cfg": {"common": {"seed": 1}, "model": {"_name": "lrn_wmt_en_de"}, "task": {"_name": "translation"}},
        "model": {"w": torch.full((2, 3), scale), "h": torch.full((4,), scale, dtype=torch.float16),
                  "version": torch.tensor([updates])},
        "optimizer_history": [{"criterion_name": "LabelSmoothedCrossEntropyCriterion", "optimizer_name": "FairseqAdam",
                               "lr_scheduler_state": {"best": np.float64(3.5)}, "num_updates": updates}],
        "extra_state": {"train_iterator": {"epoch": 1}, "best": np.float64(3.5)},
        "last_optimizer_state": {"state": {0: {"exp_avg": torch.zeros(3)}}},
    }, path)


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_averages_the_newest_update_checkpoints(tmp_path):
    for i, updates in enumerate((1000, 2000, 3000, 10000)):
        fake_checkpoint(tmp_path / f"checkpoint_1_{updates}.pt", updates, scale=float(i))
    fake_checkpoint(tmp_path / "checkpoint_last.pt", 10000, scale=100.0)
    out = tmp_path / "avg.pt"
    proc = run("--inputs", tmp_path, "--num-update-checkpoints", 3, "--output", out)
    assert proc.returncode == 0, proc.stderr
    assert not out.with_name("avg.pt.tmp").exists()

    from fairseq import checkpoint_utils

    from fairseq_lrn.fairseq_compat.checkpoint_loading import install

    install()
    avg = checkpoint_utils.load_checkpoint_to_cpu(str(out))  # as fairseq-generate reads it, safely
    assert torch.equal(avg["model"]["w"], torch.full((2, 3), 2.0))  # mean of 1, 2, 3 (updates 2000..10000)
    assert avg["model"]["h"].dtype == torch.float16 and torch.equal(avg["model"]["h"], torch.full((4,), 2.0).half())
    assert avg["model"]["version"].item() == 10000
    assert avg["optimizer_history"][-1]["num_updates"] == 10000 and "last_optimizer_state" not in avg


def test_too_few_checkpoints_is_an_error(tmp_path):
    fake_checkpoint(tmp_path / "checkpoint_1_1000.pt", 1000, scale=1.0)
    proc = run("--inputs", tmp_path, "--num-update-checkpoints", 2, "--output", tmp_path / "avg.pt")
    assert proc.returncode == 1
    assert f"{tmp_path} holds 1 checkpoints saved by update, 2 requested" in proc.stderr
