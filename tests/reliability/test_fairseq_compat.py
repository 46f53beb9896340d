"""fairseq_lrn.fairseq_compat: the table of fairseq fixes, the environment variables that opt out of
them, the version check, idempotence. (What each fix does: test_numpy2_compat, test_last_batch,
test_checkpoint_matrix, test_bad_input, test_resume, tests/models.)"""

import json
import os
import subprocess
import sys

import fairseq
import numpy as np
import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.data import data_utils

import fairseq_lrn.models  # noqa: F401  (installs the fixes, as --user-dir does)
from fairseq_lrn import fairseq_compat
from tests.cli_utils import REPO

FAIRSEQ_BATCH_BY_SIZE = getattr(data_utils.batch_by_size, "__wrapped__", data_utils.batch_by_size)  # fairseq's own


@pytest.fixture
def fresh(monkeypatch):
    """A process where no fix was applied yet (as far as fairseq_compat's records and
    batch_by_size go)."""
    monkeypatch.setattr(fairseq_compat, "STATUS", {})
    monkeypatch.setattr(fairseq_compat, "_warned", set())
    monkeypatch.setattr(data_utils, "batch_by_size", FAIRSEQ_BATCH_BY_SIZE)


def test_the_plugin_applies_the_fixes_once():
    expected = {"last_partial_batch", "checkpoint_loading", "literal_args", "training_machine_args",
                "checkpoint_copies", "hub_skip_alignment"} | \
        ({"numpy2"} if not hasattr(np, "compat") else set())  # numpy 1 needs no numpy2 fix
    assert set(fairseq_compat.applied()) == expected  # interactive_input, help_flags: not this process
    assert fairseq_compat.install() == fairseq_compat.install() == fairseq_compat.applied()
    assert data_utils.batch_by_size.__wrapped__ is FAIRSEQ_BATCH_BY_SIZE  # wrapped once
    assert not hasattr(FAIRSEQ_BATCH_BY_SIZE, "keeps_every_sentence")
    assert set(fairseq_compat.STATUS) == set(fairseq_compat.FIXES)


def test_a_fresh_process_imports_cheaply_and_can_switch_every_fix_off():
    code = ("import sys, fairseq_lrn, fairseq_lrn.fairseq_compat; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fairseq', 'torch', 'numpy')))")
    env = {**os.environ, "FAIRSEQ_LRN_FAIRSEQ_FIXES": "off"}
    code_off = ("import json, fairseq_lrn.models, fairseq_lrn.fairseq_compat as c; "
                "from fairseq import checkpoint_utils; from fairseq.data import data_utils; "
                "print(json.dumps([c.applied(), hasattr(data_utils.batch_by_size, 'keeps_every_sentence'), "
                "hasattr(checkpoint_utils.load_checkpoint_to_cpu, 'lrn_safe_loader'), c.STATUS]))")
    proc = subprocess.run([sys.executable, "-c", f"{code}\n{code_off}"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules, switched_off = proc.stdout.strip().splitlines()[-2:]
    assert modules == "[]"
    applied, wrapped_batching, safe_loader, status = json.loads(switched_off)
    assert applied == [] and not wrapped_batching and not safe_loader  # fairseq's own functions
    assert status["numpy2"] == "not applied (FAIRSEQ_LRN_FAIRSEQ_FIXES=off)"


def test_skipping_named_fixes(fresh):
    applied = fairseq_compat.install(environ={"FAIRSEQ_LRN_SKIP_FIXES": " numpy2, last_partial_batch"})
    assert "last_partial_batch" not in applied and "numpy2" not in applied and "checkpoint_loading" in applied
    assert data_utils.batch_by_size is FAIRSEQ_BATCH_BY_SIZE
    assert fairseq_compat.STATUS["last_partial_batch"] == "not applied (FAIRSEQ_LRN_SKIP_FIXES)"
    assert fairseq_compat.install(environ={}) == tuple(fairseq_compat.FIXES)[:2] + applied  # the rest, later
    assert data_utils.batch_by_size.keeps_every_sentence


def test_switching_all_fixes_off(fresh):
    assert fairseq_compat.install(environ={"FAIRSEQ_LRN_FAIRSEQ_FIXES": "OFF"}) == ()
    assert data_utils.batch_by_size is FAIRSEQ_BATCH_BY_SIZE


@pytest.mark.parametrize("environ, message", [
    ({"FAIRSEQ_LRN_SKIP_FIXES": "numpy2,numpy_2"},
     "FAIRSEQ_LRN_SKIP_FIXES: unknown fix name.s. 'numpy_2'; the valid names are: numpy2, last_partial_batch, "
     "checkpoint_loading, literal_args, training_machine_args, checkpoint_copies, interactive_input, "
     "hub_skip_alignment, help_flags"),
    ({"FAIRSEQ_LRN_FAIRSEQ_FIXES": "no"}, "FAIRSEQ_LRN_FAIRSEQ_FIXES='no': expected 'on' .* or 'off'"),
])
def test_unknown_names_are_errors_naming_the_valid_ones(fresh, environ, message):
    with pytest.raises(ValueError, match=message):
        fairseq_compat.install(environ=environ)
    assert fairseq_compat.STATUS == {} and data_utils.batch_by_size is FAIRSEQ_BATCH_BY_SIZE


def test_a_fairseq_the_fixes_were_not_written_for_gets_none_with_a_warning(fresh, monkeypatch, caplog):
    monkeypatch.setattr(fairseq, "__version__", "0.13.0")
    with caplog.at_level("WARNING"):
        assert fairseq_compat.install() == ()
        fairseq_compat.install()  # warned once per fix
    assert data_utils.batch_by_size is FAIRSEQ_BATCH_BY_SIZE
    assert caplog.text.count("not applying the fairseq fix 'last_partial_batch'") == 1
    assert "written for fairseq 0.12.x, installed fairseq is 0.13.0" in caplog.text
    assert fairseq_compat.STATUS["numpy2"] == "not applied: written for fairseq 0.12.x, installed fairseq is 0.13.0"


def test_torch_before_the_loaders_minimum_skips_it_with_a_warning(fresh, monkeypatch, caplog):
    def fairseq_loader(path):
        return "fairseq's own"

    monkeypatch.setattr(checkpoint_utils, "load_checkpoint_to_cpu", fairseq_loader)
    monkeypatch.setattr(torch, "__version__", "2.5.1+cpu")
    with caplog.at_level("WARNING"):
        applied = fairseq_compat.install(environ={"FAIRSEQ_LRN_SKIP_FIXES": "last_partial_batch"})
    assert "checkpoint_loading" not in applied and "checkpoint_copies" in applied
    assert checkpoint_utils.load_checkpoint_to_cpu is fairseq_loader
    assert "'checkpoint_loading'" in caplog.text and "written for torch >= 2.6, installed torch is 2.5.1+cpu" \
        in caplog.text
    assert "no protection against crafted files" in caplog.text  # what that means (checkpoint_loading's note)
