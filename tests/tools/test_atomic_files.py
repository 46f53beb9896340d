"""fairseq_lrn.atomic_files: outputs appear complete or not at all."""

import itertools
import json
import os

import pytest

from fairseq_lrn.atomic_files import atomic_copy, atomic_outputs, owned_name, write_json
from tests.kill_points import interrupted_output, run_killed_at


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


def test_a_folder_output_removes_a_dead_run_s_leftovers_only(tmp_path):
    dest = tmp_path / "data-bin"
    interrupted_output(dest, {"junk": "from an interrupted run"})  # a killed run's temporary
    (tmp_path / "data-bin.tmp").mkdir()  # the user's own, and a live run's: not ours to delete
    (tmp_path / "data-bin.tmp" / "mine").write_text("keep")
    live = owned_name(dest)  # this (live) process's name
    live.write_text("a run still writing")
    assert len(list(tmp_path.iterdir())) == 3
    with atomic_outputs(dest, durable=True) as (tmp,):
        tmp.mkdir()
        (tmp / "dict.txt").write_text("a 1\n")
    assert sorted(p.name for p in dest.iterdir()) == ["dict.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["data-bin", "data-bin.tmp", live.name])
    assert (tmp_path / "data-bin.tmp" / "mine").read_text() == "keep" and live.read_text() == "a run still writing"


def test_a_kill_at_any_point_leaves_the_old_or_the_new_file(tmp_path):
    out = tmp_path / "report.json"
    user_file = tmp_path / "report.json.tmp"

    def write_new():
        with atomic_outputs(out) as (tmp,):
            tmp.write_text("new")

    for point in itertools.count():
        out.write_text("old")
        user_file.write_text("the user's")
        killed = run_killed_at(point, write_new)
        assert out.read_text() in ("old", "new"), point
        write_new()  # the next run: completes, and removes the killed run's temporary
        assert sorted(os.listdir(tmp_path)) == ["report.json", "report.json.tmp"], point
        assert out.read_text() == "new" and user_file.read_text() == "the user's"
        if not killed:
            break
    assert point >= 2  # killed while writing, and before the rename


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
