"""The WMT14 preparation end to end on tiny archives in the upstream layouts (nothing is downloaded)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from fairseq_lrn.prep import wmt14 as prepare_wmt14
from fairseq_lrn.prep.io import read_lines
from tests.data_prep import tiny_wmt14
from tests.kill_points import interrupted_output

SCRIPT = Path(__file__).resolve().parents[2] / "data-prep" / "prepare-wmt14en2de.sh"
SPLITS = ("train", "valid", "test")


def lines(path):
    return list(read_lines(path))


def tree(root):
    """Every output file's bytes, by relative path (fairseq's log names the temporary folder: left out)."""
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "preprocess.log"}


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    return SimpleNamespace(path=raw, tiny=tiny_wmt14.build_raw_dir(raw))


@pytest.fixture(scope="module")
def bpe_run(raw_dir, tmp_path_factory):
    """A full run through the shell front end: BPE, joined dictionary, two worker processes."""
    out = tmp_path_factory.mktemp("bpe") / "wmt14"
    proc = subprocess.run(["bash", str(SCRIPT), "--out", str(out), "--raw-dir", str(raw_dir.path),
                           "--bpe-merges", "50", "--joined-dictionary", "--workers", "2"],
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def test_help_documents_every_flag():
    proc = subprocess.run(["bash", str(SCRIPT), "--help"], env={**os.environ, "PYTHON": sys.executable},
                          capture_output=True, text=True, check=True)
    for flag in ("--out", "--raw-dir", "--bpe-merges", "--spm", "--vocab-size", "--joined-dictionary",
                 "--valid", "--workers", "data-bin", "raw/newstest2014.de"):
        assert flag in proc.stdout
    assert "--stop-after" not in proc.stdout


def test_every_stage_is_line_aligned(bpe_run, raw_dir):
    tiny = raw_dir.tiny
    n_train = sum(map(len, tiny.train.values()))
    for name, pairs in {**tiny.train, "newstest2013": tiny.dev["newstest2013"], "newstest2014": tiny.test}.items():
        assert len(lines(bpe_run / "raw" / f"{name}.en")) == len(lines(bpe_run / "raw" / f"{name}.de")) == len(pairs)
    expected = {"tok/train": n_train, "tok/train.clean": n_train - len(tiny_wmt14.DROPPED),
                "tok/valid": 20, "tok/test": 24, "subword/train": n_train - len(tiny_wmt14.DROPPED),
                "subword/valid": 20, "subword/test": 24}
    for stem, n in expected.items():
        assert len(lines(bpe_run / f"{stem}.en")) == len(lines(bpe_run / f"{stem}.de")) == n, stem


def test_lines_with_odd_characters_stay_aligned(bpe_run):
    en, de = lines(bpe_run / "tok/train.en"), lines(bpe_run / "tok/train.de")
    i = en.index("a carriagereturn inside")  # Moses' normalizer deletes "\r"
    assert en[i:i + 3] == ["a carriagereturn inside", "a line separator", "a bell character"]
    assert de[i:i + 3] == ["ein WagenRücklauf drin", "ein Zeilen Trenner", "ein Glocken Zeichen"]


def test_cleaning_drops_the_bad_pairs_only(bpe_run):
    pairs = set(zip(lines(bpe_run / "tok/train.clean.en"), lines(bpe_run / "tok/train.clean.de")))
    for en, de in tiny_wmt14.DROPPED:
        assert not any(p_en == en and p_de == de for p_en, p_de in pairs)
    assert tiny_wmt14.KEPT_AT_RATIO_LIMIT in pairs
    assert len(lines(bpe_run / "tok/valid.en")) == 20  # valid and test are never cleaned


def test_moses_tokenization_and_bpe_are_applied(bpe_run):
    codes = lines(bpe_run / "subword/bpe.codes")
    assert codes[0].startswith("#version") and 0 < len(codes) - 1 <= 50
    assert " @-@ " in "\n".join(lines(bpe_run / "tok/train.clean.en"))  # aggressive hyphen splitting
    for split in SPLITS:
        tok_name = "train.clean" if split == "train" else split
        for lang in ("en", "de"):
            segmented = lines(bpe_run / f"subword/{split}.{lang}")
            assert any("@@ " in line for line in segmented)
            assert [(s + " ").replace("@@ ", "").strip() for s in segmented] == lines(bpe_run / f"tok/{tok_name}.{lang}")


def test_raw_test_references_are_kept_detokenized(bpe_run, raw_dir):
    assert lines(bpe_run / "raw/newstest2014.de") == [de for _, de in raw_dir.tiny.test]
    assert lines(bpe_run / "raw/newstest2014.en") == [" ".join(en.split()) for en, _ in raw_dir.tiny.test]


def test_binarized_data_loads_in_fairseq(bpe_run):
    from fairseq import options, tasks

    data_bin = bpe_run / "data-bin"
    assert (data_bin / "dict.en.txt").read_bytes() == (data_bin / "dict.de.txt").read_bytes()
    parser = options.get_generation_parser()  # the way fairseq-generate reads its data
    task = tasks.setup_task(options.parse_args_and_arch(parser, [str(data_bin), "-s", "en", "-t", "de"]))
    for split in SPLITS:
        task.load_dataset(split)
        dataset = task.dataset(split)
        src, tgt = lines(bpe_run / f"subword/{split}.en"), lines(bpe_run / f"subword/{split}.de")
        assert len(dataset) == len(src)
        for i in range(len(dataset)):
            assert task.src_dict.string(dataset[i]["source"]) == src[i]
            assert task.tgt_dict.string(dataset[i]["target"]) == tgt[i]


def test_resumed_run_after_interruption_is_identical(bpe_run, raw_dir, tmp_path, capsys):
    out = tmp_path / "wmt14"

    def args(merges=50):
        return ["--out", str(out), "--raw-dir", str(raw_dir.path), "--bpe-merges", str(merges),
                "--joined-dictionary", "--workers", "1"]

    assert prepare_wmt14.main(args() + ["--stop-after", "clean"]) == 0
    assert not (out / "subword").exists() and not (out / "data-bin").exists()
    # What a crash in the middle of the next steps leaves behind.
    (out / "subword").mkdir()
    interrupted_output(out / "subword/train.en", text="half a line")
    interrupted_output(out / "data-bin", {"dict.en.txt": "junk 1\n"})
    capsys.readouterr()

    assert prepare_wmt14.main(args()) == 0
    log = capsys.readouterr().err
    for step in ("extract", "tokenize", "clean"):
        assert f"{step}: done already, skipped" in log
    for step in ("learn-subwords", "apply-subwords", "binarize"):
        assert f"{step}: running" in log
    assert tree(out) == tree(bpe_run)  # byte for byte, though the first run used 2 workers

    assert prepare_wmt14.main(args()) == 0  # a finished run is left as it is
    assert capsys.readouterr().err.count("done already, skipped") == len(prepare_wmt14.STEPS)

    codes = (out / "subword/bpe.codes").read_bytes()
    assert prepare_wmt14.main(args(merges=40) + ["--stop-after", "learn-subwords"]) == 0  # a changed setting
    log = capsys.readouterr().err
    assert "clean: done already, skipped" in log and "learn-subwords: running" in log
    assert (out / "subword/bpe.codes").read_bytes() != codes


def test_sentencepiece_run(raw_dir, tmp_path):
    out = tmp_path / "wmt14"
    assert prepare_wmt14.main(["--out", str(out), "--raw-dir", str(raw_dir.path), "--spm", "--vocab-size", "100",
                               "--workers", "1"]) == 0
    assert (out / "subword/spm.model").is_file() and len(lines(out / "subword/spm.vocab")) == 100
    for split in SPLITS:
        tok_name = "train.clean" if split == "train" else split
        segmented = lines(out / f"subword/{split}.de")
        assert any("\u2581" in line for line in segmented)
        assert [s.replace(" ", "").replace("\u2581", " ").strip() for s in segmented] == lines(out / f"tok/{tok_name}.de")
    assert (out / "data-bin/train.en-de.en.bin").is_file()
    assert (out / "data-bin/dict.en.txt").read_bytes() != (out / "data-bin/dict.de.txt").read_bytes()


def _run_expecting_error(raw, out, capsys):
    raw_args = [] if raw is None else ["--raw-dir", str(raw)]
    assert prepare_wmt14.main(["--out", str(out), *raw_args, "--workers", "1"]) == 1
    return capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncated", "not gzip"])
def test_corrupt_archive_is_named(raw_dir, tmp_path, capsys, damage):
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir.path, raw)
    archive = raw / "dev.tgz"
    data = archive.read_bytes()
    archive.write_bytes(data[:len(data) // 2] if damage == "truncated" else b"<html>404 Not Found</html>")
    err = _run_expecting_error(raw, tmp_path / "out", capsys)
    assert f"corrupt or truncated archive {archive}" in err
    assert not (tmp_path / "out/.done/extract.json").exists()


def test_missing_archive_is_named(raw_dir, tmp_path, capsys):
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir.path, raw)
    (raw / "test-full.tgz").unlink()
    assert f"missing archive {raw / 'test-full.tgz'}" in _run_expecting_error(raw, tmp_path / "out", capsys)


def test_missing_member_is_named(raw_dir, tmp_path, capsys):
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir.path, raw)
    tiny_wmt14.write_tgz(raw / "dev.tgz", {"dev/newstest2013.en": b"only one side\n"})
    err = _run_expecting_error(raw, tmp_path / "out", capsys)
    assert f"archive {raw / 'dev.tgz'} lacks dev/newstest2013.de" in err


def test_line_count_mismatch_is_named(raw_dir, tmp_path, capsys):
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir.path, raw)
    tiny_wmt14.write_tgz(raw / "training-parallel-nc-v9.tgz", {
        "training/news-commentary-v9.de-en.en": b"one\ntwo\nthree\n",
        "training/news-commentary-v9.de-en.de": b"eins\nzwei\n"})
    err = _run_expecting_error(raw, tmp_path / "out", capsys)
    assert (f"line counts differ in {raw / 'training-parallel-nc-v9.tgz'}: training/news-commentary-v9.de-en.en "
            "has 3 lines, training/news-commentary-v9.de-en.de has 2") in err


def test_without_raw_dir_the_archives_are_fetched_once(raw_dir, tmp_path, monkeypatch, capsys):
    from fairseq_lrn.prep import wmt14_sources

    for name in wmt14_sources.URLS:  # local file:// addresses: the download path runs, offline
        monkeypatch.setitem(wmt14_sources.URLS, name, (raw_dir.path / name).as_uri())
    out = tmp_path / "wmt14"
    assert prepare_wmt14.main(["--out", str(out), "--workers", "1", "--stop-after", "extract"]) == 0
    for name in wmt14_sources.URLS:
        assert (out / "orig" / name).read_bytes() == (raw_dir.path / name).read_bytes()
    assert lines(out / "raw/newstest2014.de") == [de for _, de in raw_dir.tiny.test]

    monkeypatch.setitem(wmt14_sources.URLS, "dev.tgz", (tmp_path / "nowhere/dev.tgz").as_uri())
    err = _run_expecting_error(None, tmp_path / "again", capsys)
    assert f"could not download {(tmp_path / 'nowhere/dev.tgz').as_uri()}" in err
    assert not any((tmp_path / "again/orig").glob("dev.tgz*"))
