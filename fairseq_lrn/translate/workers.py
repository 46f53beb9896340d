"""``--workers N``: translate N batches at once, each in a worker process of one thread
(CTranslate2's ``inter_threads`` with ``intra_threads=1``).

Why processes: a beam-search step at the sizes this command runs is many small operations, and
PyTorch spreads one small operation over threads poorly (on 2 cores, beam 5: 2 threads gave
1.3-1.6x one thread at batch 32 and nothing at batch 1; two workers of one thread each 1.8-2.0x
at both: BENCHMARKS.md, 2026-12-07). Python threads would share the interpreter's lock with the
search loop, so workers are processes. They are forked from the process that loaded the model
(after its traced step was recorded), so they share its weights (copy-on-write) and start in
milliseconds; each runs whole batches and sends back their translations, which are
put back in input order. A task should be small (the translator sends a batch's number: the
batches themselves are inherited at the fork), as tensors sent to a worker are moved to shared
memory first (sending the source tensors, and translating the first batch itself, cost the
parent 1.9 s of CPU in a 4.7 s run of 600 sentences here; 0.09 s since).

Why one thread each: a forked child must not use OpenMP once the parent has (GNU OpenMP is not
fork-safe: two-thread workers forked from a process that had run a two-thread product hung
here), so workers run PyTorch with one thread and ``--threads`` > 1 is refused with them. The
parent keeps one thread while it has workers. Workers need the ``fork`` start method (Linux). A
worker that dies (killed, out of memory) is reported as an error naming its batch's first input
line, never waited for.
"""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator, List, Optional, Sequence, TypeVar

Task = TypeVar("Task")
Result = TypeVar("Result")

# the function a worker applies to each task: set in the parent just before the workers are forked
_work: Callable = None


class WorkerDied(RuntimeError):
    """A worker process ended without returning its batch's translations."""


def check_workers(workers: int, device: str, threads: Optional[int] = None) -> None:
    """Raise ValueError unless ``workers`` worker processes can translate on ``device`` (with
    ``threads`` threads each: None or 1 when ``workers`` > 1)."""
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if workers == 1:
        return
    if threads not in (None, 1):
        raise ValueError(f"--workers {workers} runs {workers} one-thread workers; --threads {threads} is for "
                         f"--workers 1 (on N cores, use --workers N)")
    if device != "cpu":
        raise ValueError("--workers runs CPU worker processes; on CUDA use --workers 1 and a larger --batch-size")
    if "fork" not in multiprocessing.get_all_start_methods():
        raise ValueError("--workers > 1 needs the 'fork' start method (Linux); use --workers 1 here")


def _start_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _run(task):
    return _work(task)


def map_in_workers(work: Callable[[Task], Result], tasks: Sequence[Task], *, workers: int,
                   describe: Callable[[Task], str] = str) -> Iterator[Result]:
    """``work(task)`` for every task, in ``workers`` forked one-thread processes,
    yielded in the order of ``tasks`` as they complete. ``describe(task)`` names a task in the
    error raised when a worker process dies. Exceptions raised by ``work`` reach the caller."""
    global _work
    _work = work
    pool = ProcessPoolExecutor(max_workers=max(1, min(workers, len(tasks))),
                               mp_context=multiprocessing.get_context("fork"),
                               initializer=_start_worker)
    try:
        futures: List = [pool.submit(_run, task) for task in tasks]
        for i, future in enumerate(futures):
            try:
                yield future.result()
            except BrokenProcessPool:
                raise WorkerDied(f"a --workers process died while translating {describe(tasks[i])} "
                                   f"(killed, or out of memory?)") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on an error: the batches not started are dropped
        _work = None
