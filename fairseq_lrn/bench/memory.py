"""Peak training memory of a system, measured in a fresh process (nothing else allocated there).

:func:`peak_memory_in_fresh_process` (the benchmark's side) writes the system's argv and batches
to files and runs this module (``python -m fairseq_lrn.bench.memory SPEC.json``) in a new interpreter, where
:func:`measure_peak_memory` builds the system, trains on the batches and prints the peak.
"""

import gc
import json
import os
import resource
import subprocess
import sys
from typing import List, Optional

import torch

from .shapes import rnn_flags, transformer_flags

# The folder holding this fairseq_lrn: the fresh process imports the same package.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MARK = "MEMORY_PROBE "

# Arguments appended to a system's argv to make a throw-away miniature of it (same code paths).
MINIATURE = {"rnn": rnn_flags(8, 8), "transformer": transformer_flags(8, 8, 2)}


def miniature_argv(argv: List[str]) -> List[str]:
    arch = argv[argv.index("--arch") + 1]
    return argv + MINIATURE["transformer" if arch.startswith("transformer") else "rnn"]


def _proc_status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_peak_memory(spec_path: str) -> dict:
    """In this (fresh) process: build one system, run its training steps and return its peak
    memory in MiB. A miniature of the system runs first, so that what the first step imports
    and initialises lazily (about 190 MB of RSS on CPU) is not counted.

    CUDA: ``torch.cuda.max_memory_allocated`` (nothing else is on the GPU in this process).
    CPU: peak RSS while building and training (VmHWM after reset through /proc/self/clear_refs,
    else ru_maxrss) minus the RSS just before the model was built. Both count parameters,
    gradients, Adam state and activations."""
    from .systems import System

    with open(spec_path) as f:
        spec = json.load(f)
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    batches = torch.load(spec["batches"], weights_only=True)
    cuda = spec["device"] == "cuda"
    mini = System("miniature", miniature_argv(spec["argv"]))
    mini.train_steps(batches[:1])
    mini.close()
    del mini
    gc.collect()
    method = "torch.cuda.max_memory_allocated"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base_kb = torch.cuda.memory_allocated() // 1024
    else:
        reset = reset_peak_rss()
        base_kb = _proc_status_kb("VmRSS") or 0
        method = "peak RSS delta (" + ("VmHWM after clear_refs" if reset else "ru_maxrss") + ")"
    system = System(spec["name"], spec["argv"])
    system.train_steps(batches)
    if cuda:
        peak_kb = torch.cuda.max_memory_allocated() // 1024
    else:
        peak_kb = _proc_status_kb("VmHWM") if reset else None
        if peak_kb is None:
            peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_mib": (peak_kb - base_kb) / 1024, "method": method}


def peak_memory_in_fresh_process(system_name: str, argv: List[str], batches, device: str, threads,
                                 work: str) -> dict:
    """Peak training memory of one system on its largest batch (twice: Adam state exists in the
    second update), measured by :func:`measure_peak_memory` in a new Python process."""
    big = max(batches, key=lambda b: b["net_input"]["src_tokens"].numel() + b["target"].numel())
    path = os.path.join(work, f"probe-{system_name}.pt")
    torch.save([big, big], path)
    spec = os.path.join(work, f"probe-{system_name}.json")
    with open(spec, "w") as f:
        json.dump({"name": system_name, "argv": argv, "batches": path, "device": device,
                   "threads": threads}, f)
    pythonpath = os.pathsep.join([PACKAGE_ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, "-m", "fairseq_lrn.bench.memory", spec], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": pythonpath})
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    return {"peak_mib": None, "method": "probe failed: " + (proc.stderr or "")[-500:]}


def main(argv: Optional[List[str]] = None) -> None:
    from .harness import quiet_fairseq

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python -m fairseq_lrn.bench.memory SPEC.json")
    quiet_fairseq()
    print(MARK + json.dumps(measure_peak_memory(argv[0])))


if __name__ == "__main__":
    main()
