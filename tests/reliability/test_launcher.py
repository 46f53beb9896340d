"""scripts/launch_distributed.py: the commands it builds (--dry-run; fast, no training)."""

import subprocess
import sys

from tests.reliability.helpers import LAUNCHER


def dry_run(*args):
    proc = subprocess.run([sys.executable, LAUNCHER, "--dry-run", *args], capture_output=True, text=True)
    return proc.returncode, proc.stdout.splitlines(), proc.stderr


def test_cpu_two_ranks_use_gloo_legacy_ddp_one_process_per_rank():
    code, lines, _ = dry_run("--nproc", "2", "--master-port", "29511", "--", "data-bin", "--cpu", "--arch", "lrn")
    assert code == 0 and len(lines) == 2
    for rank, line in enumerate(lines):
        assert line.startswith("OMP_NUM_THREADS=") and " -m fairseq_cli.train data-bin --cpu --arch lrn " in line
        for flag in ("--distributed-world-size 2", "--distributed-backend gloo", "--distributed-no-spawn",
                     "--distributed-init-method tcp://127.0.0.1:29511", f"--distributed-rank {rank}",
                     "--ddp-backend legacy_ddp", "--update-epoch-batch-itr True"):
            assert flag in line, (flag, line)


def test_cpu_multi_node_ranks_and_refusal_of_c10d():
    code, lines, _ = dry_run("--nproc", "2", "--nnodes", "2", "--node-rank", "1", "--master-addr", "10.0.0.1",
                             "--master-port", "29500", "--", "data-bin", "--cpu")
    assert code == 0
    assert ["--distributed-rank 2" in lines[0], "--distributed-rank 3" in lines[1]] == [True, True]
    assert all("--distributed-world-size 4" in line and "tcp://10.0.0.1:29500" in line for line in lines)
    code, _, err = dry_run("--nproc", "2", "--", "data-bin", "--cpu", "--ddp-backend", "c10d")
    assert code != 0 and "does not work on CPU" in err
    code, _, err = dry_run("--nnodes", "2", "--", "data-bin", "--cpu")
    assert code != 0 and "--master-port is required" in err


def test_gpu_uses_torchrun_and_passes_the_world_size():
    code, lines, _ = dry_run("--device", "gpu", "--nproc", "8", "--nnodes", "2", "--node-rank", "0",
                             "--master-addr", "node0", "--master-port", "29500", "--", "data-bin", "--arch", "lrn")
    assert code == 0 and len(lines) == 1
    line = lines[0]
    for part in ("-m torch.distributed.run", "--nproc-per-node=8", "--nnodes=2", "--node-rank=0",
                 "--master-addr=node0", "--master-port=29500", "-m fairseq_cli.train data-bin --arch lrn",
                 "--distributed-world-size 16", "--update-epoch-batch-itr True"):
        assert part in line, part
    assert "--cpu" not in line and "gloo" not in line


def test_single_process_is_plain_fairseq_train_and_user_flags_win():
    code, lines, _ = dry_run("--nproc", "1", "--no-exact-resume", "--", "data-bin", "--cpu")
    assert code == 0 and lines[0].endswith("-m fairseq_cli.train data-bin --cpu")
    code, lines, _ = dry_run("--nproc", "1", "--", "data-bin", "--cpu", "--update-epoch-batch-itr", "False")
    assert "--update-epoch-batch-itr True" not in lines[0]


def test_a_failing_rank_stops_the_others():
    """Without this, the surviving ranks would wait in a collective until gloo's timeout (30 min)."""
    import importlib.util
    import time

    spec = importlib.util.spec_from_file_location("launch_distributed", LAUNCHER)
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    began = time.time()
    code = launcher.run([({}, [sys.executable, "-c", "import time; time.sleep(1); raise SystemExit(3)"]),
                         ({}, [sys.executable, "-c", "import time; time.sleep(120)"])])
    assert code == 3 and time.time() - began < 60
