import os

import pytest

from tests.cli_utils import preprocess, write_reversal_corpus
from tests.reliability.helpers import launch, train_args


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """The toy reversal task (400 training pairs), binarized: (folder, data_bin)."""
    folder = str(tmp_path_factory.mktemp("reliability"))
    write_reversal_corpus(folder, n_train=400)
    return folder, preprocess(folder)


@pytest.fixture(scope="session")
def reference(corpus):
    """An uninterrupted single-process run (--update-freq 2) through the launcher:
    (save_dir, log text). Saves checkpoint_E_U.pt every 3 updates, stops at update 13."""
    folder, data_bin = corpus
    save_dir = os.path.join(folder, "reference")
    log = os.path.join(folder, "reference.log")
    code = launch(train_args(data_bin, save_dir, "--update-freq", "2"), log)
    text = open(log).read()
    assert code == 0, text[-3000:]
    return save_dir, text
