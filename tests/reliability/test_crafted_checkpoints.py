"""Crafted checkpoints run no code and open no file when loaded, for fairseq's models and the
plugin's (fairseq_compat's literal_args and training_machine_args).

Each crafted checkpoint is a real one (written by fairseq's Trainer, as fairseq-train writes it)
with one field of its ``cfg`` (or legacy ``args``) changed. It is loaded through the three ways a
user loads a model: fairseq-generate, fairseq-interactive (both in this process, and once each as
a real subprocess) and the hub (``from_pretrained``). A code field is refused with a
CheckpointError naming the field, and its payload (creating a marker file) never runs; a FIFO
embedding path and ``--lrn-impl fused`` load and translate on this CPU.
"""

import argparse
import importlib
import os
import sys
import threading
import time

import pytest
import torch
from fairseq import options, tasks, utils
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.models import ARCH_MODEL_REGISTRY
from fairseq.trainer import Trainer
from fairseq_cli import generate

import fairseq_lrn.models  # noqa: F401  (installs the fixes, as --user-dir does)
from fairseq_lrn.errors import CheckpointError
from fairseq_lrn.fairseq_compat import literal_args, training_machine_args
from fairseq_lrn.literals import NotALiteralError, literal_value
from tests.cli_utils import USER_DIR, run_cli

DIMS = ["--encoder-embed-dim", "8", "--decoder-embed-dim", "8"]
ARCHS = {
    "transformer_lrn": ["--encoder-layers", "1", "--decoder-layers", "1", "--encoder-ffn-embed-dim", "8",
                        "--decoder-ffn-embed-dim", "8", "--encoder-attention-heads", "1",
                        "--decoder-attention-heads", "1"],
    "lrn_iwslt_de_en": ["--decoder-out-embed-dim", "8", "--encoder-hidden-size", "8", "--decoder-hidden-size", "8"],
    "fconv": ["--decoder-out-embed-dim", "8", "--encoder-layers", "[(8, 3)] * 2", "--decoder-layers", "[(8, 3)] * 2"],
}
ROUTES = ("generate", "interactive", "hub")


def write_checkpoint(data_bin, path, arch):
    """Save an untrained model of ``arch`` as fairseq-train saves its checkpoints (the Trainer)."""
    args = options.parse_args_and_arch(options.get_training_parser(), [
        data_bin, "--arch", arch, *DIMS, *ARCHS[arch], "--cpu", "--optimizer", "adam", "--lr", "0.001",
        "--max-tokens", "500", "--dropout", "0"])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    trainer = Trainer(cfg, task, model, task.build_criterion(cfg.criterion))
    trainer.consolidate_optimizer()
    trainer.save_checkpoint(path, {"train_iterator": {"epoch": 1}})


@pytest.fixture(scope="session")
def checkpoints(corpus, tmp_path_factory):
    """arch -> a checkpoint of a tiny untrained model of that arch on the reversal corpus."""
    folder = tmp_path_factory.mktemp("crafted")
    paths = {arch: str(folder / f"{arch}.pt") for arch in ARCHS}
    for arch, path in paths.items():
        write_checkpoint(corpus[1], path, arch)
    return paths


def craft(source, dest, legacy_args=False, **fields):
    """Copy checkpoint ``source`` to ``dest`` with ``fields`` of its model configuration changed
    (in ``cfg["model"]``, or in a legacy ``args`` Namespace made from it with ``legacy_args``)."""
    state = torch.load(source, weights_only=False)  # our own file
    model_cfg = state["cfg"]["model"]
    assert isinstance(model_cfg, argparse.Namespace)  # how the Trainer saves these archs
    for name, value in fields.items():
        setattr(model_cfg, name, value)
    if legacy_args:
        state["args"], state["cfg"] = model_cfg, None
    torch.save(state, dest)
    return str(dest)


def payload(marker) -> str:
    """Python code that creates ``marker`` if anything runs it."""
    return f"__import__('pathlib').Path({str(marker)!r}).touch()"


