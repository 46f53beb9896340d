"""Shared pieces of the reliability tests: the tiny training command, the launcher, log parsing."""

import os
import re
import signal
import subprocess
import sys
import time

import torch

from tests.cli_utils import REPO, USER_DIR

LAUNCHER = os.path.join(REPO, "scripts", "launch_distributed.py")

# A tiny LRN (about 10k parameters) with an lr schedule that changes every update, saving every 3
# updates. 400 training pairs at --max-tokens 200 make 14 batches: 7 updates per epoch with
# --update-freq 2, so update 13 lies inside epoch 2.
TINY = ["--arch", "lrn_iwslt_de_en", "--encoder-embed-dim", "16", "--decoder-embed-dim", "16",
        "--decoder-out-embed-dim", "16", "--encoder-hidden-size", "16", "--decoder-hidden-size", "16",
        "--dropout", "0", "--optimizer", "adam", "--lr", "0.01", "--lr-scheduler", "inverse_sqrt",
        "--warmup-updates", "4", "--max-tokens", "200", "--no-progress-bar", "--log-interval", "1",
        "--seed", "1", "--disable-validation", "--no-epoch-checkpoints", "--save-interval-updates", "3"]
UPDATES_PER_EPOCH = 7
MAX_UPDATE = 13


def train_args(data_bin, save_dir, *extra, max_update=MAX_UPDATE):
    return [data_bin, "--user-dir", USER_DIR, *TINY, "--max-update", str(max_update), "--save-dir", save_dir,
            "--cpu", *extra]


def launcher_command(fairseq_args, nproc=1, *launcher_args):
    return [sys.executable, LAUNCHER, "--nproc", str(nproc), *launcher_args, "--", *map(str, fairseq_args)]


def env():
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": REPO + (os.pathsep + path if path else "")}


def launch(fairseq_args, log_path, nproc=1, timeout=300):
    """Run the launcher to the end; output to ``log_path``; returns the exit code."""
    with open(log_path, "w") as log:
        return subprocess.run(launcher_command(fairseq_args, nproc), stdout=log, stderr=subprocess.STDOUT,
                              env=env(), timeout=timeout).returncode


def start(fairseq_args, log_path, nproc=1):
    """Start the launcher in its own process group (so that it and its ranks can be killed)."""
    log = open(log_path, "w")
    return subprocess.Popen(launcher_command(fairseq_args, nproc), stdout=log, stderr=subprocess.STDOUT,
                            env=env(), start_new_session=True)


def kill_group(proc):
    """SIGKILL the process group of ``proc`` (the launcher and every rank), as a crash would."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def wait_for(log_path, pattern, proc, timeout=240):
    """Poll ``log_path`` until ``pattern`` matches; fail if ``proc`` ends first or on timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = open(log_path).read()
        found = re.search(pattern, text, re.M)
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"training ended (exit {proc.returncode}) before {pattern!r}:\n{text[-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"timeout waiting for {pattern!r}")


def losses(text):
    """{update: (loss, lr)} from the train_inner lines of a fairseq-train log."""
    return {int(u): (float(loss), float(lr)) for loss, u, lr in
            re.findall(r"train_inner \| .*?loss=([\d.]+),.*?num_updates=(\d+), lr=([\d.e-]+)", text)}


def load(path):
    """A checkpoint through the plugin's safe loader."""
    import fairseq_lrn.models  # noqa: F401
    from fairseq import checkpoint_utils

    return checkpoint_utils.load_checkpoint_to_cpu(str(path))


def tensors(state):
    """Model weights and Adam moments of a checkpoint state, by name."""
    out = {f"model.{k}": v for k, v in state["model"].items()}
    for index, slots in state["last_optimizer_state"]["state"].items():
        out.update({f"adam.{index}.{k}": v for k, v in slots.items() if torch.is_tensor(v)})
    return out


def assert_same_state(a, b, exact=True, atol=1e-5):
    ta, tb = tensors(load(a)), tensors(load(b))
    assert ta.keys() == tb.keys()
    for name in ta:
        if exact:
            assert torch.equal(ta[name], tb[name]), f"{name} differs between {a} and {b}"
        else:
            torch.testing.assert_close(ta[name], tb[name], atol=atol, rtol=1e-4, msg=f"{name}: {a} vs {b}")
