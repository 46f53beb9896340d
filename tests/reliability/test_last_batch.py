"""fairseq 0.12 drops the sentences of a last batch that is not a multiple of
--required-batch-size-multiple (fairseq issue #5036); the plugin keeps them
(fairseq_lrn.fairseq_compat.last_partial_batch)."""

import os

import pytest

import numpy as np
from fairseq.data import data_utils

import fairseq_lrn.models  # noqa: F401  (registers the models, as --user-dir does)
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


def _trainer(data_bin):
    """fairseq's Trainer for the tiny LRN with --batch-size 16, built as fairseq-train builds it."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.trainer import Trainer

    args = options.parse_args_and_arch(options.get_training_parser(),
                                       train_args(data_bin, "unused", "--batch-size", "16"))
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("valid")
    return Trainer(cfg, task, task.build_model(cfg.model), task.build_criterion(cfg.criterion))


def _train_epoch(data_bin, state=None, stop_after=None):
    """The sentence ids of epoch 1's training batches, in order, as fairseq-train walks them
    (resumed from an iterator ``state`` when given; the state after ``stop_after`` batches)."""
    iterator = _trainer(data_bin).get_train_iterator(epoch=1)
    if state is not None:
        iterator.load_state_dict(state)  # what fairseq's load_checkpoint does when resuming
    batches = []
    for sample in iterator.next_epoch_itr(shuffle=True):
        batches.append(sorted(sample["id"].tolist()))
        if len(batches) == stop_after:
            return batches, iterator.state_dict()
    return batches, None


@pytest.fixture(scope="module")
def corpus_of_45(tmp_path_factory):
    """45 training pairs (batches of 16: fairseq 0.12 trains on 40 of them), 13 validation pairs."""
    folder = str(tmp_path_factory.mktemp("last_batch"))
    write_corpus(folder, "reversal", {"train": 45, "valid": 13, "test": 5})
    return preprocess(folder)


def test_training_batches_are_fairseq_s_and_resume_across_the_fix(corpus_of_45, monkeypatch):
    assert install_keep_last_partial_batch()
    from fairseq.trainer import Trainer

    fixed = (data_utils.batch_by_size, Trainer.get_train_iterator)
    plain = tuple(function.__wrapped__ for function in fixed)  # fairseq's own: the fix opted out

    def use(functions):
        monkeypatch.setattr(data_utils, "batch_by_size", functions[0])
        monkeypatch.setattr(Trainer, "get_train_iterator", functions[1])

    use(plain)
    fairseq_epoch, _ = _train_epoch(corpus_of_45)
    assert len(fairseq_epoch) == 3 and sum(map(len, fairseq_epoch)) == 40  # fairseq leaves 5 out
    use(fixed)
    assert _train_epoch(corpus_of_45)[0] == fairseq_epoch  # the same batches in the same order
    valid = _trainer(corpus_of_45).get_valid_iterator("valid").next_epoch_itr(shuffle=False)
    assert sorted(i for sample in valid for i in sample["id"].tolist()) == list(range(13))  # all kept

    for before, after in ((fixed, plain), (plain, fixed)):  # a checkpoint mid-epoch, resumed across
        use(before)
        first, state = _train_epoch(corpus_of_45, stop_after=1)
        use(after)
        rest, _ = _train_epoch(corpus_of_45, state=state)
        assert first + rest == fairseq_epoch  # no batch replayed or skipped
