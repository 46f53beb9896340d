import os

import pytest

from tests.cli_utils import preprocess, run_cli, train_args, transformer_lrn_train_args, write_reversal_corpus


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A tiny lrn_iwslt_de_en trained with fairseq-train on the reversal task:
    (folder, data_bin, checkpoint path)."""
    folder = str(tmp_path_factory.mktemp("reverse"))
    write_reversal_corpus(folder)
    data_bin = preprocess(folder)
    save_dir = os.path.join(folder, "checkpoints")
    run_cli("train", *train_args(data_bin, save_dir, "--no-epoch-checkpoints", "--disable-validation"))
    return folder, data_bin, os.path.join(save_dir, "checkpoint_last.pt")


@pytest.fixture(scope="session")
def trained_transformer_lrn(tmp_path_factory):
    """(data_bin, checkpoint) of a tiny transformer_lrn trained with fairseq-train."""
    folder = str(tmp_path_factory.mktemp("reverse_tlrn"))
    write_reversal_corpus(folder)
    data_bin = preprocess(folder, joined=True)
    save_dir = os.path.join(folder, "checkpoints")
    run_cli("train", *transformer_lrn_train_args(data_bin, save_dir))
    return data_bin, os.path.join(save_dir, "checkpoint_last.pt")
