"""Crash and resume: SIGKILL in the middle of an epoch, rerun the same command, continue exactly;
a kill while fairseq copies checkpoint_last.pt leaves no truncated file; an unreadable
checkpoint_last.pt stops the run with a message naming it (no silent restart from scratch)."""

import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from fairseq_lrn.errors import CheckpointError
from tests.cli_utils import REPO
from tests.reliability.helpers import (MAX_UPDATE, UPDATES_PER_EPOCH, assert_same_state, kill_group, launch,
                                       load, losses, start, train_args, wait_for)


def test_sigkill_mid_epoch_then_same_command_resumes_exactly(corpus, reference, tmp_path):
    _, data_bin = corpus
    ref_dir, ref_log = reference
    ref = losses(ref_log)
    args = train_args(data_bin, tmp_path / "run", "--update-freq", "2")  # the reference's command

    log = tmp_path / "killed.log"
    proc = start(args, log)
    try:  # kill right after the mid-epoch-2 checkpoint at update 9 is complete (copies included)
        wait_for(log, r"Saved checkpoint \S*checkpoint_2_9\.pt", proc)
    finally:
        kill_group(proc)
    killed = log.read_text()
    assert proc.returncode == -signal.SIGKILL and "done training" not in killed
    assert {u: ref[u] for u in losses(killed)} == losses(killed)  # same run so far

    log = tmp_path / "resumed.log"
    assert launch(args, log) == 0, log.read_text()[-3000:]
    text = log.read_text()
    found = re.search(r"Loaded checkpoint \S*checkpoint_last\.pt \(epoch 2 @ (\d+) updates\)", text)
    assert found, text[-3000:]
    start_update = int(found.group(1))
    assert 9 <= start_update < MAX_UPDATE
    # the data iterator continues inside epoch 2 (no batch repeated or skipped) ...
    first = re.search(r"train_inner \| epoch 002:\s+(\d+) / 7 ", text)
    assert int(first.group(1)) == start_update - UPDATES_PER_EPOCH + 1
    # ... and loss and learning rate continue where the uninterrupted run was
    resumed = losses(text)
    assert sorted(resumed) == list(range(start_update + 1, MAX_UPDATE + 1))
    assert resumed == {u: ref[u] for u in resumed}
    # weights and Adam moments end bit-identical to the uninterrupted run
    assert_same_state(tmp_path / "run" / "checkpoint_last.pt", os.path.join(ref_dir, "checkpoint_last.pt"))


KILL_DURING_COPY = """
import os, resource, signal, sys
new, dst, limit, plugin = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "plugin"
if plugin:
    import fairseq_lrn.models  # what --user-dir fairseq_lrn does
from fairseq import checkpoint_utils
# The kernel signals SIGXFSZ when a write crosses the limit; die by SIGKILL there, mid-copy.
signal.signal(signal.SIGXFSZ, lambda *_: os.kill(os.getpid(), signal.SIGKILL))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
# exactly what fairseq's save_checkpoint does after writing checkpoint_E_U.pt:
checkpoint_utils.PathManager.copy(new, dst, overwrite=True)
print("copy finished")
"""


@pytest.mark.parametrize("loaded", ["fairseq-alone", "plugin"])
def test_kill_while_copying_to_checkpoint_last(reference, tmp_path, loaded):
    ref_dir, _ = reference
    old, new = os.path.join(ref_dir, "checkpoint_1_3.pt"), os.path.join(ref_dir, "checkpoint_1_6.pt")
    dst = tmp_path / "checkpoint_last.pt"
    shutil.copyfile(old, dst)  # the previous checkpoint_last.pt
    size = os.path.getsize(new)
    proc = subprocess.run([sys.executable, "-c", KILL_DURING_COPY, new, str(dst), str(size // 2), loaded],
                          cwd=REPO, capture_output=True, text=True, timeout=120)  # python -c imports from cwd
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert "copy finished" not in proc.stdout
    if loaded == "fairseq-alone":
        # fairseq 0.12's own copy: the resume point is now a truncated file
        assert os.path.getsize(dst) < size
        with pytest.raises(CheckpointError, match="truncated"):
            load(dst)
    else:
        # the plugin's copy: checkpoint_last.pt is still the complete previous checkpoint
        assert dst.read_bytes() == open(old, "rb").read()
        assert load(dst)["optimizer_history"][-1]["num_updates"] == 3
        from fairseq import checkpoint_utils
        from fairseq.file_io import PathManager

        assert checkpoint_utils.PathManager.copy is not PathManager.copy  # only checkpoint_utils patched
        checkpoint_utils.PathManager.copy(new, str(dst), overwrite=True)  # the next save completes it
        assert dst.read_bytes() == open(new, "rb").read()
        assert not os.path.exists(str(dst) + ".copy.tmp")


def test_unreadable_checkpoint_last_stops_the_run_and_names_it(corpus, reference, tmp_path):
    _, data_bin = corpus
    ref_dir, _ = reference
    save = tmp_path / "run"
    save.mkdir()
    shutil.copyfile(os.path.join(ref_dir, "checkpoint_1_6.pt"), save / "checkpoint_1_6.pt")
    data = open(os.path.join(ref_dir, "checkpoint_2_12.pt"), "rb").read()
    (save / "checkpoint_last.pt").write_bytes(data[: len(data) // 3])  # e.g. written by fairseq alone
    log = tmp_path / "run.log"
    assert launch(train_args(data_bin, save, "--update-freq", "2"), log) != 0
    text = log.read_text()
    assert "CheckpointError: cannot read checkpoint" in text and str(save / "checkpoint_last.pt") in text
    assert "truncated" in text and "--restore-file" in text and "checkpoint_1_6.pt" in text
    assert "train_inner" not in text  # did not start training from scratch
    assert (save / "checkpoint_last.pt").read_bytes() == data[: len(data) // 3]  # nothing overwritten
