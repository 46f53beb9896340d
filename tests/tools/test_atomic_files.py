"""fairseq_lrn.atomic_files: outputs appear complete or not at all."""

import json

import pytest

from fairseq_lrn.atomic_files import atomic_copy, atomic_outputs, write_json


def test_outputs_are_renamed_into_place_when_the_block_completes(tmp_path):
    a, b = tmp_path / "sub" / "a.txt", tmp_path / "b.txt"
    with atomic_outputs(a, b) as (tmp_a, tmp_b):
        tmp_a.write_text("A")
        tmp_b.write_text("B")
        assert not a.exists() and not b.exists()
    assert a.read_text() == "A" and b.read_text() == "B"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt", "b.txt", "sub"]


def test_a_failing_block_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_outputs(out) as (tmp,):
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert out.read_text() == "old" and not (tmp_path / "out.txt.tmp").exists()


def test_a_folder_output_and_a_leftover_temporary(tmp_path):
    dest = tmp_path / "data-bin"
    (tmp_path / "data-bin.tmp").mkdir()
    (tmp_path / "data-bin.tmp" / "junk").write_text("from an interrupted run")
    with atomic_outputs(dest, durable=True) as (tmp,):
        tmp.mkdir()
        (tmp / "dict.txt").write_text("a 1\n")
    assert sorted(p.name for p in dest.iterdir()) == ["dict.txt"]


def test_atomic_copy(tmp_path):
    src, dst = tmp_path / "checkpoint_2.pt", tmp_path / "checkpoint_last.pt"
    src.write_bytes(bytes(range(256)) * 5000)
    dst.write_bytes(b"old")
    assert atomic_copy(src, dst) is True
    assert dst.read_bytes() == src.read_bytes() and not (tmp_path / "checkpoint_last.pt.copy.tmp").exists()


def test_write_json_replaces_a_report_whole(tmp_path):
    out = tmp_path / "report.json"
    write_json(out, {"bleu": 31.42, "systems": ["lrn"]})
    assert json.loads(out.read_text()) == {"bleu": 31.42, "systems": ["lrn"]}
    with pytest.raises(TypeError):  # not serializable: the old report stays, no temporary left
        write_json(out, {"bad": object()})
    assert json.loads(out.read_text())["bleu"] == 31.42 and not (tmp_path / "report.json.tmp").exists()
