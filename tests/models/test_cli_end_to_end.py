"""Train, generate, translate interactively and through the hub, as a user does (subprocess)."""

import os

from fairseq_lrn.tools.generate_output import parse_generate_output
from tests.cli_utils import USER_DIR, run_cli, train_args


def reversed_fraction(pairs):
    return sum(hyp.split() == src.split()[::-1] for src, hyp in pairs) / len(pairs)


def test_generate_with_beam_search_reverses_sentences(trained):
    folder, data_bin, checkpoint = trained
    out = run_cli("generate", data_bin, "--user-dir", USER_DIR, "--path", checkpoint,
                  "--beam", "5", "--batch-size", "16", "--cpu").stdout
    sentences = parse_generate_output(out)
    assert len(sentences) == 40
    assert reversed_fraction([(s["S"], s["H"]) for s in sentences.values()]) >= 0.8


def test_interactive_translates_stdin(trained):
    folder, data_bin, checkpoint = trained
    lines = ["w1 w2 w3 w4", "w5 w0 w7", "w9 w9 w3 w8 w2"]
    out = run_cli("interactive", data_bin, "--user-dir", USER_DIR, "--path", checkpoint,
                  "--beam", "5", "--cpu", "--source-lang", "src", "--target-lang", "tgt",
                  input_text="\n".join(lines) + "\n").stdout
    hypos = [s["H"] for _, s in sorted(parse_generate_output(out).items())]
    assert len(hypos) == 3
    assert reversed_fraction(list(zip(lines, hypos))) >= 2 / 3


def test_hub_interface_translates(trained):
    from fairseq_lrn.models import LRNModel

    folder, data_bin, checkpoint = trained
    hub = LRNModel.from_pretrained(os.path.dirname(checkpoint), checkpoint_file="checkpoint_last.pt",
                                   data_name_or_path=data_bin, source_lang="src", target_lang="tgt")
    hub.eval()
    lines = ["w3 w1 w4 w1 w5", "w2 w6 w5"]
    outputs = hub.translate(lines, beam=5)
    assert reversed_fraction(list(zip(lines, outputs))) >= 0.5


def test_every_flag_shows_in_help():
    out = run_cli("train", "--user-dir", USER_DIR, "--arch", "lrn", "--help").stdout
    for flag in ["--encoder-embed-dim", "--encoder-hidden-size", "--encoder-layers", "--encoder-bidirectional",
                 "--decoder-embed-dim", "--decoder-hidden-size", "--decoder-layers", "--decoder-out-embed-dim",
                 "--decoder-attention", "--decoder-attention-heads", "--decoder-input-feeding", "--dropout",
                 "--share-decoder-input-output-embed", "--share-all-embeddings", "--lrn-activation",
                 "--layer-norm", "--lrn-impl"]:
        assert flag in out, flag


def test_bad_option_fails_with_its_name(trained):
    folder, data_bin, _ = trained
    proc = run_cli("train", *train_args(data_bin, os.path.join(folder, "bad"), "--decoder-attention", "luong"),
                   check=False)
    assert proc.returncode != 0
    assert "--decoder-attention must be one of" in proc.stderr
