"""The candidates of one beam-search step, from the decoder's output logits.

:func:`select_candidates_reference` is what fairseq's ``SequenceGenerator`` computes, in PyTorch:
log-softmax in float32; ``pad`` never chosen; ``unk`` loses ``unkpen``; rows at their maximum
length may only end; before the minimum length EOS is forbidden; each row's cumulative score added;
then the ``k`` best (row, token) pairs of each sentence by ``torch.topk``. At beam 5 over 8,088
words that is five passes over the scores, and PyTorch's CPU top-k costs about 4 ns per score: 150 us
of a 1.5 ms step at batch 1 (BENCHMARKS.md, 2026-12-07).

:func:`native_selector` returns the same selection done by ``native/candidates.cpp`` in one pass
over the logits (a vectorized maximum and sum of exponentials per row, then a scan against the
row's k-th best logit), compiled with the system's C++ compiler on first use
(``torch.utils.cpp_extension``; cached in ``TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``). Its numbers differ from the reference only by float rounding (its own
exponential and summation order), and ties are broken by the lower (row, token) index; the tests
compare both.
"""

import logging
import os
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

logger = logging.getLogger(__name__)

NATIVE_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "native", "candidates.cpp")

# select(logits, scores, sentences, k, pad=, unk=, unkpen=, eos=, forbid_eos=, only_eos=)
Selector = Callable[..., Tuple[Tensor, Tensor]]


def select_candidates_reference(logits: Tensor, scores: Optional[Tensor], sentences: int, k: int, *,
                                pad: int, unk: int, unkpen: float, eos: int, forbid_eos: bool,
                                only_eos: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """The ``k`` best candidates of each of ``sentences`` sentences.

    ``logits (N, V)``: the output layer's scores of ``N = sentences * R`` rows (``R`` per sentence,
    consecutive); ``scores (N,)``: each row's cumulative log-probability (None: 0, the first step);
    ``pad``, ``unk``, ``eos``: their columns (-1: absent, e.g. from a shortlist); ``forbid_eos``:
    before the minimum length; ``only_eos (N,)`` bool: rows at their maximum length (None: none).
    Returns ``cand_scores (sentences, k)`` (cumulative log-probabilities, best first) and
    ``cand_index (sentences, k)`` (``r * V + token``)."""
    lprobs = F.log_softmax(logits, dim=-1, dtype=torch.float32)
    if pad >= 0:
        lprobs[:, pad] = -torch.inf
    if unkpen and unk >= 0:
        lprobs[:, unk] -= unkpen
    if only_eos is not None:
        not_eos = torch.ones(lprobs.size(1), dtype=torch.bool, device=lprobs.device)
        not_eos[eos] = False
        lprobs.masked_fill_(only_eos.unsqueeze(1) & not_eos, -torch.inf)
    if forbid_eos:
        lprobs[:, eos] = -torch.inf
    N, V = lprobs.shape
    if scores is not None:
        lprobs = lprobs.view(sentences, -1, V) + scores.view(sentences, -1, 1)
    return torch.topk(lprobs.reshape(sentences, -1), k=k)


_native_loaded: Optional[bool] = None  # None: not tried yet in this process
_native_error = [""]  # why it could not be built


def native_selector(required: bool = False) -> Optional[Selector]:
    """The compiled selection (built at the first call of the process, then loaded from the cache),
    or None where it cannot be built (no C++ compiler, say; logged once). ``required``: raise
    instead of returning None."""
    global _native_loaded
    if _native_loaded is None:
        try:
            from torch.utils.cpp_extension import load

            logger.info("loading the native candidate selection (built by the C++ compiler on first use, ~20 s)")
            # -march=native: built for this machine's CPU; the capability in the name keeps a cache
            # shared by machines of different CPUs apart
            name = f"fairseq_lrn_candidates_v1_{torch.backends.cpu.get_cpu_capability().lower()}"
            load(name=name, sources=[NATIVE_SOURCE], is_python_module=False,
                 extra_cflags=["-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math"])
            _native_loaded = True
        except Exception as error:  # a missing compiler surfaces as several exception types
            _native_loaded = False
            _native_error[0] = f"{type(error).__name__}: {error}"
            logger.warning("the native candidate selection could not be built; using PyTorch's "
                           "(slower: BENCHMARKS.md): %s", _native_error[0])
    if not _native_loaded:
        if required:
            raise ValueError(f"--native yes: the native candidate selection could not be built "
                             f"({_native_error[0]})")
        return None
    return _select_native


def _select_native(logits: Tensor, scores: Optional[Tensor], sentences: int, k: int, *, pad: int,
                   unk: int, unkpen: float, eos: int, forbid_eos: bool,
                   only_eos: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    return torch.ops.fairseq_lrn.select_candidates(logits.float(), scores, sentences, k, pad, unk,
                                                   float(unkpen), eos, forbid_eos, only_eos)


def selector_for(native: str, device: torch.device) -> Selector:
    """The selection to use: ``native`` is ``auto`` (the compiled one on the CPU where it builds),
    ``yes`` (it, or an error) or ``no`` (PyTorch's)."""
    if native == "no" or torch.device(device).type != "cpu":
        if native == "yes":
            raise ValueError("--native yes runs on the CPU only")
        return select_candidates_reference
    return native_selector(required=native == "yes") or select_candidates_reference
