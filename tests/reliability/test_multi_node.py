"""Multi-node training as a dry run on one machine: scripts/launch_distributed.py started twice
on loopback as two nodes (--nnodes 2 --node-rank 0/1, one CPU rank each) must train exactly as
one process with --update-freq 2 (the same global batches), like the single-node test."""

import os
import socket
import subprocess

from tests.reliability.helpers import assert_same_state, env, kill_group, launcher_command, losses, train_args


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_loopback_match_one_process_with_update_freq_2(corpus, reference, tmp_path):
    _, data_bin = corpus
    ref_dir, ref_log = reference
    save, port = tmp_path / "nodes", free_port()
    nodes, logs = [], [tmp_path / f"node{rank}.log" for rank in (0, 1)]
    try:
        for rank, log in enumerate(logs):
            command = launcher_command(train_args(data_bin, save, max_update=6), 1, "--nnodes", "2",
                                       "--node-rank", str(rank), "--master-addr", "127.0.0.1",
                                       "--master-port", str(port))
            with open(log, "w") as out:
                nodes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env(),
                                              start_new_session=True))
        codes = [node.wait(timeout=300) for node in nodes]
    finally:
        for node in nodes:
            kill_group(node)
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], texts[0][-2000:] + texts[1][-2000:]
    assert "distributed init (rank 0)" in texts[0] and "distributed init (rank 1)" in texts[1]
    ref, dist = losses(ref_log), losses(texts[0])
    assert sorted(dist) == [1, 2, 3, 4, 5, 6]
    assert dist == {u: ref[u] for u in dist}  # loss and lr, as logged (3 decimals)
    assert sorted(os.listdir(save)) == ["checkpoint_1_3.pt", "checkpoint_1_6.pt", "checkpoint_last.pt"]
    assert_same_state(save / "checkpoint_1_6.pt", os.path.join(ref_dir, "checkpoint_1_6.pt"), exact=False)
