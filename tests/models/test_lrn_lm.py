"""The LRN language model: fairseq's CLIs on a deterministic corpus, incremental decoding,
bad options, adaptive softmax, and fairseq's own lstm_lm with the plugin (numpy 2 fix)."""

import argparse
import math
import os
import re
from types import SimpleNamespace

import pytest
import torch

from fairseq_lrn.models.lrn_lm import LRNLanguageModel, base_architecture
from fairseq_lrn.modules import LRNLayer
from fairseq_lrn.tools.data_bin import build_data_bin
from fairseq_lrn.tools.generate_output import parse_generate_output
from tests.cli_utils import USER_DIR, run_cli
from tests.models.helpers import make_dictionary

ASCENDING = " ".join(f"w{i}" for i in range(10))
DESCENDING = " ".join(f"w{i}" for i in reversed(range(10)))
TINY_LM = ["--decoder-embed-dim", "32", "--decoder-hidden-size", "32", "--decoder-out-embed-dim", "32",
           "--dropout", "0"]


def write_lm_corpus(folder, sizes=(("train", 400), ("valid", 60), ("test", 60))):
    """Lines alternate ``w0 .. w9`` / ``w9 .. w0``: every next token is determined by the text
    so far (after a line break, by the line before it), so a model can reach perplexity ~1."""
    for split, n in sizes:
        with open(os.path.join(folder, f"{split}.txt"), "w") as f:
            f.writelines((ASCENDING if k % 2 == 0 else DESCENDING) + "\n" for k in range(n))


def lm_train_args(data_bin, save_dir, *extra, arch="lrn_lm", epochs=6):
    """fairseq-train arguments for a tiny language model on the corpus of write_lm_corpus."""
    return [data_bin, "--user-dir", USER_DIR, "--task", "language_modeling", "--arch", arch, *TINY_LM,
            "--tokens-per-sample", "64", "--max-tokens", "512", "--optimizer", "adam", "--lr", "0.01",
            "--max-epoch", str(epochs), "--save-dir", save_dir, "--no-epoch-checkpoints", "--cpu",
            "--no-progress-bar", "--log-interval", "10", "--seed", "1", *extra]


def perplexity(eval_lm_output: str) -> float:
    """The ``Perplexity: N`` that fairseq-eval-lm prints."""
    return float(re.findall(r"Perplexity: ([0-9.]+)", eval_lm_output)[-1])


@pytest.fixture(scope="module")
def lm_data(tmp_path_factory):
    """The corpus, binarized with fairseq-preprocess --only-source: (folder, data_bin)."""
    folder = str(tmp_path_factory.mktemp("lm"))
    write_lm_corpus(folder)
    p = lambda split: os.path.join(folder, f"{split}.txt")  # noqa: E731
    data_bin = build_data_bin(os.path.join(folder, "bin"), train=p("train"), valid=p("valid"), test=p("test"),
                              source_lang=None, target_lang=None, in_process=True)
    return folder, data_bin


@pytest.fixture(scope="module")
def trained_lm(lm_data):
    """A tiny lrn_lm (tied embeddings) trained with fairseq-train: (data_bin, checkpoint)."""
    folder, data_bin = lm_data
    save_dir = os.path.join(folder, "lrn_lm")
    run_cli("train", *lm_train_args(data_bin, save_dir, "--share-decoder-input-output-embed",
                                    "--decoder-layers", "1"))
    return data_bin, os.path.join(save_dir, "checkpoint_last.pt")


def test_eval_lm_perplexity_near_one(trained_lm):
    data_bin, checkpoint = trained_lm
    common = [data_bin, "--user-dir", USER_DIR, "--path", checkpoint, "--cpu", "--gen-subset", "test",
              "--tokens-per-sample", "64"]
    plain = perplexity(run_cli("eval_lm", *common).stderr)
    # Each window is a fresh sample with 32 context tokens prepended: the state is rebuilt from them.
    windowed = perplexity(run_cli("eval_lm", *common, "--context-window", "32").stderr)
    assert plain < 1.5
    assert windowed < 1.5


