"""The machine a benchmark ran on, and the load on it."""

import os
import platform
from typing import Optional, Tuple


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
    if args.device == "cuda":
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
