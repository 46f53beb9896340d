"""fairseq 0.12 drops the sentences of a last batch that is not a multiple of
--required-batch-size-multiple (fairseq issue #5036); the plugin keeps them
(fairseq_lrn.fairseq_compat.last_partial_batch)."""

import os

import numpy as np
from fairseq.data import data_utils

from fairseq_lrn.tools.generate_output import parse_generate_output
from fairseq_lrn.fairseq_compat.last_partial_batch import install as install_keep_last_partial_batch
from fairseq_lrn.toy_data import write_corpus
from tests.cli_utils import USER_DIR, preprocess, run_cli
from tests.reliability.helpers import train_args


def test_every_sentence_is_batched_exactly_once():
    assert install_keep_last_partial_batch()
    indices = np.random.RandomState(0).permutation(1518)
    for kwargs in (dict(max_sentences=64), dict(max_tokens=4000), dict(max_tokens=300, max_sentences=16)):
        batches = data_utils.batch_by_size(indices, num_tokens_fn=lambda i: 10 + i % 7,
                                           required_batch_size_multiple=8, **kwargs)
        batched = np.concatenate(batches)
        assert sorted(batched.tolist()) == list(range(1518)), kwargs
        assert all(len(b) % 8 == 0 for b in batches[:-1])
        # the returned last batch holds the 6 sentences fairseq dropped, in their order
        assert batches[-1].tolist() == indices[-6:].tolist(), kwargs


def test_fairseq_generate_translates_a_test_set_of_45_sentences(tmp_path):
    folder = str(tmp_path)
    write_corpus(folder, "reversal", {"train": 60, "valid": 13, "test": 45})
    data_bin = preprocess(folder)
    save_dir = os.path.join(folder, "checkpoints")
    run_cli("train", *train_args(data_bin, save_dir, max_update=1))
    out = run_cli("generate", data_bin, "--user-dir", USER_DIR, "--path",
                  os.path.join(save_dir, "checkpoint_last.pt"), "--batch-size", "16", "--beam", "2",
                  "--max-len-b", "5", "--cpu").stdout
    assert sorted(parse_generate_output(out)) == list(range(45))
