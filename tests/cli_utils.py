"""Run fairseq's command-line tools the way a user does, in a subprocess."""

import os

from fairseq_lrn.tools.data_bin import build_data_bin, corpus_prefixes
from fairseq_lrn.tools.run import run_fairseq
from fairseq_lrn.toy_data import write_corpus

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER_DIR = os.path.join(REPO, "fairseq_lrn")


def run_cli(tool: str, *args, input_text=None, check=True, env=None, timeout=900):
    """Run ``fairseq-<tool>`` with captured output; fail the test with its stderr on error."""
    proc = run_fairseq(tool, *args, capture=True, input_text=input_text, check=False, env=env,
                       timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"fairseq-{tool} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def write_reversal_corpus(folder, n_train=1500):
    """The toy reversal task (target = source reversed) as {train,valid,test}.{src,tgt}."""
    write_corpus(folder, "reversal", {"train": n_train, "valid": 60, "test": 40})


def preprocess(folder, joined=False):
    """fairseq-preprocess (in this process) the corpus in ``folder`` into ``folder/bin``; returns that path."""
    return build_data_bin(os.path.join(folder, "bin"), joined_dictionary=joined, in_process=True,
                          **corpus_prefixes(folder))


TINY_MODEL = ["--encoder-embed-dim", "32", "--decoder-embed-dim", "32", "--decoder-out-embed-dim", "32",
              "--encoder-hidden-size", "64", "--decoder-hidden-size", "64", "--dropout", "0"]


def train_args(data_bin, save_dir, *extra, arch="lrn_iwslt_de_en", epochs=8):
    """fairseq-train arguments for a tiny LRN on the reversal task."""
    return [data_bin, "--user-dir", USER_DIR, "--arch", arch, *TINY_MODEL, "--optimizer", "adam",
            "--lr", "0.005", "--max-tokens", "300", "--max-epoch", str(epochs), "--save-dir", save_dir,
            "--cpu", "--no-progress-bar", "--log-interval", "10", "--seed", "1", *extra]


TRANSFORMER_LRN_MODEL = [
    "--arch", "transformer_lrn", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
    "--encoder-layers", "2", "--encoder-attention-heads", "2", "--decoder-embed-dim", "32",
    "--decoder-ffn-embed-dim", "64", "--decoder-layers", "2", "--decoder-attention-heads", "2",
    "--dropout", "0", "--share-all-embeddings"]


def transformer_lrn_train_args(data_bin, save_dir, *extra):
    """fairseq-train arguments for a tiny transformer_lrn on the reversal task."""
    return [data_bin, "--user-dir", USER_DIR, *TRANSFORMER_LRN_MODEL, "--optimizer", "adam",
            "--lr", "0.005",
            "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "50", "--max-tokens", "400",
            "--max-epoch", "16", "--save-dir", save_dir, "--cpu", "--no-progress-bar",
            "--log-interval", "20", "--seed", "1", "--no-epoch-checkpoints", "--disable-validation", *extra]