def test_interactive_continues_a_prefix(trained_lm):
    data_bin, checkpoint = trained_lm
    out = run_cli("interactive", data_bin, "--user-dir", USER_DIR, "--task", "language_modeling",
                  "--path", checkpoint, "--cpu", "--beam", "3", "--max-len-b", "12",
                  input_text="w0 w1 w2\nw9 w8\n").stdout
    hypos = [s["H"] for _, s in sorted(parse_generate_output(out).items())]
    assert hypos == [ASCENDING, DESCENDING]


def test_hub_sample_continues_a_prefix(trained_lm):
    data_bin, checkpoint = trained_lm
    hub = LRNLanguageModel.from_pretrained(os.path.dirname(checkpoint), checkpoint_file="checkpoint_last.pt",
                                           data_name_or_path=data_bin)
    hub.eval()
    assert hub.sample(["w0 w1 w2 w3", "w9 w8 w7"], beam=2, max_len_b=12) == [ASCENDING, DESCENDING]


def build_lm(dictionary=None, **overrides):
    """An ``lrn_lm`` with tiny sizes, updated by ``overrides``, for a dictionary of 30 words."""
    dictionary = dictionary or make_dictionary()
    args = argparse.Namespace(**{**dict(decoder_embed_dim=16, decoder_hidden_size=24, decoder_out_embed_dim=16,
                                        dropout=0.0, criterion="cross_entropy", max_target_positions=None),
                                 **overrides})
    base_architecture(args)
    task = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary, dictionary=dictionary)
    return LRNLanguageModel.build_model(args, task)


@pytest.mark.parametrize("overrides", [
    {},
    dict(decoder_layers=3, decoder_embed_dim=24, share_decoder_input_output_embed=True,
         decoder_out_embed_dim=24),
    dict(lrn_activation="identity", layer_norm=False),
    dict(lrn_output_gate=True),
])
def test_incremental_decoding_equals_full_forward(overrides):
    model = build_lm(**overrides).double().eval()
    tokens = torch.randint(4, len(model.decoder.dictionary), (3, 9))
    with torch.no_grad():
        full, _ = model(tokens)
        state = {}
        steps = [model.decoder(tokens[:, :t + 1], incremental_state=state)[0] for t in range(9)]
        torch.testing.assert_close(torch.cat(steps, 1), full)
        # beam search reorders the cache: continue from rows (2, 0) of the batch
        order = torch.tensor([2, 0])
        model.decoder.reorder_incremental_state_scripting(state, order)
        longer = torch.cat([tokens[order], tokens[order, :1]], 1)
        last, _ = model.decoder(longer, incremental_state=state)
        torch.testing.assert_close(last[:, 0], model(longer)[0][:, -1])


def test_incremental_decoding_runs_cell_steps(monkeypatch):
    model = build_lm(decoder_layers=2).double().eval()
    tokens = torch.randint(4, len(model.decoder.dictionary), (2, 3))

    def no_recurrence(self, *args, **kwargs):
        raise AssertionError("an incremental step must call LRNLayer.step, not the recurrence")

    monkeypatch.setattr(LRNLayer, "forward", no_recurrence)
    with pytest.raises(AssertionError, match="must call LRNLayer.step"):
        model(tokens)  # the full forward runs the recurrence
    state = {}
    for t in range(tokens.size(1)):
        model.decoder(tokens[:, :t + 1], incremental_state=state)


