"""scripts/distill.py (fairseq_lrn.tools.distill) on the toy reversal task, with the session's
tiny trained teacher (tests/models/conftest.py): order, resume, fallback, dictionaries."""

import filecmp
import json
import os
import shutil

import pytest

from fairseq_lrn.tools.data_bin import build_data_bin
from fairseq_lrn.tools.distill import (DistillError, SettingsChanged, choose_backend, decoding_args, distill,
                                       generate_translator, main, read_train_split)
from tests.cli_utils import USER_DIR
from tests.models.test_cli_end_to_end import reversed_fraction

N_TRAIN = 50


def quiet(message):
    pass


@pytest.fixture(scope="module")
def small_bin(trained, tmp_path_factory):
    """The teacher's dictionaries, a 50-sentence train split and the valid split: (data-bin, teacher)."""
    folder, data_bin, checkpoint = trained
    dest = tmp_path_factory.mktemp("small")
    for lang in ("src", "tgt"):
        with open(os.path.join(folder, f"train.{lang}")) as f:
            lines = f.readlines()[:N_TRAIN]
        (dest / f"train.{lang}").write_text("".join(lines))
    bin_path = build_data_bin(str(dest / "bin"), train=str(dest / "train"), valid=os.path.join(folder, "valid"),
                              in_process=True, extra_args=["--srcdict", os.path.join(data_bin, "dict.src.txt"),
                                                           "--tgtdict", os.path.join(data_bin, "dict.tgt.txt")])
    return bin_path, checkpoint


def run(small_bin, out, **kwargs):
    data_bin, teacher = small_bin
    options = dict(teacher=teacher, data_bin=data_bin, out=str(out), source_lang="src", target_lang="tgt",
                   backend="generate", shard_size=20, cpu=True, log=quiet)
    return distill(**{**options, **kwargs})


def test_distilled_data_bin_keeps_order_and_the_teachers_dictionaries(small_bin, tmp_path):
    data_bin, _ = small_bin
    result = run(small_bin, tmp_path / "d")  # 3 shards: 20 + 20 + 10
    sources, targets = read_train_split(data_bin, "src", "tgt")
    new_sources, new_targets = read_train_split(result.data_bin, "src", "tgt")
    assert new_sources == sources and len(new_targets) == N_TRAIN
    # the teacher reverses: each distilled target is the reversal of ITS source (order kept)
    assert reversed_fraction(list(zip(sources, new_targets))) >= 0.8
    for lang in ("src", "tgt"):
        assert filecmp.cmp(os.path.join(data_bin, f"dict.{lang}.txt"),
                           os.path.join(result.data_bin, f"dict.{lang}.txt"), shallow=False)
        assert filecmp.cmp(os.path.join(data_bin, f"valid.src-tgt.{lang}.bin"),
                           os.path.join(result.data_bin, f"valid.src-tgt.{lang}.bin"), shallow=False)
    report = json.load(open(result.report))
    assert report["sentences"] == N_TRAIN and report["fallback_count"] == len(report["fallback_ids"])
    assert sorted(os.listdir(tmp_path / "d" / "work")) == [
        "distilled.src", "distilled.tgt", "manifest.json", "shard-00000.tsv", "shard-00001.tsv",
        "shard-00002.tsv"]


def test_resume_after_an_interrupted_shard(small_bin, tmp_path):
    data_bin, teacher = small_bin
    teacher_translate = generate_translator(data_bin, teacher, "src", "tgt", decoding_args(5, 64, 1.2, 10, 1.0, True))
    calls = []

    def interrupted(lines, scratch):
        calls.append(len(lines))
        if len(calls) == 2:
            teacher_translate(lines, scratch)  # the shard's work is done, but not committed...
            raise KeyboardInterrupt  # ... when the run is killed
        return teacher_translate(lines, scratch)

    with pytest.raises(KeyboardInterrupt):
        run(small_bin, tmp_path / "d", shard_size=30, translator=interrupted)
    work = tmp_path / "d" / "work"
    assert sorted(os.listdir(work)) == ["manifest.json", "shard-00000.tsv"]  # no half-written shard
    assert not (tmp_path / "d" / "data-bin").exists()

    def counted(lines, scratch):
        calls.append(len(lines))
        return teacher_translate(lines, scratch)

    calls.clear()
    result = run(small_bin, tmp_path / "d", shard_size=30, translator=counted)
    assert calls == [N_TRAIN - 30]  # only the shard that was not committed
    sources, _ = read_train_split(data_bin, "src", "tgt")
    _, targets = read_train_split(result.data_bin, "src", "tgt")
    assert reversed_fraction(list(zip(sources, targets))) >= 0.8

    with pytest.raises(DistillError, match="other settings \\(shard_size\\)"):
        run(small_bin, tmp_path / "d", shard_size=20, translator=counted)


