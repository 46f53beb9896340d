"""Checkpoint loading: fairseq checkpoints load under torch >= 2.6; crafted files are refused."""

import argparse
import pickle

import numpy as np
import pytest
import torch
from fairseq import checkpoint_utils

import fairseq_lrn.models  # noqa: F401  (installs the safe loader, as --user-dir does)
from fairseq_lrn.errors import CheckpointError
from fairseq_lrn.fairseq_compat.checkpoint_loading import fairseq_checkpoint_globals
from tests.models.helpers import RunsCode


def test_checkpoint_written_by_fairseq_train_loads(trained):
    _, _, checkpoint = trained
    state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)
    assert state["cfg"]["model"].arch == "lrn_iwslt_de_en"
    assert "encoder.embed_tokens.weight" in state["model"]


def test_allow_list_covers_numpy_scalars_and_namespace(tmp_path):
    path = tmp_path / "extra.pt"
    torch.save({"args": argparse.Namespace(lr=[0.1]), "best": np.float64(3.5), "v": np.float32(1.0)}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # plain torch.load keeps torch's default: refused
    with torch.serialization.safe_globals(fairseq_checkpoint_globals()):
        state = torch.load(path)
    assert state["args"].lr == [0.1] and state["best"] == 3.5


def test_code_executing_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "args": RunsCode(str(marker))}, path)
    with pytest.raises(CheckpointError, match="references (io|builtins).open") as info:
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("content, message", [
    (b"", "truncated, empty or not a fairseq checkpoint"),
    (b"not a checkpoint at all", "truncated, empty or not a fairseq checkpoint|not a checkpoint of tensors"),
    (pickle.dumps({"model": {}}), "refused to load checkpoint"),
])
def test_unreadable_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert str(path) in str(info.value)


def test_truncated_checkpoint_is_named(trained, tmp_path):
    _, _, checkpoint = trained
    data = open(checkpoint, "rb").read()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        checkpoint_utils.load_checkpoint_to_cpu(str(truncated))


def test_torch_before_2_6_is_left_as_fairseq_uses_it_with_a_warning():
    """torch < 2.6 unpickles everything by default (and < 2.5 has no safe_globals): the loader is
    not wrapped there (it would protect nothing, and failed on every checkpoint under 2.0-2.4).
    fairseq_compat.install checks the versions and warns (test_fairseq_compat checks that the
    loader stays fairseq's own and the warning)."""
    from fairseq_lrn import fairseq_compat
    from fairseq_lrn.fairseq_compat import checkpoint_loading

    for old in ("2.5.1", "2.4.0+cpu"):
        reason = fairseq_compat.outside_versions(checkpoint_loading, {"fairseq": "0.12.2", "torch": old})
        assert f"installed torch is {old}" in reason and "no protection against crafted files" in reason
    assert fairseq_compat.outside_versions(checkpoint_loading) is None  # the torch the tests run with (>= 2.6)


def _fairseq_checkpoint(trained, tmp_path, change):
    """A copy of the trained checkpoint with ``change(state)`` applied (our own file)."""
    state = torch.load(trained[2], weights_only=False)
    change(state)
    path = tmp_path / "changed.pt"
    torch.save(state, path)
    return str(path)


def test_numpy_integer_scalars_in_a_checkpoint_load(trained, tmp_path):
    path = _fairseq_checkpoint(trained, tmp_path, lambda state: state["extra_state"].update(
        steps=np.int64(7), small=np.int32(3), done=np.bool_(True), score=np.float16(0.5)))
    extra = checkpoint_utils.load_checkpoint_to_cpu(path)["extra_state"]
    assert (extra["steps"], extra["small"], extra["done"], extra["score"]) == (7, 3, True, 0.5)
    assert isinstance(extra["steps"], np.int64)


def test_an_error_inside_a_real_checkpoint_is_not_called_a_foreign_file(trained, tmp_path):
    """A KeyError fairseq raises while upgrading what has the shape of a checkpoint is fairseq's
    own error, not "not one fairseq-train wrote"; a bare state_dict still is foreign."""
    path = _fairseq_checkpoint(trained, tmp_path, lambda state: state.pop("extra_state"))
    with pytest.raises(KeyError) as info:
        checkpoint_utils.load_checkpoint_to_cpu(path)
    assert not isinstance(info.value, CheckpointError)
    bare = tmp_path / "bare.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, bare)
    with pytest.raises(CheckpointError, match="not one fairseq-train wrote"):
        checkpoint_utils.load_checkpoint_to_cpu(str(bare))
