"""fairseq 0.12 under numpy 2 (fairseq_lrn.fairseq_compat.numpy2): ``np.compat.long``
and ``np.percentile(interpolation=)``. fairseq's lstm_lm with the plugin: tests/models/test_lrn_lm.py."""

import os
import re

import numpy as np
import pytest
from fairseq.data import data_utils, language_pair_dataset, token_block_dataset

from fairseq_lrn.fairseq_compat.numpy2 import PATCHED_MODULES as NUMPY2_PATCHED_MODULES
from fairseq_lrn.fairseq_compat.numpy2 import NumpyForFairseq012
from fairseq_lrn.fairseq_compat.numpy2 import install as install_numpy2_compat
from tests.cli_utils import run_cli
from tests.reliability.helpers import train_args


def test_fairseq_modules_see_the_numpy_names_they_use():
    install_numpy2_compat()
    for module in (token_block_dataset, language_pair_dataset):
        assert module.np.compat.long is (np.compat.long if hasattr(np, "compat") else np.int64)
    sizes = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    assert list(data_utils.get_buckets(sizes, 2)) == [3, 9]  # np.percentile(interpolation="lower")
    assert data_utils.np.zeros is np.zeros and data_utils.np.int64 is np.int64


@pytest.mark.skipif(hasattr(np, "compat"), reason="numpy < 2 has np.compat: nothing to fix")
def test_only_the_listed_modules_are_patched_and_numpy_is_untouched():
    from fairseq.data import iterators

    assert install_numpy2_compat() and install_numpy2_compat()  # idempotent
    assert [type(token_block_dataset.np), type(language_pair_dataset.np), type(data_utils.np)] == \
        [NumpyForFairseq012] * len(NUMPY2_PATCHED_MODULES)
    assert iterators.np is np and not hasattr(np, "compat")


def test_translation_with_num_batch_buckets_trains(corpus):
    folder, data_bin = corpus
    proc = run_cli("train", *train_args(data_bin, os.path.join(folder, "buckets"), "--num-batch-buckets", "4",
                                        "--disable-validation", "--no-save", max_update=2))
    log = proc.stdout + proc.stderr
    for side in ("src", "tgt"):  # the buckets fairseq's np.percentile(interpolation=) gives, computed here
        dataset = data_utils.load_indexed_dataset(os.path.join(data_bin, f"train.src-tgt.{side}"), None)
        sizes = np.array(dataset.sizes)  # a copy: the memory map goes with the dataset
        assert list(data_utils.get_buckets(sizes, 4)) == list(np.unique(np.percentile(sizes, [25, 50, 75, 100],
                                                                                      method="lower")))
        what = "source" if side == "src" else "target"
        assert f"bucketing {what} lengths: {list(data_utils.get_buckets(sizes, 4))}" in log, side
    assert re.search(r"num_updates=2\b", log) and "done training" in log
