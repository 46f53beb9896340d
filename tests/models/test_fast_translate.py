"""fairseq-lrn-translate (fairseq_lrn.translate): the same translations as fairseq-generate in
fp32 on trained toy models (lrn, oLRN with input feeding, the authors' conditional decoder,
transformer_lrn), input order under
length sorting, bad input, refused architectures, int8, and the command's summary line."""

import gc
import os
import re
import subprocess
import sys

import pytest
import torch

from fairseq_lrn.errors import CheckpointError
from fairseq_lrn.tools.generate_output import parse_generate_output
from fairseq_lrn.translate import Translator
from fairseq_lrn.translate.cli import main
from fairseq_lrn.translate.translator import make_batches
from tests.cli_utils import REPO, USER_DIR, run_cli, train_args
from tests.models.test_cli_end_to_end import reversed_fraction

SUMMARY = re.compile(r"^fairseq-lrn-translate: (\d+) sentences, (\d+) tokens in \d+\.\d\d s "
                     r"\(\d+\.\d sentences/s\)$")


@pytest.fixture(scope="module")
def trained_olrn(trained):
    """A tiny oLRN (output gate) with input feeding and 2-head general attention, trained
    briefly on the reversal task (exactness does not need a good model): (data_bin, checkpoint)."""
    folder, data_bin, _ = trained
    save_dir = os.path.join(folder, "olrn")
    run_cli("train", *train_args(data_bin, save_dir, "--no-epoch-checkpoints", "--disable-validation",
                                 "--lrn-output-gate", "--decoder-input-feeding", "--decoder-attention",
                                 "general", "--decoder-attention-heads", "2", epochs=2))
    return data_bin, os.path.join(save_dir, "checkpoint_last.pt")


@pytest.fixture(scope="module")
def trained_conditional(trained):
    """A tiny lrn with the authors' decoder (conditional, zero initial states, whole-projection
    layer norm, zero's additive attention with 2 heads), trained briefly: (data_bin, checkpoint)."""
    folder, data_bin, _ = trained
    save_dir = os.path.join(folder, "conditional")
    run_cli("train", *train_args(data_bin, save_dir, "--no-epoch-checkpoints", "--disable-validation",
                                 "--decoder-style", "conditional", "--decoder-init-state", "zero",
                                 "--lrn-layer-norm-style", "whole", "--decoder-attention-heads", "2", epochs=2))
    return data_bin, os.path.join(save_dir, "checkpoint_last.pt")


def _edited_checkpoint(checkpoint, path, **model_cfg):
    """A copy of ``checkpoint`` with ``cfg.model`` fields replaced (written as fairseq writes it)."""
    from fairseq import checkpoint_utils
    from omegaconf import OmegaConf

    import fairseq_lrn.models  # noqa: F401  (the safe loader)

    state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)
    cfg = OmegaConf.to_container(state["cfg"])
    model = cfg["model"]
    for key, value in model_cfg.items():
        if isinstance(model, dict):
            model[key] = value
        else:
            setattr(model, key, value)
    checkpoint_utils.torch_persistent_save(dict(state, cfg=cfg), str(path))
    return str(path)


@pytest.fixture(scope="module")
def transformer_lrn_with_positions(trained_transformer_lrn, tmp_path_factory):
    """The trained transformer_lrn with sinusoidal decoder positions switched on (they have no
    weights): exercises the decoder-positions path of the step."""
    data_bin, checkpoint = trained_transformer_lrn
    path = tmp_path_factory.mktemp("tlrn_pos") / "checkpoint_pos.pt"
    return data_bin, _edited_checkpoint(checkpoint, path, decoder_positional_embeddings=True)


