"""The candidates of one beam-search step, from the decoder's output logits.

:func:`select_candidates_reference` is what fairseq's ``SequenceGenerator`` computes, in PyTorch:
log-softmax in float32; ``pad`` never chosen; ``unk`` loses ``unkpen``; rows at their maximum
length may only end; before the minimum length EOS is forbidden; each row's cumulative score added;
then the ``k`` best (row, token) pairs of each sentence by ``torch.topk``. At beam 5 over 8,088
words that is five passes over the scores, and PyTorch's CPU top-k costs about 4 ns per score: 150 us
of a 1.5 ms step at batch 1 (BENCHMARKS.md, 2026-12-07).

:func:`select_native` is the same selection done by ``native/candidates.cpp``
(:mod:`~fairseq_lrn.translate.native`) in one pass over the logits: a vectorized maximum of each
block of 32 logits and sum of exponentials per row; the k-th largest block maximum bounds the k-th
best logit, so only the few blocks that reach it are read again. Its numbers differ from the
reference only by float rounding (its own exponential and summation order), and ties go to the
lower (row, token) index; the tests compare both.
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


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


def select_native(logits: Tensor, scores: Optional[Tensor], sentences: int, k: int, *, pad: int,
                  unk: int, unkpen: float, eos: int, forbid_eos: bool,
                  only_eos: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """:func:`select_candidates_reference`, compiled (``native/candidates.cpp``; loaded by
    :func:`~fairseq_lrn.translate.native.native_available`)."""
    return torch.ops.fairseq_lrn.select_candidates(logits.float(), scores, sentences, k, pad, unk,
                                                   float(unkpen), eos, forbid_eos, only_eos)
