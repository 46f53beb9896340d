"""The LRN recurrence and nothing else: tensors in, tensors out.

:func:`lrn_recurrence` is the one entry point, for LRN and (``output_gate=True``) oLRN;
it picks an implementation:

* ``fused``: Triton kernels (forward + backward), for CUDA tensors; on CPU tensors only
  under ``TRITON_INTERPRET=1`` (slow, for tests).
* ``cpu``: PyTorch with a hand-written backward (any device; the fast CPU path).
* ``reference``: the plain step-by-step loop with autograd (ground truth).
* ``auto``: ``fused`` for CUDA tensors of a dtype the kernels take (fp32, fp16, bf16) when
  Triton is importable, else ``cpu``.

Triton is imported only when the fused path is first used, so this package imports
without a GPU and without Triton; so does the fused kernels' launch heuristic,
:mod:`fairseq_lrn.ops.launch_config` (plain Python).
"""

import functools
import importlib.util
import os
from typing import Optional, Tuple

from torch import Tensor

from .cpu_lrn import lrn_recurrence_cpu
from .launch_config import FUSED_DTYPES
from .reference import ACTIVATIONS, lrn_cell, lrn_recurrence_reference, num_gates
from .step import lrn_step

IMPLS = ("auto", "fused", "cpu", "reference")

__all__ = ["ACTIVATIONS", "IMPLS", "lrn_cell", "lrn_recurrence", "lrn_recurrence_cpu",
           "lrn_recurrence_reference", "lrn_step", "num_gates", "resolve_impl", "triton_available"]


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """True when the ``triton`` package can be found (it is not imported here)."""
    return importlib.util.find_spec("triton") is not None


def resolve_impl(impl: str, tensor: Tensor) -> str:
    """Map ``impl`` (one of IMPLS) to the implementation that will run on ``tensor``.

    Raises ValueError for an unknown name and RuntimeError when ``fused`` cannot run."""
    if impl not in IMPLS:
        raise ValueError(f"unknown LRN implementation {impl!r}; choose one of {IMPLS}")
    if impl == "auto":
        fusable = tensor.is_cuda and tensor.dtype in FUSED_DTYPES
        return "fused" if fusable and triton_available() else "cpu"
    if impl == "fused":
        if not triton_available():
            raise RuntimeError("--lrn-impl fused needs Triton, which is not installed "
                               "(pip install triton, or use --lrn-impl cpu)")
        if not tensor.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError("--lrn-impl fused runs on CUDA tensors; on CPU it needs the Triton "
                               "interpreter (set TRITON_INTERPRET=1 before starting; slow, for tests)")
    return impl


def lrn_recurrence(pqr: Tensor, h0: Optional[Tensor] = None, mask: Optional[Tensor] = None,
                   activation: str = "identity", bidirectional: bool = False,
                   impl: str = "auto", output_gate: bool = False) -> Tuple[Tensor, Tensor]:
    """LRN recurrence over precomputed projections; oLRN with ``output_gate``.

    pqr ``(T, B, 3, D)`` = ``[p; q; r]`` per step (``(T, B, 4, D)`` = ``[p; q; r; s]`` with
    ``output_gate``: ``h = sigmoid(s - c) * c``, c the LRN cell), h0 ``(B, D)`` or None, mask ``(T, B)`` bool
    (True = padding) or None. Returns ``out (T, B, D)`` (zero at padded steps) and
    ``h_last (B, D)``, in pqr's dtype whatever the implementation: an h0 of another dtype (an
    fp32 state next to half-precision projections under autocast / ``--amp``) is cast to it.
    With ``bidirectional``, channels ``[D/2, D)`` walk time backwards.
    """
    impl = resolve_impl(impl, pqr)
    if h0 is not None and h0.dtype != pqr.dtype:
        h0 = h0.to(pqr.dtype)
    if impl == "fused":
        from .triton_lrn import lrn_recurrence_fused

        return lrn_recurrence_fused(pqr, h0, mask, activation, bidirectional, output_gate)
    if impl == "cpu":
        return lrn_recurrence_cpu(pqr, h0, mask, activation, bidirectional, output_gate)
    return lrn_recurrence_reference(pqr, h0, mask, activation, bidirectional, output_gate)
