"""Bad input, defined behaviour: fairseq-interactive and the hub with empty, whitespace-only,
unknown-word, non-UTF-8 and too-long lines; fairseq-train with a checkpoint of another dictionary,
of another architecture, or weights that make the loss NaN."""

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from fairseq_lrn.errors import CheckpointError
from fairseq_lrn.tools.generate_output import parse_generate_output
from fairseq_lrn.tools.run import fairseq_command
from tests.cli_utils import USER_DIR
from tests.reliability.helpers import load, train_args

LINES = [b"w1 w2 w3", b"", b"   ", b"w1 zzz w2", b"w3 \xff\xfe w4", b" ".join([b"w1"] * 30), b"w4 w5"]
LONG = 6  # input line number (1-based) of the 30-word line: 31 tokens with </s>, over the limit of 20


def run_all(jobs):
    """Run several (argv, stdin bytes, extra env) at once; CompletedProcess each (text decoded)."""
    def one(job):
        argv, stdin, extra_env = job
        proc = subprocess.run(argv, input=stdin, capture_output=True, env={**os.environ, **extra_env},
                              timeout=300)
        return subprocess.CompletedProcess(argv, proc.returncode, proc.stdout.decode("utf-8", "replace"),
                                           proc.stderr.decode("utf-8", "replace"))
    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(one, jobs))


@pytest.fixture(scope="module")
def interactive_runs(corpus, reference, tmp_path_factory):
    """fairseq-interactive on LINES three ways: stdin with strict UTF-8 decoding (as under an
    en_US.UTF-8 locale) and --truncate-source; --input FILE with --skip-invalid-size-inputs-valid-test;
    stdin with no length option (the default: refuse)."""
    _, data_bin = corpus
    ref_dir, _ = reference
    text = b"\n".join(LINES) + b"\n"
    path = tmp_path_factory.mktemp("interactive") / "input.txt"
    path.write_bytes(text)
    base = fairseq_command("interactive", data_bin, "--user-dir", USER_DIR, "--path",
                           os.path.join(ref_dir, "checkpoint_last.pt"), "--cpu", "--source-lang", "src",
                           "--target-lang", "tgt", "--beam", "2", "--max-len-b", "20",
                           "--max-source-positions", "20")
    strict = {"PYTHONIOENCODING": "utf-8:strict"}
    truncate, skip, refuse = run_all([
        (base + ["--truncate-source"], text, strict),
        (base + ["--skip-invalid-size-inputs-valid-test", "--input", str(path)], b"", {}),
        (base, text, strict)])
    return {"truncate": truncate, "skip": skip, "refuse": refuse}


def check_common_lines(out, err):
    assert out[1]["S"] == "" and out[2]["S"] == "" and "H" in out[1] and "H" in out[2]  # empty / blank
    assert out[3]["S"] == "w1 <unk> w2" and "H" in out[3]  # unknown word
    assert out[4]["S"] == "w3 <unk> w4" and "H" in out[4]  # bytes that are not UTF-8
    assert "input line 5 is not valid UTF-8: 2 byte(s) b'\\xff\\xfe' replaced by U+FFFD" in err
    assert "Traceback" not in err


