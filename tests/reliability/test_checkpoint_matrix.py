"""Crafted and damaged checkpoint files (in addition to the safe-loader tests in tests/models/):
each is refused with a CheckpointError naming the file, and nothing in it runs."""

import io
import os
import zipfile

import numpy as np
import pytest
import torch

import fairseq_lrn.models  # noqa: F401  (installs the safe loader, as --user-dir does)
from fairseq_lrn.errors import CheckpointError
from tests.models.helpers import RunsCode
from tests.reliability.helpers import load


def test_a_checkpoint_cut_anywhere_is_refused_by_name(reference, tmp_path):
    """fairseq 0.12 alone could leave such files (see test_resume); torch reports them in four
    different ways (EOFError, RuntimeError, OSError EINVAL, UnpicklingError), all named here."""
    ref_dir, _ = reference
    data = open(os.path.join(ref_dir, "checkpoint_1_6.pt"), "rb").read()
    path = tmp_path / "checkpoint_last.pt"
    for cut in sorted({0, 1, 10, 100, *range(0, len(data), max(1, len(data) // 60)), len(data) - 1}):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as info:
            load(path)
        assert str(path) in str(info.value), cut


def _zip_not_from_torch(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "not a checkpoint")


@pytest.mark.parametrize("kind, make, message", [
    ("tensor", lambda p: torch.save(torch.zeros(3), p), "torch file, but not one fairseq-train wrote"),
    ("bare state_dict", lambda p: torch.save({"encoder.w": torch.zeros(3)}, p),
     "torch file, but not one fairseq-train wrote"),
    ("zip archive not written by torch", _zip_not_from_torch, "cannot read checkpoint"),
    ("numpy .npy", lambda p: np.save(open(p, "wb"), np.zeros(3)), "refused to load checkpoint"),
    ("safetensors-like header", lambda p: open(p, "wb").write(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "),
     "refused to load checkpoint|cannot read checkpoint"),
])
def test_wrong_formats_are_refused_by_name(tmp_path, kind, make, message):
    path = tmp_path / "model.pt"
    make(str(path))
    with pytest.raises(CheckpointError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


def _receive(payload: bytes, monkeypatch):
    """What rank 1 gets from fairseq's ``distributed_utils._broadcast_object_slow`` (as the plugin
    installed it) when rank 0 sent ``payload``: the two broadcasts (length, bytes) are faked."""
    from fairseq.distributed import utils as distributed_utils

    sent = iter([torch.LongTensor([len(payload)]), torch.frombuffer(bytearray(payload), dtype=torch.uint8)])
    monkeypatch.setattr(distributed_utils, "get_rank", lambda group: 1)
    monkeypatch.setattr(distributed_utils, "broadcast", lambda tensor, src, group: tensor.copy_(next(sent)))
    return distributed_utils._broadcast_object_slow(None, 0, None, torch.device("cpu"))


def test_what_rank_0_broadcasts_passes_the_receivers_allow_list_and_code_does_not(reference, tmp_path,
                                                                                   monkeypatch):
    """Resuming data-parallel training: rank 0 loads the checkpoint and broadcasts it; the other
    ranks receive it through fairseq's _broadcast_object_slow, which the plugin wraps to unpickle
    with weights_only under broadcast_globals() (omegaconf cfg included)."""
    from fairseq.distributed import utils as distributed_utils

    ref_dir, _ = reference
    state = load(os.path.join(ref_dir, "checkpoint_1_3.pt"))
    buffer = io.BytesIO()
    torch.save(distributed_utils._split_tensors_from_obj(state, []), buffer)
    fairseq_receive = distributed_utils._broadcast_object_slow.__wrapped__  # fairseq's own, unwrapped
    with monkeypatch.context() as plain:
        plain.setattr(distributed_utils, "_broadcast_object_slow", fairseq_receive)
        with pytest.raises(Exception, match="DictConfig"):  # torch's default allow-list: refused
            _receive(buffer.getvalue(), plain)
    received = _receive(buffer.getvalue(), monkeypatch)
    assert received["cfg"]["model"].arch == "lrn_iwslt_de_en"

    marker = tmp_path / "payload-ran"
    buffer = io.BytesIO()
    torch.save({"cfg": RunsCode(str(marker))}, buffer)
    with pytest.raises(CheckpointError, match=r"could not receive the object rank 0 broadcast.*open"):
        _receive(buffer.getvalue(), monkeypatch)
    assert not marker.exists()