def load(route, checkpoint, data_bin, tmp_path, capsys):
    """Load ``checkpoint`` and translate with it, in this process: the test set (generate), one
    line (interactive) or one sentence (hub). Returns the hypotheses."""
    common = ["--path", checkpoint, "--cpu", "--beam", "1", "--max-len-a", "0", "--max-len-b", "4"]
    if route == "generate":
        results = tmp_path / "results"
        generate.main(options.parse_args_and_arch(options.get_generation_parser(),
                                                  [data_bin, *common, "--results-path", str(results)]))
        output = (results / "generate-test.txt").read_text()
    elif route == "interactive":
        source = tmp_path / "input.txt"
        source.write_text("w1 w2 w3\n")
        capsys.readouterr()
        imported = "fairseq_cli.interactive" in sys.modules
        try:
            interactive = importlib.import_module("fairseq_cli.interactive")
            interactive.main(options.parse_args_and_arch(options.get_interactive_generation_parser(), [
                data_bin, *common, "--input", str(source), "--source-lang", "src", "--target-lang", "tgt"]))
        finally:
            if not imported:  # a process that imported it counts as fairseq-interactive (interactive_input)
                sys.modules.pop("fairseq_cli.interactive", None)
        output = capsys.readouterr().out
    else:
        hub = ARCH_MODEL_REGISTRY["lrn"].from_pretrained(os.path.dirname(checkpoint),
                                                         checkpoint_file=os.path.basename(checkpoint),
                                                         data_name_or_path=data_bin)
        return [hub.translate("w1 w2 w3", beam=1, max_len_a=0, max_len_b=4)]
    return [line.split("\t")[-1] for line in output.splitlines() if line.startswith("H-")]