def test_a_teacher_trained_again_is_translated_again_not_resumed(small_bin, tmp_path):
    data_bin, teacher = small_bin
    copy = tmp_path / "teacher.pt"
    shutil.copyfile(teacher, copy)
    def same(lines, scratch):
        return list(lines)
    run((data_bin, str(copy)), tmp_path / "d", translator=same)
    os.utime(copy, ns=(0, copy.stat().st_mtime_ns + 10**9))  # the same path, a newer file
    with pytest.raises(SettingsChanged, match="other settings \\(teacher_mtime_ns\\)"):
        run((data_bin, str(copy)), tmp_path / "d", translator=same)


def test_empty_translations_keep_the_original_target_and_are_reported(small_bin, tmp_path):
    data_bin, _ = small_bin
    missing = {3: "", 7: "   ", 31: None}

    def teacher(lines, scratch):  # translates everything to "w1 w2", except the missing ids
        start = 20 * int(os.path.basename(scratch)[6:11])
        return [missing.get(start + k, "w1 w2") for k in range(len(lines))]

    result = run(small_bin, tmp_path / "d", translator=teacher)
    assert result.fallback_ids == [3, 7, 31] and result.sentences == N_TRAIN
    report = json.load(open(result.report))
    assert report["fallback_count"] == 3 and report["fallback_ids"] == [3, 7, 31]
    _, original = read_train_split(data_bin, "src", "tgt")
    _, distilled = read_train_split(result.data_bin, "src", "tgt")
    for i in range(N_TRAIN):
        assert distilled[i] == (original[i] if i in missing else "w1 w2"), i


def test_student_trains_on_the_distilled_data(small_bin, tmp_path):
    save_dir = tmp_path / "student"
    run(small_bin, tmp_path / "d", translator=lambda lines, scratch: [" ".join(l.split()[::-1]) for l in lines],
        train_args=["--user-dir", USER_DIR, "--arch", "lrn_iwslt_de_en", "--encoder-embed-dim", "16",
                    "--decoder-embed-dim", "16", "--decoder-out-embed-dim", "16", "--encoder-hidden-size",
                    "16", "--decoder-hidden-size", "16", "--optimizer", "adam", "--lr", "0.005",
                    "--max-tokens", "300", "--max-epoch", "1", "--save-dir", str(save_dir), "--cpu",
                    "--no-progress-bar", "--no-epoch-checkpoints"])
    assert (save_dir / "checkpoint_last.pt").is_file()


def test_backend_choice(small_bin, tmp_path):
    """auto: the fast command for an lrn teacher, its conditional (authors') decoder included, and
    fairseq-generate for one it does not run (the same checkpoint relabelled as fairseq's lstm)."""
    import torch

    from fairseq_lrn.translate.loading import refusal

    _, teacher = small_bin
    assert choose_backend("auto", teacher) == "fast"
    assert choose_backend("generate", teacher) == "generate"
    state = torch.load(teacher, weights_only=False)  # the test's own file

    def relabelled(name, **fields):
        model_cfg = state["cfg"]["model"]
        for key, value in fields.items():
            if isinstance(model_cfg, dict):
                model_cfg[key] = value
            else:
                setattr(model_cfg, key, value)
        path = str(tmp_path / name)
        torch.save(state, path)
        return path

    assert choose_backend("auto", relabelled("conditional.pt", decoder_style="conditional")) == "fast"
    foreign = relabelled("lstm.pt", arch="lstm", _name="lstm")
    assert choose_backend("auto", foreign) == "generate"
    assert "is --arch lstm" in refusal(state, foreign)
    with pytest.raises(DistillError, match="backend must be one of"):
        choose_backend("fastest", teacher)


def test_command_line_errors_name_the_problem(small_bin, tmp_path, capsys):
    data_bin, teacher = small_bin
    assert main([data_bin, "--teacher", str(tmp_path / "none.pt"), "--out", str(tmp_path / "d"),
                 "-s", "src", "-t", "tgt"]) == 1
    assert "teacher checkpoint" in capsys.readouterr().err
    assert main([data_bin, "--teacher", teacher, "--out", str(tmp_path / "d"), "-s", "src", "-t", "de"]) == 1
    assert "no dictionary dict.de.txt" in capsys.readouterr().err


def test_fast_command_backend(small_bin, tmp_path):
    data_bin, _ = small_bin
    result = run(small_bin, tmp_path / "d", backend="fast")
    assert result.backend == "fast"
    sources, _ = read_train_split(data_bin, "src", "tgt")
    _, targets = read_train_split(result.data_bin, "src", "tgt")
    assert reversed_fraction(list(zip(sources, targets))) >= 0.8
