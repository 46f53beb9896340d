#!/usr/bin/env python
"""Launch data-parallel fairseq-train of an LRN model on CPUs (gloo) or GPUs (torchrun + NCCL).

    python scripts/launch_distributed.py [launcher options] -- DATA_BIN --user-dir fairseq_lrn --arch lrn ...

Everything after ``--`` is passed to fairseq-train. The launcher adds what distributed training
needs on each kind of machine (see --dry-run for the exact commands):

* CPU (``--cpu`` among the fairseq arguments, or no CUDA device): one ``python -m fairseq_cli.train``
  process per rank with ``--cpu --distributed-backend gloo --distributed-world-size W
  --distributed-no-spawn --distributed-init-method tcp://ADDR:PORT --distributed-rank R
  --ddp-backend legacy_ddp``. fairseq 0.12 cannot do this through torchrun (it divides by
  ``torch.cuda.device_count()``) and torch DDP (``--ddp-backend c10d``) rejects fairseq's
  ``device_ids`` on CPU, so both are avoided.
* GPU: ``torchrun --nproc-per-node G [--nnodes N --node-rank I --master-addr A --master-port P]
  -m fairseq_cli.train ... --distributed-world-size W`` (fairseq reads RANK / WORLD_SIZE from
  torchrun; W must be passed, or a machine with one GPU would train alone).

On every machine it also passes ``--update-epoch-batch-itr True`` (unless given): fairseq 0.12.3
otherwise re-uses the first epoch's batches for later epochs, while a run resumed inside a later
epoch rebuilds them with another seed, so resumed runs would not see the same batches as an
uninterrupted one. With it, a killed run rerun with the same command continues exactly.

If one rank fails, the others are stopped (instead of waiting in a collective until a timeout)
and the launcher exits with that rank's exit code. Rerunning the same command resumes from
``--save-dir``/checkpoint_last.pt.

Several machines: run the same command on each, with --nnodes N --node-rank I (0..N-1)
--master-addr (the address of node 0, reachable from all) --master-port P (free on node 0).
"""

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from typing import List


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def cuda_device_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def has_flag(args: List[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def flag_value(args: List[str], flag: str):
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def parse(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Everything after -- goes to fairseq-train. See the module docstring for details.")
    parser.add_argument("--nproc", type=int, default=None,
                        help="processes (ranks) on this machine; default: the number of GPUs, or 2 on CPU")
    parser.add_argument("--nnodes", type=int, default=1, help="machines taking part (default 1)")
    parser.add_argument("--node-rank", type=int, default=0, help="index of this machine, 0..nnodes-1")
    parser.add_argument("--master-addr", default="127.0.0.1",
                        help="address of node 0, reachable from every node (default 127.0.0.1)")
    parser.add_argument("--master-port", type=int, default=None,
                        help="free TCP port on node 0 (default: a free port; required with --nnodes > 1)")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="auto: cpu when --cpu is among the fairseq arguments or no GPU is present")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU: torch threads per rank (OMP_NUM_THREADS; default cores / nproc)")
    parser.add_argument("--no-exact-resume", action="store_true",
                        help="do not add --update-epoch-batch-itr True (see the module docstring)")
    parser.add_argument("--python", default=sys.executable, help="Python that has fairseq (default: this one)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("fairseq_args", nargs=argparse.REMAINDER,
                        help="-- then the fairseq-train arguments (data folder first)")
    args = parser.parse_args(argv)
    rest = args.fairseq_args
    if rest and rest[0] == "--":
        rest = rest[1:]
    if not rest:
        parser.error("give the fairseq-train arguments after --")
    args.fairseq_args = rest
    if args.nnodes > 1 and args.master_port is None:
        parser.error("--master-port is required with --nnodes > 1 (a free port on node 0)")
    if not 0 <= args.node_rank < args.nnodes:
        parser.error(f"--node-rank must be in 0..{args.nnodes - 1}")
    return args


def common_fairseq_args(args, world_size: int) -> List[str]:
    extra = list(args.fairseq_args)
    if not args.no_exact_resume and not has_flag(extra, "--update-epoch-batch-itr"):
        extra += ["--update-epoch-batch-itr", "True"]
    if world_size > 1:
        extra += ["--distributed-world-size", str(world_size)]
    return extra


def cpu_commands(args):
    """(environment, argv) per local rank for CPU training with gloo."""
    nproc = args.nproc or 2
    world_size = nproc * args.nnodes
    fairseq_args = common_fairseq_args(args, world_size)
    if not has_flag(fairseq_args, "--cpu"):
        fairseq_args.append("--cpu")
    ddp = flag_value(fairseq_args, "--ddp-backend")
    if world_size > 1 and ddp not in (None, "legacy_ddp", "no_c10d"):
        raise SystemExit(f"launch_distributed: --ddp-backend {ddp} does not work on CPU with fairseq 0.12 "
                         f"(torch DDP rejects the device_ids fairseq passes); leave it out (legacy_ddp is used)")
    threads = args.threads or max(1, (os.cpu_count() or 1) // nproc)
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads))}
    commands = []
    port = args.master_port or free_port(args.master_addr)
    for local_rank in range(nproc):
        argv = [args.python, "-m", "fairseq_cli.train", *fairseq_args]
        if world_size > 1:
            argv += ["--distributed-backend", "gloo", "--distributed-no-spawn",
                     "--distributed-init-method", f"tcp://{args.master_addr}:{port}",
                     "--distributed-rank", str(args.node_rank * nproc + local_rank)]
            if ddp is None:
                argv += ["--ddp-backend", "legacy_ddp"]
        commands.append((env, argv))
    return commands


