"""transformer_lrn through the real CLIs on the toy reversal task: train, generate (beam 5),
interactive, the hub, --help, and a refused flag."""

import os

from fairseq_lrn.tools.generate_output import parse_generate_output
from tests.cli_utils import USER_DIR, run_cli, transformer_lrn_train_args
from tests.models.test_cli_end_to_end import reversed_fraction


def test_generate_with_beam_search_reverses_sentences(trained_transformer_lrn):
    data_bin, checkpoint = trained_transformer_lrn
    out = run_cli("generate", data_bin, "--user-dir", USER_DIR, "--path", checkpoint,
                  "--beam", "5", "--batch-size", "16", "--cpu").stdout
    sentences = parse_generate_output(out)
    assert len(sentences) == 40
    assert reversed_fraction([(s["S"], s["H"]) for s in sentences.values()]) >= 0.8


def test_interactive_and_hub_translate(trained_transformer_lrn):
    from fairseq_lrn.models import TransformerLRNModel

    data_bin, checkpoint = trained_transformer_lrn
    lines = ["w1 w2 w3 w4", "w5 w0 w7", "w9 w9 w3 w8 w2"]
    out = run_cli("interactive", data_bin, "--user-dir", USER_DIR, "--path", checkpoint,
                  "--beam", "5", "--cpu", "--source-lang", "src", "--target-lang", "tgt",
                  input_text="\n".join(lines) + "\n").stdout
    hypos = [s["H"] for _, s in sorted(parse_generate_output(out).items())]
    assert len(hypos) == 3 and reversed_fraction(list(zip(lines, hypos))) >= 2 / 3
    hub = TransformerLRNModel.from_pretrained(os.path.dirname(checkpoint), checkpoint_file="checkpoint_last.pt",
                                              data_name_or_path=data_bin, source_lang="src", target_lang="tgt")
    hub.eval()
    assert reversed_fraction(list(zip(lines, hub.translate(lines, beam=5)))) >= 2 / 3


def test_help_lists_transformer_and_lrn_flags():
    out = run_cli("train", "--user-dir", USER_DIR, "--arch", "transformer_lrn", "--help").stdout
    for flag in ["--encoder-layers", "--encoder-ffn-embed-dim", "--decoder-layers", "--decoder-normalize-before",
                 "--share-all-embeddings", "--lrn-impl", "--lrn-activation", "--layer-norm", "--lrn-output-gate",
                 "--decoder-positional-embeddings"]:
        assert flag in out, flag


def test_a_flag_that_cannot_apply_is_refused_by_name(trained_transformer_lrn, tmp_path):
    data_bin, _ = trained_transformer_lrn
    proc = run_cli("train", *transformer_lrn_train_args(data_bin, str(tmp_path), "--cross-self-attention"),
                   check=False)
    assert proc.returncode != 0
    assert "--cross-self-attention does not apply to --arch transformer_lrn" in proc.stderr
