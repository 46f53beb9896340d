"""Data-parallel training through fairseq's own engine on CPU: two gloo ranks started by
scripts/launch_distributed.py match one process with --update-freq 2 (the same global batches),
write one set of checkpoints, and resume (rank 0 reads the checkpoint and broadcasts it)."""

import os

import pytest
import torch

from tests.cli_utils import USER_DIR
from tests.reliability.helpers import assert_same_state, launch, losses, train_args


def test_two_gloo_ranks_match_one_process_with_update_freq_2_and_resume(corpus, reference, tmp_path):
    _, data_bin = corpus
    ref_dir, ref_log = reference
    ref = losses(ref_log)
    save = tmp_path / "dist"

    log = tmp_path / "dist.log"
    assert launch(train_args(data_bin, save, max_update=6), log, nproc=2) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "distributed init (rank 0)" in text and "distributed init (rank 1)" in text
    dist = losses(text)
    assert sorted(dist) == [1, 2, 3, 4, 5, 6]
    assert {u: dist[u] for u in dist} == {u: ref[u] for u in dist}  # loss and lr, as logged (3 decimals)
    assert sorted(os.listdir(save)) == ["checkpoint_1_3.pt", "checkpoint_1_6.pt", "checkpoint_last.pt"]
    assert_same_state(save / "checkpoint_1_6.pt", os.path.join(ref_dir, "checkpoint_1_6.pt"), exact=False)

    # Rerun with a later --max-update: rank 0 loads checkpoint_last.pt and broadcasts it to rank 1
    # (under torch >= 2.6 rank 1 failed to unpickle it before the plugin's fix).
    log = tmp_path / "dist-resumed.log"
    assert launch(train_args(data_bin, save, max_update=9), log, nproc=2) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "Loaded checkpoint" in text and "(epoch 1 @ 6 updates)" in text
    resumed = losses(text)
    assert sorted(resumed) == [7, 8, 9]  # crosses into epoch 2
    assert {u: resumed[u] for u in resumed} == {u: ref[u] for u in resumed}
    assert_same_state(save / "checkpoint_2_9.pt", os.path.join(ref_dir, "checkpoint_2_9.pt"), exact=False)


MODEL_VARIANTS = {
    "default": [],
    "input-feeding": ["--decoder-input-feeding"],
    "general-2-heads-3-layers": ["--decoder-attention", "general", "--decoder-attention-heads", "2",
                                 "--encoder-layers", "3", "--decoder-layers", "3"],
    "dot-1-layer-unidirectional-untied": ["--decoder-attention", "dot", "--encoder-layers", "1",
                                          "--decoder-layers", "1", "--no-encoder-bidirectional",
                                          "--encoder-hidden-size", "16"],
}


@pytest.mark.parametrize("variant", sorted(MODEL_VARIANTS))
def test_every_parameter_gets_a_gradient(corpus, variant):
    """torch DDP (--ddp-backend c10d, find_unused_parameters off) fails when a parameter gets no
    gradient; fairseq's legacy_ddp would hide it. So check it directly, for several shapes."""
    from fairseq import options, tasks

    import fairseq_lrn.models  # noqa: F401  (registers the architectures; --user-dir skips a package
    #                             that is already imported, as it is in this test process)
    _, data_bin = corpus
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        data_bin, "--user-dir", USER_DIR, "--arch", "lrn", "--encoder-embed-dim", "16", "--decoder-embed-dim",
        "16", "--decoder-out-embed-dim", "16", "--encoder-hidden-size", "8", "--decoder-hidden-size", "16",
        "--dropout", "0.1", "--cpu", *MODEL_VARIANTS[variant]])
    task = tasks.setup_task(args)
    task.load_dataset("valid")
    model, criterion = task.build_model(args), task.build_criterion(args)
    batch = next(iter(task.get_batch_iterator(task.dataset("valid"), max_tokens=400).next_epoch_itr(shuffle=False)))
    model.train()
    loss, _, _ = criterion(model, batch)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{variant}: {name} gets no gradient"
        assert torch.isfinite(param.grad).all(), f"{variant}: {name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{variant}: {name} has an all-zero gradient"