@pytest.mark.parametrize("overrides, message", [
    (dict(decoder_layers=0), "--decoder-layers must be >= 1"),
    (dict(decoder_dropout_out=1.0), "--decoder-dropout-out must be in [0, 1)"),
    (dict(lrn_activation="relu"), "--lrn-activation must be one of"),
    (dict(lrn_impl="cuda"), "--lrn-impl must be one of"),
    (dict(share_decoder_input_output_embed=True, decoder_out_embed_dim=8), "--decoder-out-embed-dim"),
    (dict(criterion="adaptive_loss", adaptive_softmax_cutoff="10,5"), "--adaptive-softmax-cutoff"),
    (dict(criterion="adaptive_loss"), "--adaptive-softmax-cutoff"),  # 10000,... > a 34-word vocabulary
    (dict(criterion="adaptive_loss", adaptive_softmax_cutoff="10,20",
          share_decoder_input_output_embed=True, decoder_out_embed_dim=16), "adaptive softmax"),
])
def test_bad_options_fail_at_build_naming_the_option(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_lm(**overrides)


def test_bad_option_fails_through_the_cli(lm_data):
    folder, data_bin = lm_data
    proc = run_cli("train", *lm_train_args(data_bin, os.path.join(folder, "bad"), "--decoder-layers", "0"),
                   check=False)
    assert proc.returncode != 0
    assert "--decoder-layers must be >= 1" in proc.stderr


def test_adaptive_softmax_trains(lm_data):
    folder, data_bin = lm_data
    save_dir = os.path.join(folder, "adaptive")
    run_cli("train", *lm_train_args(data_bin, save_dir, "--criterion", "adaptive_loss",
                                    "--adaptive-softmax-cutoff", "5,10", "--adaptive-softmax-dropout", "0.1",
                                    "--ddp-backend", "legacy_ddp", "--max-update", "2",
                                    "--disable-validation"))
    state = torch.load(os.path.join(save_dir, "checkpoint_last.pt"), map_location="cpu", weights_only=False)
    assert any(key.startswith("decoder.adaptive_softmax.") for key in state["model"])
    assert state["optimizer_history"][-1]["num_updates"] == 2


def test_fairseq_lstm_lm_trains_and_evaluates_with_the_plugin(lm_data):
    """fairseq's own lstm_lm: --sample-break-mode eos (and every eval-lm / generation dataset)
    reads ``np.compat.long``, which numpy 2 removed; the plugin makes it work."""
    folder, data_bin = lm_data
    save_dir = os.path.join(folder, "lstm_lm")
    run_cli("train", *lm_train_args(data_bin, save_dir, "--sample-break-mode", "eos", "--max-update", "3",
                                    arch="lstm_lm"))
    checkpoint = os.path.join(save_dir, "checkpoint_last.pt")
    out = run_cli("eval_lm", data_bin, "--user-dir", USER_DIR, "--path", checkpoint, "--cpu",
                  "--sample-break-mode", "eos").stderr
    assert perplexity(out) == pytest.approx(in_process_perplexity(checkpoint, data_bin), abs=0.006)


def in_process_perplexity(checkpoint, data_bin, split="test"):
    """exp(mean token loss) of ``checkpoint`` on ``split``, summed by fairseq's criterion over the
    task's own batches (one sentence a sample: the checkpoint's --sample-break-mode eos)."""
    from fairseq import checkpoint_utils

    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint],
                                                                      arg_overrides={"data": data_bin})
    task.load_dataset(split)
    criterion = task.build_criterion(cfg.criterion)
    loss = tokens = 0.0
    with torch.no_grad():
        for sample in task.get_batch_iterator(task.dataset(split), max_sentences=16).next_epoch_itr(shuffle=False):
            batch_loss, ntokens, _ = criterion(models[0].eval(), sample)
            loss, tokens = loss + float(batch_loss), tokens + ntokens
    return math.exp(loss / tokens)


def test_lm_flags_show_in_help():
    out = run_cli("train", "--user-dir", USER_DIR, "--task", "language_modeling", "--arch", "lrn_lm",
                  "--help").stdout
    for flag in ["--decoder-embed-dim", "--decoder-hidden-size", "--decoder-layers", "--decoder-out-embed-dim",
                 "--decoder-dropout-in", "--decoder-dropout-out", "--share-decoder-input-output-embed",
                 "--adaptive-softmax-cutoff", "--adaptive-softmax-dropout", "--lrn-activation", "--layer-norm",
                 "--lrn-impl", "--lrn-output-gate"]:
        assert flag in out, flag


def test_a_checkpoint_of_another_dictionary_size_is_refused_by_name():
    from fairseq_lrn.errors import CheckpointError

    trained = build_lm(make_dictionary(40)).state_dict()
    with pytest.raises(CheckpointError, match=r"lrn_lm checkpoint was trained with other dictionaries.*"
                                              r"target embedding has 44 rows, but the target dictionary .* has 34"):
        build_lm().load_state_dict(trained)
