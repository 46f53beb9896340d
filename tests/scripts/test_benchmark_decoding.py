"""scripts/benchmark_decoding.py on tiny trained toy models: CTranslate2 (a fairseq transformer
converted once, run in int8 and float32), fairseq-generate and (once it exists)
fairseq-lrn-translate decode the same test set; the report's structure, the forced lengths each
runtime honours, and CTranslate2 float32 agreeing with fairseq-generate on the same checkpoint."""

import importlib.util
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fairseq_lrn.bench import decoding_speed, targets
from fairseq.data import Dictionary

from fairseq_lrn.bench.decoding_runtimes import (Cell, TestSet as DecodingTestSet, ct2_vocabulary_map, fast_command_missing,
                                                 vocabulary_map_text)
from fairseq_lrn.bench.shapes import transformer_flags
from fairseq_lrn.translate.shortlist import MAGIC, build_shortlist, load_shortlist
from tests.cli_utils import USER_DIR, preprocess, run_cli, write_reversal_corpus

pytest.importorskip("ctranslate2")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark_decoding.py"
TINY = [*transformer_flags(32, 64, 2, 1, 1), "--dropout", "0"]


def train(data_bin, save_dir, arch):
    run_cli("train", data_bin, "--user-dir", USER_DIR, "--arch", arch, *TINY, "--optimizer", "adam",
            "--lr", "0.005", "--max-tokens", "400", "--max-update", "100", "--save-dir", save_dir, "--cpu",
            "--no-progress-bar", "--seed", "1", "--no-epoch-checkpoints", "--disable-validation",
            env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    return os.path.join(save_dir, "checkpoint_last.pt")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The reversal task, a tiny fairseq transformer and a tiny transformer_lrn trained on it (the
    two fairseq-train processes at once, one thread each)."""
    folder = tmp_path_factory.mktemp("decoding")
    write_reversal_corpus(str(folder), n_train=800)
    data_bin = preprocess(str(folder))
    archs = {"transformer": "transformer", "transformer-lrn": "transformer_lrn"}
    with ThreadPoolExecutor(len(archs)) as pool:
        checkpoints = dict(zip(archs, pool.map(lambda arch: train(data_bin, str(folder / arch), arch), archs.values())))
    return {"folder": folder, "data_bin": data_bin, **checkpoints}


@pytest.fixture(scope="module")
def run(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("decoding-run")
    spec = importlib.util.spec_from_file_location("benchmark_decoding", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = toy["folder"]
    shortlist, src_dict, tgt_dict = build_shortlist(toy["data_bin"], "src", "tgt", per_source=4, frequent=2)
    shortlist.save(str(out / "shortlist.txt"), src_dict, tgt_dict)
    argv = ["--data", toy["data_bin"], "--shortlist", str(out / "shortlist.txt"), "--test-source", str(folder / "test.src"),
            "--test-reference", str(folder / "test.tgt"), "--system", f"transformer={toy['transformer']}",
            "--system", f"transformer-lrn={toy['transformer-lrn']}", "--beams", "1", "--batch-sizes", "8",
            "--threads", "1", "--workers", "2", "--forced-lengths", "6", "--repeats", "1", "--work-dir", str(out / "work"),
            "--hypotheses-dir", str(out / "hyps"), "--json", str(out / "d.json")]
    report = module.main(argv)
    assert json.loads((out / "d.json").read_text())["config"]["cells"] == report["config"]["cells"]
    return report, out / "hyps"


def hypotheses(hyps_dir, system, cell):
    return (hyps_dir / f"{system.replace('/', '.')}.{cell}.txt").read_text(encoding="utf-8").splitlines()


def test_every_system_runs_every_cell(run):
    report, _ = run
    cells = report["config"]["cells"]
    assert cells == ["greedy_b8_t1_test", "greedy_b8_t1_w2_test", "greedy_b8_t1_L6", "greedy_b8_t1_w2_L6"] == [
        c.key for c in (Cell(1, 8, 1), Cell(1, 8, 1, workers=2), Cell(1, 8, 1, 6), Cell(1, 8, 1, 6, 2))]
    expected = {"transformer/ct2-int8", "transformer/ct2-float32", "transformer/ct2-int8-vmap",
                "transformer/fairseq-generate", "transformer-lrn/fairseq-generate"}
    if fast_command_missing() is None:
        expected |= {"transformer-lrn/fast-fp32", "transformer-lrn/fast-int8", "transformer-lrn/fast-best",
                     "transformer-lrn/fast-int8-shortlist", "transformer-lrn/fast-int8-eager",
                     "transformer-lrn/fast-int8-torch-select"}
    else:  # skipped with the reason, the other systems still run
        for name in ("transformer-lrn/fast-fp32", "transformer-lrn/fast-int8", "transformer-lrn/fast-int8-shortlist",
                     "transformer-lrn/fast-int8-eager", "transformer-lrn/fast-int8-torch-select"):
            assert "fairseq_lrn.translate" in report["skipped"][name]
    assert set(report["systems"]) == expected | {"transformer/ct2-best"}
    for name, s in report["systems"].items():
        assert all(s[c]["median"] > 0 for c in cells), name
    # the derived best of CTranslate2's two modes is the faster one of the repeat
    ct2 = report["systems"]
    assert ct2["transformer/ct2-best"][cells[0]]["median"] == max(
        ct2[f"transformer/ct2-{q}"][cells[0]]["median"] for q in ("int8", "float32"))
    assert set(report["bleu"]) == set(expected) - {"transformer-lrn/fast-best"}
    assert "transformer/ct2-float32/transformer/fairseq-generate" in report["ratios"]
    assert "transformer/ct2-int8-vmap/transformer/ct2-int8" in report["ratios"]
    if fast_command_missing() is None:
        assert "transformer-lrn/fast-int8-shortlist/transformer-lrn/fast-int8" in report["ratios"]
        assert "transformer-lrn/fast-int8-shortlist/transformer/ct2-int8-vmap" in report["ratios"]
        assert report["config"]["shortlist"].endswith("shortlist.txt")
    assert report["targets_table"] == [t.as_table_row() for t in targets.family_targets(targets.DECODING_FAMILY)]


def test_trained_models_translate_and_ct2_float32_agrees_with_fairseq_generate(run):
    report, hyps_dir = run
    bleu = report["bleu"]
    # 100 updates on the reversal task: the models translate (a random model scores ~0)
    assert bleu["transformer/fairseq-generate"]["greedy_b8_t1_test"] > 20
    assert bleu["transformer-lrn/fairseq-generate"]["greedy_b8_t1_test"] > 20
    # the same checkpoint, greedy, fp32: CTranslate2's conversion decodes as fairseq does
    generate = hypotheses(hyps_dir, "transformer/fairseq-generate", "greedy_b8_t1_test")
    ct2 = hypotheses(hyps_dir, "transformer/ct2-float32", "greedy_b8_t1_test")
    assert len(ct2) == len(generate) == 40
    assert sum(a == b for a, b in zip(ct2, generate)) >= 38, list(zip(ct2, generate))
    assert abs(bleu["transformer/ct2-float32"]["greedy_b8_t1_test"]
               - bleu["transformer/fairseq-generate"]["greedy_b8_t1_test"]) < 2


def test_two_batches_at_once_give_the_same_hypotheses(run):
    """The w2 cells (CTranslate2 inter_threads=2, fairseq-lrn-translate --workers 2, fairseq-generate
    on 2 threads) translate the same lines into the same hypotheses, in order, as one batch at a time."""
    report, hyps_dir = run
    for name in report["bleu"]:
        for length in ("test", "L6"):
            one = hypotheses(hyps_dir, name, f"greedy_b8_t1_{length}")
            assert len(one) == 40 and hypotheses(hyps_dir, name, f"greedy_b8_t1_w2_{length}") == one, name
    # the traced step (the default) = the eager one; the compiled selection (the default) = PyTorch's
    for other in ("transformer-lrn/fast-int8-eager", "transformer-lrn/fast-int8-torch-select"):
        if other in report["bleu"]:
            for cell in ("greedy_b8_t1_test", "greedy_b8_t1_w2_L6"):
                assert hypotheses(hyps_dir, "transformer-lrn/fast-int8", cell) == hypotheses(hyps_dir, other, cell)


def test_ct2_with_the_vocabulary_map_writes_only_shortlisted_words(run, toy, tmp_path):
    """ct2-int8-vmap: CTranslate2 given the shortlist as its vocabulary map (use_vmap) writes only
    words of each line's lists (its source words' and the frequent ones), as the fast command
    with --shortlist does; the map holds the shortlist's lists in CTranslate2's format; a map
    of one word makes CTranslate2 write only that word (and its own specials)."""
    import ctranslate2

    report, hyps_dir = run
    src_dict, tgt_dict = (Dictionary.load(os.path.join(toy["data_bin"], f"dict.{lang}.txt")) for lang in ("src", "tgt"))
    shortlist_file = Path(report["config"]["shortlist"])
    text = vocabulary_map_text(load_shortlist(str(shortlist_file), src_dict, tgt_dict), src_dict, tgt_dict)
    (vmap,) = (shortlist_file.parent / "work").glob("ct2-float32-*-vmap-*/vmap.txt")
    assert vmap.read_text(encoding="utf-8") == text
    lines = text.splitlines()
    always = set(lines[0].split("\t")[1].split()) | {"</s>", "<unk>"}
    lists = dict(line.split("\t") for line in lines[1:])
    assert lines[0].startswith("\t") and len(always) >= 2 and lists
    sources = (toy["folder"] / "test.src").read_text(encoding="utf-8").splitlines()
    hyps = hypotheses(hyps_dir, "transformer/ct2-int8-vmap", "greedy_b8_t1_test")
    assert len(hyps) == len(sources) == 40
    for source, hyp in zip(sources, hyps):
        allowed = always | {w for word in source.split() for w in lists.get(word, "").split()}
        assert set(hyp.split()) <= allowed, (source, hyp)

    # one word for every batch, no source lists: that word is all CTranslate2 may write
    word = tgt_dict[tgt_dict.nspecial]
    (tmp_path / "one.txt").write_text(f"{MAGIC}\nfrequent\t{word}\n", encoding="utf-8")
    test = DecodingTestSet(toy["data_bin"], "src", "tgt", str(toy["folder"] / "test.src"), sources)
    one_word = ct2_vocabulary_map(str(vmap.parent).split("-vmap-")[0], str(tmp_path / "one.txt"), test)
    translator = ctranslate2.Translator(one_word, device="cpu", compute_type="int8")
    results = translator.translate_batch([line.split() for line in sources[:8]], beam_size=1,
                                         max_decoding_length=5, use_vmap=True)
    written = {token for r in results for token in r.hypotheses[0]}
    specials = {"<unk>", "<s>"}  # CTranslate2 always allows its unk, bos and eos
    assert word in written and written <= {word} | specials, written
    free = translator.translate_batch([line.split() for line in sources[:8]], beam_size=1, max_decoding_length=5)
    assert {token for r in free for token in r.hypotheses[0]} - {word} - specials


def test_forced_length_gives_every_hypothesis_that_many_tokens(run):
    report, hyps_dir = run
    for name in report["bleu"]:
        for cell in ("greedy_b8_t1_L6", "greedy_b8_t1_w2_L6"):
            lengths = {len(h.split()) for h in hypotheses(hyps_dir, name, cell)}
            assert lengths == {6}, (name, cell, lengths)


def test_targets_compare_the_fast_command_with_ct2_and_generate():
    cells = [c.key for c in decoding_speed.make_cells([5], [1, 32], [2], [30], workers=[2])]
    assert cells[:4] == ["beam5_b1_t2_test", "beam5_b32_t2_test", "beam5_b1_t1_w2_test", "beam5_b32_t1_w2_test"]
    cells = [c for c in cells if "_w2_" not in c or c == "beam5_b32_t1_w2_test"]
    ratio = {k: 1.4 for k in cells}
    report = {"config": {"gen_configs": cells},
              "ratios": {"transformer-lrn/fast-best/transformer/ct2-best": ratio,
                         "lrn/fast-best/lrn/fairseq-generate": {**ratio, "beam5_b1_t2_test": 1.2}},
              "bleu": {"lrn/fast-int8": {"beam5_b32_t2_test": 30.0}, "lrn/fast-fp32": {"beam5_b32_t2_test": 30.5}}}
    rows = {r["what"]: r["met"] for r in targets.evaluate(report, targets.DECODING_FAMILY, "cpu")}
    assert rows == {
        "sent/s beam5_b32_t2_test: transformer-lrn/fast-best / transformer/ct2-best": True,   # >= 1.3
        "sent/s beam5_b32_t2_L30: transformer-lrn/fast-best / transformer/ct2-best": True,
        "sent/s beam5_b1_t2_test: transformer-lrn/fast-best / transformer/ct2-best": True,    # >= 1.0
        "sent/s beam5_b1_t2_L30: transformer-lrn/fast-best / transformer/ct2-best": True,
        "sent/s beam5_b32_t1_w2_test: transformer-lrn/fast-best / transformer/ct2-best": True,  # 2 workers
        "sent/s beam5_b32_t1_w2_test: lrn/fast-best / lrn/fairseq-generate": False,
        "sent/s beam5_b32_t2_test: lrn/fast-best / lrn/fairseq-generate": False,              # < 1.8
        "sent/s beam5_b32_t2_L30: lrn/fast-best / lrn/fairseq-generate": False,
        "sent/s beam5_b1_t2_test: lrn/fast-best / lrn/fairseq-generate": False,               # < 1.5
        "sent/s beam5_b1_t2_L30: lrn/fast-best / lrn/fairseq-generate": False,
        "BLEU of the output beam5_b32_t2_test: lrn/fast-int8 - lrn/fast-fp32": False,         # 0.5 lost
    }
