"""fairseq_lrn.tools.data_bin: corpora binarized by fairseq-preprocess, complete or absent."""

import itertools
import os
import shutil
from pathlib import Path

import pytest

from fairseq_lrn import atomic_files
from fairseq_lrn.tools.data_bin import build_data_bin, corpus_prefixes
from fairseq_lrn.toy_data import write_corpus
from tests.kill_points import run_killed_at


def test_build_reuse_and_refuse(tmp_path):
    write_corpus(tmp_path / "corpus", "reversal", {"train": 50, "valid": 5, "test": 5})
    dest = str(tmp_path / "bin")
    assert build_data_bin(dest, joined_dictionary=True, in_process=True, **corpus_prefixes(tmp_path / "corpus")) == dest
    names = set(os.listdir(dest))
    assert {"dict.src.txt", "dict.tgt.txt", "train.src-tgt.src.bin", "test.src-tgt.tgt.idx"} <= names
    with open(os.path.join(dest, "dict.src.txt")) as src, open(os.path.join(dest, "dict.tgt.txt")) as tgt:
        assert src.read() == tgt.read()  # joined
    assert build_data_bin(dest, train="nowhere", reuse=True) == dest
    with pytest.raises(FileExistsError, match="exists already"):
        build_data_bin(dest, train="nowhere")


def test_in_process_writes_what_the_subprocess_writes(tmp_path):
    write_corpus(tmp_path / "corpus", "reordering", {"train": 80, "valid": 5, "test": 5})
    prefixes = corpus_prefixes(tmp_path / "corpus")
    sub = build_data_bin(str(tmp_path / "sub"), **prefixes)
    inproc = build_data_bin(str(tmp_path / "inproc"), in_process=True, **prefixes)
    names = sorted(os.listdir(sub))
    assert names == sorted(os.listdir(inproc)) and "train.src-tgt.tgt.bin" in names
    for name in names:
        if name != "preprocess.log":
            assert Path(sub, name).read_bytes() == Path(inproc, name).read_bytes(), name


def test_a_failing_preprocess_leaves_nothing(tmp_path):
    dest = tmp_path / "bin"
    with pytest.raises(RuntimeError, match="fairseq-preprocess failed"):
        build_data_bin(str(dest), train=str(tmp_path / "missing"), in_process=True)
    assert not dest.exists() and not (tmp_path / "bin.tmp").exists()


def test_replace_swaps_in_a_complete_folder_with_extra_files(tmp_path, monkeypatch):
    def fake_preprocess(tool, *args, **kwargs):  # the folder logic only: no fairseq run needed
        if "--trainpref" in args and args[args.index("--trainpref") + 1] == "missing":
            raise RuntimeError("fairseq-preprocess failed with exit code 1")
        destdir = Path(args[args.index("--destdir") + 1])
        os.makedirs(destdir)
        (destdir / "dict.src.txt").write_text("w0 1\n")

    monkeypatch.setattr("fairseq_lrn.tools.data_bin.run_fairseq", fake_preprocess)
    dest = tmp_path / "bin"
    dest.mkdir()
    (dest / "stale.txt").write_text("from an older build")
    codes = tmp_path / "code"
    codes.write_text("#version: 0.2\n")
    with pytest.raises(RuntimeError):  # a failing rebuild keeps the old folder
        build_data_bin(str(dest), train="missing", replace=True, extra_files=[str(codes)])
    assert (dest / "stale.txt").is_file() and not (tmp_path / "bin.tmp").exists()
    assert build_data_bin(str(dest), train="train", replace=True, extra_files=[str(codes)]) == str(dest)
    assert not (dest / "stale.txt").exists() and (dest / "code").read_text() == "#version: 0.2\n"
    assert (dest / "dict.src.txt").is_file() and not (tmp_path / "bin.tmp").exists()


@pytest.mark.parametrize("exchange", [True, False], ids=["atomic-exchange", "rename-aside"])
def test_a_kill_at_any_point_of_a_replace_leaves_the_old_or_the_new_folder(tmp_path, monkeypatch, exchange):
    new = {"dict.src.txt": "new 1\n", "train.src-tgt.src.bin": "new"}
    old = {"dict.src.txt": "old 1\n", "stale.txt": "from an older build"}

    def fake_preprocess(tool, *args, **kwargs):  # fairseq-preprocess: writes its files one by one
        destdir = Path(args[args.index("--destdir") + 1])
        os.makedirs(destdir)
        for name, text in new.items():
            (destdir / name).write_text(text)

    def contents(folder):
        return {p.name: p.read_text() for p in folder.iterdir()} if folder.is_dir() else None

    monkeypatch.setattr("fairseq_lrn.tools.data_bin.run_fairseq", fake_preprocess)
    if not exchange:  # a file system without renameat2(RENAME_EXCHANGE)
        monkeypatch.setattr(atomic_files, "_exchange", lambda a, b: False)
    dest, users = tmp_path / "bin", tmp_path / "bin.tmp"  # bin.tmp: the user's, never touched

    def rebuild():
        build_data_bin(str(dest), train="train", replace=True)

    for point in itertools.count():
        for folder, files in ((dest, old), (users, {"mine": "keep"})):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            for name, text in files.items():
                (folder / name).write_text(text)
        killed = run_killed_at(point, rebuild)
        if exchange:  # the destination is never missing
            assert contents(dest) in (old, new), point
        atomic_files.recover(dest)  # what the next call does first
        assert contents(dest) in (old, new), point
        assert sorted(os.listdir(tmp_path)) == ["bin", "bin.tmp"], point
        rebuild()
        assert contents(dest) == new and contents(users) == {"mine": "keep"}, point
        assert sorted(os.listdir(tmp_path)) == ["bin", "bin.tmp"], point
        if not killed:
            break
    assert point >= (4 if exchange else 6)  # each file written, the swap, the old folder's removal