def test_interactive_truncates_when_asked(interactive_runs):
    proc = interactive_runs["truncate"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = parse_generate_output(proc.stdout)
    assert sorted(out) == list(range(len(LINES)))
    check_common_lines(out, proc.stderr)
    assert out[LONG - 1]["S"].split() == ["w1"] * 19 and "H" in out[LONG - 1]
    assert f"input line {LONG} has 31 tokens" in proc.stderr and "translating its first 19 tokens" in proc.stderr


def test_interactive_skips_when_asked(interactive_runs):
    proc = interactive_runs["skip"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = parse_generate_output(proc.stdout)
    assert sorted(out) == [i for i in range(len(LINES)) if i != LONG - 1]  # ids keep the line numbers
    check_common_lines(out, proc.stderr)
    assert f"input line {LONG} has 31 tokens" in proc.stderr and "skipped, no output" in proc.stderr


def test_interactive_refuses_too_long_lines_by_default(interactive_runs):
    proc = interactive_runs["refuse"]
    assert proc.returncode == 1
    out = parse_generate_output(proc.stdout)
    assert sorted(out) == list(range(LONG - 1))  # the lines before it were translated
    check_common_lines(out, proc.stderr)
    assert f"input line {LONG} has 31 tokens (</s> included), more than the model accepts (20" in proc.stderr
    assert "refused" in proc.stderr and "--skip-invalid-size-inputs-valid-test" in proc.stderr \
        and "--truncate-source" in proc.stderr


@pytest.fixture(scope="module")
def hub(corpus, reference):
    from fairseq_lrn.models import LRNModel

    _, data_bin = corpus
    ref_dir, _ = reference
    model = LRNModel.from_pretrained(ref_dir, checkpoint_file="checkpoint_last.pt", data_name_or_path=data_bin,
                                     source_lang="src", target_lang="tgt", max_source_positions=20)
    return model.eval()


def test_hub_translates_empty_blank_and_unknown_input(hub):
    outputs = hub.translate(["", "   ", "w1 zzz w2", "w3 \ufffd w4"], beam=2, max_len_b=20)
    d = hub.src_dict
    assert hub.encode("   ").tolist() == hub.encode("").tolist() == [d.eos()]  # blank: an empty source
    assert hub.encode("w1 zzz w2").tolist() == [d.index("w1"), d.unk(), d.index("w2"), d.eos()]
    alone = [hub.translate(s, beam=2, max_len_b=20) for s in ("", "w1 <unk> w2", "w3 <unk> w4")]
    assert outputs == [alone[0], alone[0], alone[1], alone[2]]  # each in its place, unknown words as <unk>
    assert all(isinstance(o, str) and "zzz" not in o and "\ufffd" not in o for o in outputs)


def test_hub_refuses_too_long_input_or_skips_it_in_place(hub):
    long = " ".join(["w1"] * 30)
    with pytest.raises(Exception, match="Size of sample #0 is invalid"):  # fairseq's refusal
        hub.translate([long], beam=2)
    outputs = hub.translate(["w1 w2", long, "w3 w4"], beam=2, max_len_b=20, skip_invalid_size_inputs=True)
    assert outputs[1] is None and outputs[0] == hub.translate("w1 w2", beam=2, max_len_b=20) \
        and outputs[2] == hub.translate("w3 w4", beam=2, max_len_b=20)


def _save(state, path):
    from fairseq import checkpoint_utils
    from omegaconf import OmegaConf

    state = dict(state, cfg=OmegaConf.to_container(state["cfg"]))  # as fairseq writes it
    checkpoint_utils.torch_persistent_save(state, str(path))
    return path


@pytest.fixture(scope="module")
def training_runs(corpus, reference, tmp_path_factory):
    """fairseq-train --restore-file with three bad checkpoints, run at the same time."""
    from fairseq import options, tasks

    _, data_bin = corpus
    ref_dir, _ = reference
    folder = tmp_path_factory.mktemp("bad-restore")
    state = load(os.path.join(ref_dir, "checkpoint_1_6.pt"))

    bigger = dict(state, model=dict(state["model"]))  # as if trained with 24-word dictionaries
    for key in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
        bigger["model"][key] = torch.randn(24, state["model"][key].size(1))
    other_dictionary = _save(bigger, folder / "other-dictionary.pt")

    parser = options.get_training_parser()
    lstm_args = options.parse_args_and_arch(parser, [data_bin, "--arch", "lstm", "--encoder-embed-dim", "16",
                                                     "--decoder-embed-dim", "16", "--encoder-hidden-size", "16",
                                                     "--decoder-hidden-size", "16", "--decoder-out-embed-dim", "16"])
    lstm = tasks.setup_task(lstm_args).build_model(lstm_args)
    other_arch = dict(state, model=lstm.state_dict())
    other_arch["cfg"]["model"].arch = other_arch["cfg"]["model"]._name = "lstm"
    other_architecture = _save(other_arch, folder / "lstm.pt")

    poisoned = dict(state, model=dict(state["model"]))
    poisoned["model"]["decoder.out_proj.weight"] = poisoned["model"]["decoder.out_proj.weight"].clone()
    poisoned["model"]["decoder.out_proj.weight"][0, 0] = float("inf")
    nan = _save(poisoned, folder / "poisoned.pt")

    jobs = {name: (fairseq_command("train", *train_args(data_bin, folder / name, "--restore-file", path,
                                                        max_update=8)), b"", {})
            for name, path in [("other-dictionary", other_dictionary), ("other-architecture", other_architecture),
                               ("nan", nan)]}
    return folder, dict(zip(jobs, run_all(list(jobs.values())))), {"other-dictionary": other_dictionary}


def test_checkpoint_with_another_dictionary_is_refused_naming_it(training_runs, corpus):
    folder, runs, paths = training_runs
    proc = runs["other-dictionary"]
    assert proc.returncode != 0
    assert "trained with other dictionaries" in proc.stderr
    assert "source embedding has 24 rows, but the source dictionary" in proc.stderr and "has 16 entries" in proc.stderr
    assert f"Cannot load model parameters from checkpoint {paths['other-dictionary']}" in proc.stderr
    assert not (folder / "other-dictionary" / "checkpoint_last.pt").exists()
    # fairseq-generate / the hub load the same way: the same message, directly
    from fairseq import checkpoint_utils
    with pytest.raises(CheckpointError, match="has 24 rows, but the target dictionary"):
        checkpoint_utils.load_model_ensemble_and_task([str(paths["other-dictionary"])],
                                                      arg_overrides={"data": corpus[1]})


def test_checkpoint_of_another_architecture_is_refused_naming_it(training_runs):
    folder, runs, _ = training_runs
    proc = runs["other-architecture"]
    assert proc.returncode != 0
    assert f"Cannot load model parameters from checkpoint {folder / 'lstm.pt'}; please ensure that the " \
           "architectures match" in proc.stderr
    assert "Missing key(s)" in proc.stderr and "encoder.lstm" in proc.stderr
    assert not (folder / "other-architecture" / "checkpoint_last.pt").exists()


def test_nan_loss_stops_training_before_anything_is_saved(training_runs):
    """fp32 (no loss scaling): a non-finite gradient norm raises FloatingPointError; fairseq saves
    crash.pt, reruns the step under its NanDetector (which names the first module with inf/NaN)
    and exits; no checkpoint_last.pt with NaN weights is written to resume from."""
    folder, runs, _ = training_runs
    proc = runs["nan"]
    assert proc.returncode != 0
    assert "FloatingPointError: gradients are Nan/Inf" in proc.stderr
    assert "Inf detected in output of decoder.out_proj" in proc.stdout  # fairseq-train logs to stdout
    assert sorted(os.listdir(folder / "nan")) == ["crash.pt"]
