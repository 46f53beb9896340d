"""What every benchmark family runs the same way: the start of a run (threads, load, scratch
folder), interleaved repeats (``for repeat: for system:``, so drift hits every system alike),
their summaries, the report's head (command, date, machine) and its end (wall time, load, the
printed tables, ``--json``, ``--plot``). A family supplies its systems, its measurement of one
system in one repeat, and its report (see :mod:`.decoding_speed` for a whole family in one
module)."""

import datetime
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
from typing import Callable, Dict, List, Optional, Tuple

from ..atomic_files import write_json
from .stats import summary


# ----------------------------------------------------------------------------- the machine

def machine_info(args) -> dict:
    """Platform, versions, CPU (and GPU, CUDA, Triton with ``args.device == "cuda"``)."""
    import fairseq
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    try:
        info["fairseq"] = fairseq.__version__
    except Exception:  # pragma: no cover
        pass
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    if getattr(args, "device", "cpu") == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        try:
            import triton

            info["triton"] = triton.__version__
        except ImportError:
            pass
    return info


def load_average() -> Optional[Tuple[float, float, float]]:
    """``os.getloadavg()``, or None where the platform has none."""
    return os.getloadavg() if hasattr(os, "getloadavg") else None


def quiet_fairseq() -> None:
    """fairseq logs every step and option at INFO, and importing it sets the root logger to
    DEBUG: raise both to WARNING (fairseq's before it is imported) and silence the warnings it
    and hydra print on every run. Called by the entry points' ``main``, never at import."""
    logging.getLogger("fairseq").setLevel(logging.WARNING)
    import fairseq  # noqa: F401

    logging.getLogger().setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    warnings.filterwarnings("ignore", category=FutureWarning, module="fairseq")
    warnings.filterwarnings("ignore", category=UserWarning, module="hydra")
    warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema")
    warnings.filterwarnings("ignore", message=".*mismatched key_padding_mask.*")


# ----------------------------------------------------------------------------- a run

def start_run(args, prefix: str = "lrn-bench-", load_note: str = "timings will be noisy") -> dict:
    """The start of a run: torch threads (``args.threads``), the load average (a warning when
    other jobs share a CPU run), the scratch folder (``args.work_dir`` or a temporary one).
    Returns ``{"t_start", "load_start", "work"}``."""
    import torch

    if isinstance(getattr(args, "threads", None), int):  # a family timing several thread counts sets its own
        torch.set_num_threads(args.threads)
    t_start, load_start = time.time(), load_average()
    cores = os.cpu_count() or 1
    if load_start and getattr(args, "device", "cpu") == "cpu" and load_start[0] > 0.5 * cores:
        print(f"!! load average {load_start[0]:.1f} on {cores} cores: {load_note}")
    work = args.work_dir or tempfile.mkdtemp(prefix=prefix)
    os.makedirs(work, exist_ok=True)
    return {"t_start": t_start, "load_start": load_start, "work": work}


def report_head(args, argv) -> dict:
    """The first keys of every report: the command line, the date (UTC), the machine."""
    return {"command": " ".join([os.path.basename(sys.argv[0])] + (argv if argv is not None else sys.argv[1:])),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(args)}


def interleaved(systems, repeats: int, measure: Callable[[int, str, object], dict],
                line: Callable[[str, dict], str] = None, after_repeat: Callable[[int, dict], None] = None
                ) -> Dict[str, List[dict]]:
    """``repeats`` interleaved repeats, ``for repeat: for system:``, of ``measure(r, name,
    system)`` (a dict of measurements); ``line(name, m)`` is printed after each with the repeat
    and its seconds, ``after_repeat(r, results so far)`` runs after every repeat. ``{system: [one dict per repeat]}``."""
    results: Dict[str, List[dict]] = {n: [] for n in systems}
    for r in range(repeats):
        for name, system in systems.items():
            t0 = time.perf_counter()
            m = measure(r, name, system)
            results[name].append(m)
            if line:
                print(f"   repeat {r + 1}/{repeats} {line(name, m)}  ({time.perf_counter() - t0:.1f} s)", flush=True)
        if after_repeat:
            after_repeat(r, results)
    return results


def summarize(runs: List[dict], keys=None) -> dict:
    """:func:`~.stats.summary` over the repeats of every key of the first repeat (or ``keys``);
    a key a repeat lacks is summarised over the repeats that have it."""
    return {k: summary([m[k] for m in runs if k in m]) for k in (keys if keys is not None else runs[0])}


def finish_report(report: dict, args, *, t_start: float, load_start, print_report, plot) -> dict:
    """The end of a benchmark run: record the load averages and wall time in ``report``, print
    it (``print_report``), write ``args.json`` and the ``args.plot`` PNG (``plot``); returns it."""
    if load_start:
        report["machine"]["loadavg_start"] = load_start
        report["machine"]["loadavg_end"] = os.getloadavg()
    report["wall_seconds"] = time.time() - t_start
    print_report(report)
    print(f"\n(total {report['wall_seconds']:.0f} s; load average at start "
          f"{report['machine'].get('loadavg_start')}, at end {report['machine'].get('loadavg_end')})")
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    if args.plot:
        plot(report, args.plot)
        print(f"wrote {args.plot}")
    return report