def gpu_commands(args):
    """One torchrun command for this node."""
    nproc = args.nproc or max(1, cuda_device_count())
    world_size = nproc * args.nnodes
    fairseq_args = common_fairseq_args(args, world_size)
    if world_size == 1:
        return [({}, [args.python, "-m", "fairseq_cli.train", *fairseq_args])]
    port = args.master_port or free_port(args.master_addr)
    argv = [args.python, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
            f"--nnodes={args.nnodes}", f"--node-rank={args.node_rank}",
            f"--master-addr={args.master_addr}", f"--master-port={port}",
            "-m", "fairseq_cli.train", *fairseq_args]
    return [({}, argv)]


def run(commands) -> int:
    """Start every command; when one fails, stop the others; return the first failure's code.
    A single command replaces this process (exec), so signals reach fairseq (or torchrun) directly."""
    if len(commands) == 1:
        env, argv = commands[0]
        sys.stdout.flush()
        os.execvpe(argv[0], argv, {**os.environ, **env})
    procs = [subprocess.Popen(argv, env={**os.environ, **env}) for env, argv in commands]

    def stop_all(signum=signal.SIGTERM):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    def forward(signum, _frame):
        stop_all(signum)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        while any(p.poll() is None for p in procs):
            failed = [p for p in procs if p.poll() not in (None, 0)]
            if failed:
                status = failed[0].returncode
                print(f"launch_distributed: a rank exited with code {status}; stopping the others",
                      file=sys.stderr)
                stop_all()
                deadline = time.time() + 30
                while time.time() < deadline and any(p.poll() is None for p in procs):
                    time.sleep(0.2)
                stop_all(signal.SIGKILL)
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            p.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if status == 0:
        status = next((p.returncode for p in procs if p.returncode != 0), 0)
    return 128 - status if status < 0 else status


def main(argv=None) -> int:
    args = parse(argv)
    use_cpu = args.device == "cpu" or (args.device == "auto" and (
        has_flag(args.fairseq_args, "--cpu") or cuda_device_count() == 0))
    commands = cpu_commands(args) if use_cpu else gpu_commands(args)
    if args.dry_run:
        for env, argv in commands:
            print(" ".join([*(f"{k}={shlex.quote(v)}" for k, v in env.items()), *map(shlex.quote, argv)]))
        return 0
    return run(commands)


if __name__ == "__main__":
    sys.exit(main())