CODE_FIELDS = [  # arch, field, value (with {} for the payload): each reaches a different eval
    ("transformer_lrn", "adaptive_softmax_cutoff", "{} and None"),  # utils.eval_str_list (decoder)
    ("transformer_lrn", "encoder_xformers_att_config", "{} or None"),  # utils.eval_str_dict (attention)
    ("fconv", "encoder_layers", "{} or [(8, 3)] * 2"),  # eval(args.encoder_layers) in fconv.py
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("arch, field, value", CODE_FIELDS, ids=[f[1] for f in CODE_FIELDS])
def test_code_in_a_field_is_refused_naming_it_and_never_runs(checkpoints, corpus, tmp_path, capsys,
                                                             route, arch, field, value):
    marker = tmp_path / "PWNED"
    evil = craft(checkpoints[arch], tmp_path / "evil.pt", **{field: value.format(payload(marker))})
    with pytest.raises(CheckpointError, match=f"model configuration field {field} holds .*not a literal"):
        load(route, evil, corpus[1], tmp_path, capsys)
    assert not marker.exists()


def test_code_in_legacy_args_is_refused_too(checkpoints, corpus, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    evil = craft(checkpoints["transformer_lrn"], tmp_path / "evil.pt", legacy_args=True,
                 adaptive_softmax_cutoff=f"{payload(marker)} and None")
    with pytest.raises(CheckpointError, match="field adaptive_softmax_cutoff holds"):
        load("hub", evil, corpus[1], tmp_path, capsys)
    assert not marker.exists()


def test_fairseq_generate_and_interactive_refuse_code_in_a_subprocess(checkpoints, corpus, tmp_path):
    """The attack as reported (fairseq-generate --user-dir fairseq_lrn --path evil.pt), and
    fconv's eval(args.x) under fairseq-interactive: the commands fail naming the field."""
    data_bin = corpus[1]
    marker = tmp_path / "PWNED"
    cutoff = craft(checkpoints["transformer_lrn"], tmp_path / "cutoff.pt",
                   adaptive_softmax_cutoff=f"__import__('os').system('touch {marker}') and None")
    proc = run_cli("generate", data_bin, "--user-dir", USER_DIR, "--path", cutoff, "--cpu", check=False, timeout=300)
    assert proc.returncode != 0 and "CheckpointError" in proc.stderr
    assert "field adaptive_softmax_cutoff holds" in proc.stderr
    layers = craft(checkpoints["fconv"], tmp_path / "layers.pt", encoder_layers=f"{payload(marker)} or []")
    proc = run_cli("interactive", data_bin, "--user-dir", USER_DIR, "--path", layers, "--cpu",
                   "--source-lang", "src", "--target-lang", "tgt", input_text="w1 w2\n", check=False, timeout=300)
    assert proc.returncode != 0 and "field encoder_layers holds" in proc.stderr
    assert not marker.exists()


class FifoWatch:
    """A FIFO, and a thread that notices when anything opens it for reading (then writes a line
    and closes it, so the reader does not hang)."""

    def __init__(self, path):
        self.path, self.opened, self._stop = str(path), False, threading.Event()
        os.mkfifo(self.path)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)  # succeeds only with a reader
            except OSError:
                time.sleep(0.01)
                continue
            self.opened = True
            os.write(fd, b"2 8\n")
            os.close(fd)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.mark.parametrize("route", ROUTES)
def test_an_embedding_path_of_a_checkpoint_is_not_opened(checkpoints, corpus, tmp_path, capsys, route):
    fifo = FifoWatch(tmp_path / "embeddings.fifo")
    try:
        crafted = craft(checkpoints["lrn_iwslt_de_en"], tmp_path / "fifo.pt",
                        encoder_embed_path=fifo.path, decoder_embed_path=fifo.path)
        assert load(route, crafted, corpus[1], tmp_path, capsys)  # translated
    finally:
        fifo.stop()
    assert not fifo.opened


@pytest.mark.parametrize("route", ROUTES)
def test_a_fused_checkpoint_decodes_on_this_cpu(checkpoints, corpus, tmp_path, capsys, route):
    """A checkpoint whose args say --lrn-impl fused (as a GPU-trained one does) decodes here with
    no flag: the implementation is this machine's ('auto')."""
    fused = craft(checkpoints["lrn_iwslt_de_en"], tmp_path / "fused.pt", lrn_impl="fused")
    assert load(route, fused, corpus[1], tmp_path, capsys)


def test_without_the_fix_the_fused_checkpoint_fails_on_a_cpu(checkpoints, corpus, tmp_path, capsys, monkeypatch):
    """The failure the fix removes (so the test above can fail): fused, as stored, on CPU tensors."""
    monkeypatch.setattr(training_machine_args, "MACHINE_VALUES", {})
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    fused = craft(checkpoints["lrn_iwslt_de_en"], tmp_path / "fused.pt", lrn_impl="fused")
    with pytest.raises(RuntimeError, match="--lrn-impl fused runs on CUDA tensors"):
        load("hub", fused, corpus[1], tmp_path, capsys)


def test_a_needed_path_that_is_not_a_regular_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pretrained.fifo")
    cfg = argparse.Namespace(pretrained=True, pretrained_checkpoint=str(tmp_path / "pretrained.fifo"))
    with pytest.raises(CheckpointError, match="field pretrained_checkpoint names .* not a regular file"):
        training_machine_args.for_this_machine(cfg)
    cfg = argparse.Namespace(w2v_path="/dev/zero")
    with pytest.raises(CheckpointError, match="field w2v_path"):
        training_machine_args.for_this_machine(cfg)


def test_the_command_line_keeps_its_lists_and_dicts():
    args = options.parse_args_and_arch(options.get_training_parser(), [
        "data", "--arch", "transformer_lrn", "--lr", "0.1,0.2", "--adaptive-softmax-cutoff", "10000,50000",
        "--encoder-xformers-att-config", '{"name": "scaled_dot_product"}', "--adam-betas", "(0.9, 0.98)",
        "--optimizer", "adam"])
    assert args.lr == [0.1, 0.2]
    assert utils.eval_str_list(args.adaptive_softmax_cutoff, type=int) == [10000, 50000]
    assert utils.eval_str_dict(args.encoder_xformers_att_config) == {"name": "scaled_dot_product"}
    with pytest.raises(NotALiteralError, match="'os.getcwd\\(\\)' is not a Python literal .it contains a call"):
        utils.eval_str_list("os.getcwd()")
    with pytest.raises(NotALiteralError, match="the name 'os'"):
        utils.eval_bool("[os]")


def _fairseq_defaults():
    """(where, field, text) of every string default of fairseq's architectures and model
    dataclasses that Python's eval (without builtins) reads as a value: what the options that
    fairseq evaluates look like."""
    import dataclasses

    from fairseq.models import ARCH_CONFIG_REGISTRY, MODEL_DATACLASS_REGISTRY

    found = []
    for arch, set_defaults in ARCH_CONFIG_REGISTRY.items():
        args = argparse.Namespace()
        try:
            set_defaults(args)
        except Exception:  # noqa: BLE001  (an arch that needs flags set first)
            continue
        found += [(arch, field, value) for field, value in vars(args).items() if isinstance(value, str)]
    for name, config in MODEL_DATACLASS_REGISTRY.items():
        found += [(name, f.name, f.default) for f in dataclasses.fields(config) if isinstance(f.default, str)]
    evaluable = []
    for where, field, text in found:
        try:
            evaluable.append((where, field, text, eval(text, {"__builtins__": {}})))  # fairseq's own defaults
        except Exception:  # noqa: BLE001  (a plain string: "relu", a path, ...)
            continue
    return evaluable


def test_literal_value_reads_every_default_of_fairseq_as_eval_does():
    defaults = _fairseq_defaults()
    texts = {text for _, _, text, _ in defaults}
    assert "[(512, 3)] * 20" in texts and "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]" in texts
    for where, field, text, value in defaults:
        assert literal_value(text) == value, (where, field, text)


@pytest.mark.parametrize("text, reason", [
    ("__import__('os').system('true')", "a call"),
    ("().__class__", "an attribute"),
    ("[x for x in ()]", "a ListComp"),
    ("lambda: 0", "a Lambda"),
    ("2 ** 100", "a BinOp"),
    ("[0] * 1000001", "a repetition of more than"),
    ("{**{}}", "'\\*\\*' in a dict"),
    ("open", "the name 'open'"),
])
def test_literal_value_refuses_everything_else(text, reason):
    with pytest.raises(NotALiteralError, match=reason):
        literal_value(text)


def test_every_eval_in_fairseq_is_a_literal_reader():
    """Every fairseq module (examples aside) that calls eval( has literal_args' stand-in, except
    codedataset (data lines, not options; documented)."""
    import re

    import fairseq

    root = os.path.dirname(fairseq.__file__)
    calling = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "examples"]
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".py") and re.search(r"(?<![\w.])eval\(", open(path, encoding="utf-8").read()):
                module = os.path.relpath(path[:-3], os.path.dirname(root)).replace(os.sep, ".")
                calling.add(module)
    assert calling - {"fairseq.data.codedataset"} == set(literal_args.EVALUATING_MODULES)
    for module in literal_args.EVALUATING_MODULES:
        try:
            assert importlib.import_module(module).eval is literal_value, module
        except ImportError:  # an optional dependency missing here: the module cannot run
            pass


def test_lrn_lm_reads_its_cutoff_as_a_literal(tmp_path):
    from fairseq_lrn.models.lrn_lm import parse_cutoff

    marker = tmp_path / "PWNED"
    args = argparse.Namespace(criterion="adaptive_loss", adaptive_softmax_cutoff=f"{payload(marker)} or [5]")
    with pytest.raises(NotALiteralError, match="^adaptive_softmax_cutoff = .* is not a Python literal"):
        parse_cutoff(args, vocab_size=100)
    assert not marker.exists()
    assert parse_cutoff(argparse.Namespace(criterion="adaptive_loss", adaptive_softmax_cutoff="5,50"), 100) == [5, 50]
