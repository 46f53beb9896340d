"""The compiled parts of the search and of int8 mode: ``candidates.cpp`` (a step's candidates from the
logits: :func:`~fairseq_lrn.translate.candidates.select_candidates_reference`'s computation),
``search_step.cpp`` (the bookkeeping after it: :func:`~fairseq_lrn.translate.search.advance_reference`'s)
and ``int8_linear.cpp`` (int8 mode's linear layers:
:func:`~fairseq_lrn.translate.int8_linear.int8_linear_reference`'s), registered as
``torch.ops.fairseq_lrn.select_candidates``, ``torch.ops.fairseq_lrn.advance_search`` and
``torch.ops.fairseq_lrn.int8_linear``; and the fused parts of int8 mode's decoder step
(``fused_step.cpp``, ``decoder_step.cpp``: :mod:`~fairseq_lrn.translate.fused_ops`), which call
the others' C++ functions directly (``native_ops.h``).

At these sizes (beam 5 over an 8,088-word vocabulary, a few to a few hundred rows) the PyTorch
versions are dozens of small operations a step, each a few microseconds of dispatch, and PyTorch's
CPU top-k costs about 4 ns per score; the compiled ones are one pass each (BENCHMARKS.md,
2026-12-07: 1.17-1.23x the sentences per second at beam 5 and batch 32, 1.29-1.44x at batch 1).

They are built with the system's C++ compiler at the first use on a machine
(``torch.utils.cpp_extension``, about 20 s; cached in ``TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``) with ``-march=native``, the CPU capability in the cache name. Where
they cannot be built, :func:`native_available` says why, and the search runs its PyTorch versions.
"""

import logging
import os
from typing import Optional

logger = logging.getLogger(__name__)

SOURCES = [os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
           for name in ("candidates.cpp", "search_step.cpp", "int8_linear.cpp", "fused_step.cpp", "decoder_step.cpp")]
# -fno-trapping-math lets the compiler vectorize the exponentials (4x here); no -ffast-math: the
# logits may be -inf; -ffp-contract=off: no fused multiply-adds the PyTorch references do not do
# (int8_linear's outputs then equal its reference's bit for bit)
CFLAGS = ["-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]

_state = {"loaded": None, "error": ""}  # loaded: None until the first try in this process


def native_available() -> Optional[str]:
    """Build (first use on this machine) or load the compiled operators into this process; None
    when they are there, else why they could not be built (logged once as a warning)."""
    if _state["loaded"] is None:
        try:
            import torch
            from torch.utils.cpp_extension import load

            logger.info("loading the compiled search steps and int8 kernel (built by the C++ compiler on first use, ~30 s)")
            name = f"fairseq_lrn_search_v5_{torch.backends.cpu.get_cpu_capability().lower()}"
            load(name=name, sources=SOURCES, is_python_module=False, extra_cflags=CFLAGS)
            _state["loaded"] = True
        except Exception as error:  # a missing compiler surfaces as several exception types
            _state["loaded"], _state["error"] = False, f"{type(error).__name__}: {error}"
            logger.warning("the compiled search steps and int8 kernel could not be built; using PyTorch's "
                           "operations (slower: BENCHMARKS.md): %s", _state["error"])
    return None if _state["loaded"] else _state["error"]


def use_native(mode: str, device) -> bool:
    """Whether the search runs compiled: ``mode`` is ``auto`` (on the CPU where it builds),
    ``yes`` (it, or ValueError saying why not) or ``no``."""
    on_cpu = str(device).split(":")[0] == "cpu"
    if mode == "no" or (mode == "auto" and not on_cpu):
        return False
    if not on_cpu:
        raise ValueError("--native yes runs on the CPU only")
    why_not = native_available()
    if why_not is not None and mode == "yes":
        raise ValueError(f"--native yes: the compiled search steps and int8 kernel could not be built ({why_not})")
    return why_not is None