def fairseq_generate(data_bin, checkpoint, results, *flags):
    """fairseq-generate on the test split, run in this process (its ``main``, its output file):
    ``(sources, hypotheses)`` in id order."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq_cli import generate

    import fairseq_lrn.models  # noqa: F401  (--user-dir imports nothing when fairseq_lrn is imported already)

    parser = options.get_generation_parser()
    args = options.parse_args_and_arch(parser, [data_bin, "--user-dir", USER_DIR, "--path", checkpoint, "--cpu",
                                                "--gen-subset", "test",
                                                "--results-path", str(results), *flags])
    generate.main(convert_namespace_to_omegaconf(args))
    out = parse_generate_output(open(os.path.join(results, "generate-test.txt"), encoding="utf-8").read())
    return [out[i]["S"] for i in sorted(out)], [out[i]["H"] for i in sorted(out)]


SEARCHES = {  # name: (fairseq-generate flags, Translator.translate keywords)
    "beam5": (["--beam", "5", "--batch-size", "16"], dict(beam=5, batch_size=16)),
    "greedy": (["--beam", "1", "--batch-size", "16"], dict(beam=1, batch_size=7)),
    "lenpen": (["--beam", "5", "--lenpen", "0.3", "--batch-size", "8"], dict(beam=5, lenpen=0.3)),
    "min_max_len": (["--beam", "4", "--min-len", "7", "--max-len-b", "9", "--batch-size", "40"],
                    dict(beam=4, min_len=7, max_len_b=9, batch_size=5)),
    "unkpen_short": (["--beam", "3", "--unkpen", "2", "--max-len-b", "4", "--batch-size", "40"],
                     dict(beam=3, unkpen=2, max_len_b=4, max_tokens=64)),
}
# (family, search, --native): "yes" is the default on this machine (the compiled candidate
# selection); "no" checks PyTorch's selection, the fallback, on the searches with every mask
CASES = [("lrn", name, "yes") for name in SEARCHES] + [("olrn", "beam5", "yes"), ("olrn", "greedy", "yes")] + \
        [("lrn_conditional", name, "yes") for name in ("beam5", "greedy", "min_max_len")] + \
        [("transformer_lrn", name, "yes") for name in ("beam5", "greedy", "lenpen", "min_max_len")] + \
        [("transformer_lrn_positions", "beam5", "yes")] + \
        [("lrn", "unkpen_short", "no"), ("transformer_lrn", "min_max_len", "no")]


@pytest.fixture(scope="module")
def models(request):
    """Model family -> (data_bin, checkpoint), trained on first use."""
    fixtures = {"lrn": lambda: request.getfixturevalue("trained")[1:],
                "olrn": lambda: request.getfixturevalue("trained_olrn"),
                "lrn_conditional": lambda: request.getfixturevalue("trained_conditional"),
                "transformer_lrn": lambda: request.getfixturevalue("trained_transformer_lrn"),
                "transformer_lrn_positions": lambda: request.getfixturevalue("transformer_lrn_with_positions")}
    return lambda family: fixtures[family]()


@pytest.fixture(scope="module")
def translators():
    cache = {}

    def get(data_bin, checkpoint, quantize="none", native="yes"):
        key = (checkpoint, quantize, native)
        if key not in cache:
            cache[key] = Translator.from_checkpoint(checkpoint, data_bin, quantize=quantize, native=native)
        return cache[key]
    return get


@pytest.mark.parametrize("family,search,native", CASES,
                         ids=[f"{f}-{s}" + ("-pytorch-selection" if n == "no" else "") for f, s, n in CASES])
def test_same_translations_as_fairseq_generate(family, search, native, models, translators, tmp_path):
    data_bin, checkpoint = models(family)
    flags, keywords = SEARCHES[search]
    sources, expected = fairseq_generate(data_bin, checkpoint, tmp_path, *flags)
    assert len(sources) == 40
    translator = translators(data_bin, checkpoint, native=native)
    assert translator.native == native
    translations = translator.translate(sources, **keywords)
    assert translations == expected
    if search in ("min_max_len", "unkpen_short"):  # the length limits bind: the test sees them
        lengths = {len(t.split()) for t in translations}
        assert lengths <= set(range(7, 10)) if search == "min_max_len" else max(lengths) <= 4


def test_trained_models_translate(trained, translators):
    """Sanity of the toy: the lrn reverses most test sentences (so the exactness test compares
    real translations, not noise)."""
    _, data_bin, checkpoint = trained
    sources, _ = fairseq_generate(data_bin, checkpoint, os.path.join(trained[0], "gen_sanity"), "--beam", "1")
    translations = translators(data_bin, checkpoint).translate(sources, beam=5)
    assert reversed_fraction(list(zip(sources, translations))) >= 0.8


def test_input_order_is_kept_under_length_sorting(trained, translators):
    folder, data_bin, checkpoint = trained
    translator = translators(data_bin, checkpoint)
    lines = open(os.path.join(folder, "test.src"), encoding="utf-8").read().splitlines()[:12]
    assert len({len(line.split()) for line in lines}) >= 3  # lengths differ: sorting reorders them
    one_by_one = [translator.translate([line], beam=5)[0] for line in lines]
    assert len(set(one_by_one)) == len(lines)  # distinct outputs: a permutation would show
    assert translator.translate(lines, beam=5, batch_size=3) == one_by_one
    assert translator.translate(lines, beam=5, max_tokens=20) == one_by_one
    assert reversed_fraction(list(zip(lines, one_by_one))) >= 0.75


def test_search_scores_one_row_per_sentence_first_and_drops_finished_sentences(trained):
    """The first step scores one row per sentence (its beams are one hypothesis); later steps score
    ``beam`` rows per sentence still searching: a sentence whose maximum length is reached is
    gone from the next step on, while the others go on (with the same translations as alone)."""
    _, data_bin, checkpoint = trained
    translator = Translator.from_checkpoint(checkpoint, data_bin, quantize="none")
    runner, rows = translator.runner, []
    step = runner.step_logits
    runner.step_logits = lambda tokens, *rest: rows.append(tokens.size(0)) or step(tokens, *rest)
    # with max_len_a 1: at most 3, 10 and 9 tokens
    lines = ["w1 w2", "w1 w2 w3 w4 w5 w6 w7 w8 w9", "w9 w8 w7 w6 w5 w4 w3 w2"]
    together = translator.translate(lines, beam=4, batch_size=3, max_len_a=1, max_len_b=0)
    assert rows[:2] == [3, 12] and len(rows) >= 8, rows  # the long sentences go on after step 3
    assert set(rows[4:7]) == {8}, rows  # the short one stopped by step 3: its rows are dropped
    runner.step_logits = step
    alone = [translator.translate([line], beam=4, max_len_a=1, max_len_b=0)[0] for line in lines]
    assert together == alone and min(len(t.split()) for t in together[1:]) > 6


def test_batches_are_sorted_by_length_and_bounded():
    lengths = [3, 9, 1, 7, 7, 2]
    assert make_batches(lengths, batch_size=2, max_tokens=None) == [[1, 3], [4, 0], [5, 2]]
    assert make_batches(lengths, batch_size=None, max_tokens=14) == [[1], [3, 4], [0, 5, 2]]
    assert make_batches(lengths, batch_size=None, max_tokens=5) == [[1], [3], [4], [0], [5, 2]]


def test_int8_runs_and_mostly_agrees_with_fp32(trained, translators):
    """int8 changes the numbers; on the toy task at least 90% of the 40 test translations stay
    identical to fp32 (a bound for this toy, not a BLEU measurement); the PyTorch version of the int8
    product (``--native no``) gives the compiled kernel's translations, and batch 1 gives batch 32's."""
    from fairseq_lrn.translate.int8_linear import Int8Linear

    _, data_bin, checkpoint = trained
    sources, _ = fairseq_generate(data_bin, checkpoint, os.path.join(trained[0], "gen_int8"), "--beam", "1")
    fp32 = translators(data_bin, checkpoint).translate(sources, beam=5)
    int8_translator = translators(data_bin, checkpoint, quantize="int8")
    int8 = int8_translator.translate(sources, beam=5)
    quantized = {name: m for name, m in int8_translator.runner.named_modules() if isinstance(m, Int8Linear)}
    assert "tied_output" in quantized or "model.decoder.output_projection" in quantized
    assert any(name.startswith("model.decoder.blocks") for name in quantized)
    assert all(m.compiled for m in quantized.values())
    agree = sum(a == b for a, b in zip(fp32, int8)) / len(fp32)
    assert agree >= 0.9, agree
    pytorch_int8 = translators(data_bin, checkpoint, quantize="int8", native="no")
    assert not any(m.compiled for m in pytorch_int8.runner.modules() if isinstance(m, Int8Linear))
    assert pytorch_int8.translate(sources, beam=5) == int8
    # each row is quantized on its own: a sentence's translation does not depend on its batch
    assert int8_translator.translate(sources, beam=5, batch_size=1) == int8


def test_default_quantize_is_int8_only_where_its_bleu_was_measured(trained, trained_transformer_lrn):
    """--quantize auto (the default): int8 on the CPU for transformer_lrn and lrn (measured within
    0.3 BLEU of fp32 on real text), fp32 for a runner not measured and on CUDA; bad modes are refused."""
    from fairseq_lrn.translate.int8_linear import Int8Linear

    from fairseq_lrn.translate.quantize import resolve_mode

    def quantized_layers(translator):
        return sum(isinstance(m, Int8Linear) for m in translator.runner.modules())

    tlrn = Translator.from_checkpoint(trained_transformer_lrn[1], trained_transformer_lrn[0])
    assert tlrn.quantize == "int8" and quantized_layers(tlrn) > 0
    lrn = Translator.from_checkpoint(trained[2], trained[1])
    assert lrn.quantize == "int8" and quantized_layers(lrn) > 0
    assert resolve_mode("auto", torch.nn.Linear(2, 2), "cpu") == "none"  # not a measured family
    assert resolve_mode("auto", tlrn.runner, "cuda") == "none"
    assert resolve_mode("none", tlrn.runner, "cpu") == "none"
    with pytest.raises(ValueError, match="--quantize must be one of"):
        resolve_mode("int4", lrn.runner, "cpu")


def test_other_architectures_are_refused(trained, tmp_path):
    folder, data_bin, checkpoint = trained
    foreign = _edited_checkpoint(checkpoint, tmp_path / "lstm.pt", _name="lstm", arch="lstm")
    with pytest.raises(CheckpointError, match="is --arch lstm: translate it with fairseq-generate .*CTranslate2"):
        Translator.from_checkpoint(foreign, data_bin)


def _run_main(argv, capsysbinary):
    """``main(argv)`` in this process: (exit code, stdout lines, stderr text)."""
    code = main(argv)
    out, err = capsysbinary.readouterr()
    return code, out.decode("utf-8").splitlines(), err.decode("utf-8", "replace")


def test_too_long_lines_keep_their_place(trained, tmp_path, capsysbinary, caplog):
    _, data_bin, checkpoint = trained
    path = tmp_path / "input.txt"
    path.write_text("w1 w2\n" + " ".join(["w3"] * 8) + "\nw4 w5\n", encoding="utf-8")
    base = [data_bin, "--path", checkpoint, "--input", str(path), "--max-source-positions", "5"]

    code, out, err = _run_main(base, capsysbinary)
    assert code == 1 and out == []  # refused before anything was written
    assert "input line 2 has 9 tokens (</s> included), more than the model accepts (5" in caplog.text
    assert "refused" in caplog.text

    caplog.clear()
    code, out, err = _run_main(base + ["--skip-invalid-size-inputs-valid-test"], capsysbinary)
    assert code == 0 and len(out) == 3 and out[1] == "" and out[0] == "w2 w1" and out[2] == "w5 w4"
    assert "input line 2 has 9 tokens" in caplog.text and "skipped, no output" in caplog.text
    assert SUMMARY.match(err.splitlines()[-1]).group(1) == "2"

    caplog.clear()
    code, out, err = _run_main(base + ["--truncate-source"], capsysbinary)
    assert code == 0 and len(out) == 3 and out[1].split() == ["w3"] * 4
    assert "translating its first 4 tokens (--truncate-source)" in caplog.text
    # main() froze the loaded objects out of the cycle collector while translating, and let them go
    assert gc.get_freeze_count() == 0


def test_command_translates_stdin_line_by_line(trained):
    """The real command (python -m fairseq_lrn.translate): empty lines and bytes that are not
    UTF-8 keep their place, one output line per input line, the summary line last on stderr."""
    _, data_bin, checkpoint = trained
    lines = [b"w1 w2 w3", b"", b"w4 \xff w5", b"w9 w8 w7 w6 w5 w4", b"   ", b"w0 w6"]
    proc = subprocess.run([sys.executable, "-m", "fairseq_lrn.translate", data_bin, "--path", checkpoint,
                           "--beam", "5", "--threads", "1", "--quantize", "none"],
                          input=b"\n".join(lines) + b"\n", capture_output=True, cwd=REPO, timeout=300,
                          env={**os.environ, "PYTHONPATH": REPO})
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, err[-3000:]
    out = proc.stdout.decode("utf-8").split("\n")
    assert out[-1] == "" and len(out) == len(lines) + 1
    assert out[0] == "w3 w2 w1" and out[3] == "w4 w5 w6 w7 w8 w9" and out[5] == "w6 w0"
    assert "input line 3 is not valid UTF-8: 1 byte(s) b'\\xff' replaced by U+FFFD" in err
    summary = SUMMARY.match(err.rstrip("\n").splitlines()[-1])
    assert summary, err[-500:]
    assert int(summary.group(1)) == len(lines)
    assert int(summary.group(2)) == sum(len(line.split()) + 1 for line in out[:-1])  # with </s>


def test_min_len_above_max_len_is_refused(trained, translators):
    _, data_bin, checkpoint = trained
    with pytest.raises(ValueError, match="--min-len 12 is larger than the maximum output length 10"):
        translators(data_bin, checkpoint).translate(["w1 w2"], min_len=12, max_len_b=10)


def test_threads_sets_torch_threads(trained):
    _, data_bin, checkpoint = trained
    before = torch.get_num_threads()
    try:
        Translator.from_checkpoint(checkpoint, data_bin, threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def torch_threads_restored():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_workers_give_the_same_translations_in_order(trained, translators, torch_threads_restored):
    """--workers 2: batches translated in two forked processes come back in input order, the same
    as in one process; an error raised in a worker reaches the caller with its message."""
    folder, data_bin, checkpoint = trained
    lines = open(os.path.join(folder, "test.src"), encoding="utf-8").read().splitlines()[:30]
    expected = translators(data_bin, checkpoint).translate(lines, beam=5, batch_size=4)
    assert len(set(expected)) >= 25  # distinct outputs: batches put back out of order would show
    translator = Translator.from_checkpoint(checkpoint, data_bin, quantize="none", workers=2)
    assert torch.get_num_threads() == 1  # the parent forks workers: it must not have started threads
    assert translator.translate(lines, beam=5, batch_size=4) == expected
    with pytest.raises(ValueError, match="--min-len 12 is larger than the maximum output length 10"):
        translator.translate(["w1 w2", "w3 w4"], min_len=12, max_len_b=10, batch_size=1)


def test_a_worker_that_dies_is_an_error_naming_its_batch(trained, torch_threads_restored):
    from fairseq_lrn.translate.workers import WorkerDied

    _, data_bin, checkpoint = trained
    translator = Translator.from_checkpoint(checkpoint, data_bin, quantize="none", workers=2, step="eager")

    def dies(sources, options):
        os._exit(3)  # as a worker killed by the kernel: no exception, no result

    translator._translate_batch = dies
    with pytest.raises(WorkerDied, match=r"died while translating the batch of input line \d"):
        translator.translate(["w1 w2", "w3 w4 w5"], batch_size=1)


@pytest.mark.parametrize("settings,message", [
    (dict(workers=0), "--workers must be >= 1, got 0"),
    (dict(workers=2, threads=2), "--workers 2 runs 2 one-thread workers; --threads 2 is for --workers 1"),
    (dict(workers=2, device="cuda"), "--workers runs CPU worker processes"),
])
def test_bad_worker_settings_are_refused_before_loading(settings, message, tmp_path):
    # the checkpoint does not exist: the settings are checked first
    with pytest.raises(ValueError, match=re.escape(message)):
        Translator.from_checkpoint(str(tmp_path / "missing.pt"), str(tmp_path), **settings)


def test_command_with_workers_writes_the_same_lines(trained, tmp_path, capsysbinary, torch_threads_restored):
    folder, data_bin, checkpoint = trained
    path = tmp_path / "input.txt"
    lines = open(os.path.join(folder, "test.src"), encoding="utf-8").read().splitlines()[:20]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    base = [data_bin, "--path", checkpoint, "--input", str(path), "--batch-size", "3", "--quantize", "none"]
    code, one, _ = _run_main(base, capsysbinary)
    code2, two, err = _run_main(base + ["--workers", "2"], capsysbinary)
    assert code == code2 == 0 and len(one) == 20 and two == one
    assert SUMMARY.match(err.splitlines()[-1]).group(1) == "20"


def test_traced_step_is_the_default_and_gives_the_eager_numbers(models, translators):
    """--step auto traces the decoder step on the CPU (lrn, oLRN with input feeding, the authors'
    decoder, transformer_lrn): the same log-probabilities as the eager step, at three beam sizes and
    batch shapes, from one trace recorded while loading (the exactness against fairseq-generate
    above runs through the traced step); a decoder with positional embeddings stays eager, and
    --step traced is refused for it."""
    from fairseq_lrn.translate.traced_step import TracedSteps

    for family in ("lrn", "olrn", "lrn_conditional", "transformer_lrn"):
        data_bin, checkpoint = models(family)
        traced = translators(data_bin, checkpoint)
        assert traced.step == "traced" and isinstance(traced.runner._traced, TracedSteps), family
        assert Translator.from_checkpoint(checkpoint, data_bin, quantize="none").runner.trace_recorded
        eager = Translator.from_checkpoint(checkpoint, data_bin, quantize="none", step="eager")
        assert eager.step == "eager" and eager.runner._traced is None
        lines = ["w1 w2 w3", "w4 w5", "w9 w8 w7 w6 w5 w4", "w0"]
        for beam in (5, 1):
            assert traced.translate(lines, beam=beam, batch_size=3) == eager.translate(lines, beam=beam, batch_size=3)
        scores = []
        for translator in (traced, eager):
            src = translator.encode(lines)
            from fairseq.data import data_utils

            tokens = data_utils.collate_tokens(src, 1, 2, left_pad=translator.left_pad_source)
            runner = translator.runner
            with torch.inference_mode():
                memory = runner.encode(tokens, torch.tensor([t.numel() for t in src]))
                state = runner.start(memory, 2)
                hyps = torch.full((8, 1), runner.eos)
                lprobs, state = runner.step(hyps, state, memory)
                lprobs2, _ = runner.step(torch.cat([hyps, lprobs.argmax(1, keepdim=True)], 1), state, memory)
            scores.append((lprobs, lprobs2))
        for a, b in zip(*scores):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        # one trace for every beam size (5, 1, 2 above), the first step's one row per sentence and
        # batches without padding too (this one)
        assert traced.translate(["w1 w2", "w3 w4"], batch_size=2) == eager.translate(["w1 w2", "w3 w4"], batch_size=2)
        assert len(traced.runner._traced.traces) == 1

    data_bin, checkpoint = models("transformer_lrn_positions")
    assert translators(data_bin, checkpoint).step == "eager"
    with pytest.raises(ValueError, match="--step traced: this decoder reads the step number"):
        Translator.from_checkpoint(checkpoint, data_bin, quantize="none", step="traced")
    with pytest.raises(ValueError, match="--step must be one of"):
        Translator.from_checkpoint(checkpoint, data_bin, step="compiled")
