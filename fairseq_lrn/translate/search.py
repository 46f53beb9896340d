"""Batched beam search over fixed-shape tensors, with the semantics of fairseq's ``SequenceGenerator``.

fairseq's ``SequenceGenerator._generate`` (fairseq 0.12) rebuilds the batch whenever a sentence
finishes and keeps its finished hypotheses in Python lists. :func:`beam_search` makes the same
choices with a constant number of tensor operations per step and no Python loop over sentences
or hypotheses:

* every sentence keeps its ``beam`` rows (row ``b * beam + j``, as in fairseq), except at the
  first step, where its beams are one and the same hypothesis and the model scores one row per
  sentence (fairseq scores all ``beam`` and reads the first); a finished sentence's rows are
  dropped after the step where it finished (its encoder memory too), so no step computes rows
  of finished sentences (``drop_finished=False``: they are masked, and shapes stay fixed after
  the first step);
* the finished hypotheses of each sentence live in tensors ``(B, beam + 1, T)``: slot ``beam``
  takes the writes of candidates that are not kept, so keeping them is one masked scatter;
* the model side (:class:`~fairseq_lrn.translate.model_runner.ModelRunner`) runs the encoder
  once per batch and reorders only its small per-row decoder states.

What is the same as fairseq (``BeamSearch`` strategy, no prefix, no constraints, no LM):

* ``pad`` is never chosen; ``unk`` loses ``unkpen``; before ``min_len`` tokens EOS is forbidden;
  at the maximum length only EOS is allowed;
* the candidates of a step are the ``2 * beam`` best (token, beam) pairs by cumulative log-prob
  (only the first beam at step 0), chosen with ``torch.topk`` as fairseq does, or by the compiled
  selection (:mod:`~fairseq_lrn.translate.candidates`: the same choices up to float rounding, ties
  to the lower index);
* a candidate ending in EOS among the first ``beam`` of them is finished (in candidate order,
  while the sentence has fewer than ``beam``), scored ``sum of log-probs / (length + 1) **
  lenpen`` (the length counts the EOS); the ``beam`` best other candidates continue;
* a sentence is done when it has ``beam`` finished hypotheses or reaches its maximum length; the
  best finished hypothesis (by score, ties in finishing order) is the translation.

With a shortlist (``vocabulary``: the target ids a batch may produce), the runner scores only those
columns (its softmax is over them) and the search maps the chosen columns back to target ids;
everything else is the same.

Differences: fairseq's step that turns NaN log-probabilities into -inf is left out (a model that
computes NaN is broken either way), and the maximum length ``max_len_a * src_len + max_len_b`` uses each
sentence's own source length (tokens with ``</s>``). fairseq uses the longest source of its batch,
so the two agree whenever ``max_len_a`` is 0 (the default) or the batch is one sentence.
"""

import math
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import Tensor

from .candidates import select_candidates_reference, select_native as _select_native

NEG_INF = -math.inf


@dataclass(frozen=True)
class SearchOptions:
    """What fairseq-generate's flags of the same names mean (``--beam``, ``--max-len-a``,
    ``--max-len-b``, ``--min-len``, ``--lenpen``, ``--unkpen``)."""

    beam: int = 5
    max_len_a: float = 0.0
    max_len_b: int = 200
    min_len: int = 1
    lenpen: float = 1.0
    unkpen: float = 0.0

    def __post_init__(self):
        if self.beam < 1:
            raise ValueError(f"--beam must be >= 1, got {self.beam}")
        if self.min_len < 0:
            raise ValueError(f"--min-len must be >= 0, got {self.min_len}")


@dataclass
class Hypotheses:
    """The best hypothesis of each sentence of a batch: ``tokens (B, T)`` (valid up to
    ``lengths``, without the final EOS), ``lengths (B,)`` and the normalised ``scores (B,)``."""

    tokens: Tensor
    lengths: Tensor
    scores: Tensor

    def as_lists(self) -> List[List[int]]:
        """Each sentence's tokens as a list of ints (the final EOS not included)."""
        return [row[:n] for row, n in zip(self.tokens.tolist(), self.lengths.tolist())]


def max_lengths(source_lengths: List[int], options: SearchOptions, max_decoder_positions: int) -> List[int]:
    """Each sentence's maximum output length (EOS not counted), as fairseq computes it for a
    batch of that sentence alone: ``min(int(a * src_len + b), max_positions - 1)``."""
    lengths = [min(int(options.max_len_a * n + options.max_len_b), max_decoder_positions - 1)
               for n in source_lengths]
    shortest = min(lengths)
    if options.min_len > shortest:
        raise ValueError(f"--min-len {options.min_len} is larger than the maximum output length "
                         f"{shortest} (--max-len-a {options.max_len_a} x source length + --max-len-b "
                         f"{options.max_len_b}, at most the decoder's {max_decoder_positions} positions "
                         f"- 1); raise --max-len-b or lower --min-len")
    return lengths


@torch.inference_mode()
def beam_search(runner, src_tokens: Tensor, src_lengths: Tensor, options: SearchOptions, *,
                drop_finished: bool = True, vocabulary: Optional[Tensor] = None,
                native: bool = False) -> Hypotheses:
    """Translate one batch: ``src_tokens (B, S)`` (padded as the model expects), ``src_lengths
    (B,)`` (tokens with ``</s>``). ``runner``: a
    :class:`~fairseq_lrn.translate.model_runner.ModelRunner`. Returns the best hypothesis of each
    sentence (see the module docstring for the rules). ``drop_finished=False`` keeps every shape
    fixed until the whole batch is done (finished sentences masked, never dropped).
    ``vocabulary (K,)``: the sorted target ids the batch may produce (a shortlist, with ``</s>``;
    the softmax is over them); None: all. ``native``: each step's candidate selection and
    bookkeeping run compiled (:mod:`~fairseq_lrn.translate.native`; the caller loaded it), not as
    PyTorch operations."""
    kernels = (_select_native, _advance_native) if native else (select_candidates_reference, advance_reference)
    if vocabulary is None:
        return _beam_search(runner, src_tokens, src_lengths, options, drop_finished, None, *kernels)
    if not bool((vocabulary == runner.eos).any()):
        raise ValueError("the vocabulary of a restricted search must include </s>")
    runner.restrict_output(vocabulary)
    try:
        return _beam_search(runner, src_tokens, src_lengths, options, drop_finished, vocabulary, *kernels)
    finally:
        runner.restrict_output(None)


def _beam_search(runner, src_tokens: Tensor, src_lengths: Tensor, options: SearchOptions,
                 drop_finished: bool, vocabulary: Optional[Tensor], select, advance) -> Hypotheses:
    """:func:`beam_search`; with ``vocabulary``, the scores' columns are its ids (the runner's
    output already restricted) and the chosen columns are mapped back to target ids."""
    B = src_tokens.size(0)
    device = src_tokens.device
    # eos, pad, unk: the special symbols' columns of the scores (with a vocabulary: their positions
    # in it; pad and unk may be absent: -1); the token tensors hold target ids (runner.eos, runner.pad)
    if vocabulary is None:
        V, eos, pad, unk = runner.vocab_size, runner.eos, runner.pad, runner.unk
    else:
        V = vocabulary.numel()
        eos, pad, unk = (int(torch.searchsorted(vocabulary, t)) if bool((vocabulary == t).any()) else -1
                         for t in (runner.eos, runner.pad, runner.unk))
    beam = min(options.beam, V - 1 if pad >= 0 else V)  # as fairseq: pad is never selected
    cand_size = 2 * beam
    lengths = max_lengths(src_lengths.tolist(), options, runner.max_decoder_positions())
    T, shortest = max(lengths), min(lengths)

    memory = runner.encode(src_tokens, src_lengths)
    state = runner.start(memory, 1)  # one row per sentence for the first step; `beam` rows after it

    # finished hypotheses of every sentence of the batch: slot `beam` takes the writes of the
    # candidates that are not kept
    fin_tokens = torch.full((B, beam + 1, T + 1), runner.pad, dtype=torch.long, device=device)
    fin_lengths = torch.zeros(B, beam + 1, dtype=torch.long, device=device)
    fin_scores = torch.full((B, beam + 1), NEG_INF, device=device)
    # the sentences still decoded (all at first): their batch index, and per-sentence state
    active = _Active(torch.arange(B, device=device), torch.tensor(lengths, device=device), beam)
    fin_count = torch.zeros(B, dtype=torch.long, device=device)
    cands_to_ignore = torch.zeros(B, beam, dtype=torch.bool, device=device)
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    tokens = torch.full((B * beam, T + 2), runner.pad, dtype=torch.long, device=device)
    tokens[:, 0] = runner.eos  # fairseq starts every hypothesis with EOS
    scores = torch.zeros(B * beam, device=device)  # cumulative log-prob of each row

    for step in range(T + 1):
        n = active.count
        if step == 0:  # all beams are the same hypothesis: score one row per sentence
            logits, state = runner.step_logits(tokens[:n, :1], state, memory)  # (n, V) float
            row_max, row_scores = active.max_len, None
        else:
            logits, state = runner.step_logits(tokens[:, : step + 1], state, memory)  # (N, V) float
            row_max, row_scores = active.row_max, scores
        cand_scores, cand_flat = select(
            logits, row_scores, n, min(cand_size, logits.numel() // n - 1), pad=pad, unk=unk,
            unkpen=options.unkpen, eos=eos, forbid_eos=step < options.min_len,
            only_eos=row_max.le(step) if step >= shortest else None)
        done, keep, tokens, active_rows, scores, fin_count, cands_to_ignore, finished = advance(
            cand_scores, cand_flat, tokens, active.ids, active.max_len, fin_tokens, fin_lengths, fin_scores,
            fin_count, cands_to_ignore, finished, V, beam, eos, step, step == T, step >= shortest,
            float(options.lenpen), drop_finished, vocabulary)
        if done == n:
            break
        if keep.numel() < n:  # the finished sentences are dropped
            memory = runner.select_sentences(memory, keep)
            active = active.select(keep)
            shortest = int(active.max_len.min())
        # the state's rows: one per sentence after the first step (a candidate's row // beam)
        state = runner.reorder(state, active_rows if step > 0 else active_rows // beam)

    best = torch.sort(fin_scores[:, :beam], dim=1, descending=True, stable=True).indices[:, 0]
    rows = torch.arange(B, device=device)
    return Hypotheses(tokens=fin_tokens[rows, best], lengths=fin_lengths[rows, best],
                      scores=fin_scores[rows, best])


def advance_reference(cand_scores: Tensor, cand_index: Tensor, tokens: Tensor, ids: Tensor, max_len: Tensor,
                      fin_tokens: Tensor, fin_lengths: Tensor, fin_scores: Tensor, fin_count: Tensor,
                      cands_to_ignore: Tensor, finished: Tensor, V: int, beam: int, eos: int, step: int,
                      last_step: bool, check_max_len: bool, lenpen: float, drop_finished: bool,
                      vocabulary: Optional[Tensor]):
    """The bookkeeping of a search step after its candidates are chosen, in PyTorch (the compiled
    ``advance_search`` of ``native/search_step.cpp`` computes the same).

    ``n`` sentences still searched (``ids (n,)``: their index in the batch, ``max_len (n,)``);
    their candidates ``cand_scores``, ``cand_index (n, C)`` (``r * V + token``, ``r``: the row of
    the sentence, whose rows are ``tokens[i * beam: (i + 1) * beam]``, ``(n * beam, T + 2)``);
    ``fin_*``: the finished hypotheses of the whole batch (``(B, beam + 1, ...)``, written in
    place), ``fin_count (n,)``, ``cands_to_ignore (n, beam)``, ``finished (n,)``.

    Returns ``done`` (how many of the ``n`` are done; ``n`` ends the search) and, for the
    sentences that go on (all of them, or the unfinished ones when ``drop_finished``):
    ``keep (m,)`` (their index among the ``n``), ``tokens (m * beam, T + 2)`` with this step's
    tokens, ``rows (m * beam,)`` (the row each new row continues), ``scores (m * beam,)``, and
    their ``fin_count``, ``cands_to_ignore`` and ``finished``."""
    n, C = cand_scores.shape
    cand_rows = torch.div(cand_index, V, rounding_mode="trunc") + torch.arange(n, device=ids.device).unsqueeze(1) * beam
    cand_indices = cand_index.fmod(V)
    eos_mask = cand_indices.eq(eos) & cand_scores.ne(NEG_INF)
    eos_mask[:, :beam] &= ~cands_to_ignore
    ending = eos_mask[:, :beam] & ~finished.unsqueeze(1)
    finished = finished.clone()
    if ending.any():
        slot = fin_count.unsqueeze(1) + ending.long().cumsum(1) - 1
        kept = ending & slot.lt(beam)
        dest = torch.where(kept, slot, beam)
        where = (ids.unsqueeze(1), dest)
        fin_tokens[where + (slice(0, step),)] = tokens[cand_rows[:, :beam], 1: step + 1]
        fin_lengths[where] = step
        fin_scores[where] = cand_scores[:, :beam] / (step + 1) ** lenpen
        fin_count = fin_count + kept.sum(1)
        finished |= ending.any(1) & fin_count.eq(beam)
    if check_max_len:
        finished |= max_len.le(step)
    done = n if last_step else int(finished.sum())
    if done == n:
        return (done,) + (None,) * 7
    keep = torch.arange(n, device=ids.device)
    if drop_finished and done > 0:
        keep = (~finished).nonzero().squeeze(1)
        cand_rows, cand_scores, cand_indices, eos_mask, cands_to_ignore, fin_count = (
            t.index_select(0, keep) for t in (cand_rows, cand_scores, cand_indices, eos_mask,
                                              cands_to_ignore, fin_count))
        finished = finished.new_zeros(keep.numel())

    # the `beam` best candidates that do not end here go on (fairseq's active_hypos)
    eos_mask[:, :beam] |= cands_to_ignore
    active_mask = eos_mask.long() * C + torch.arange(C, device=ids.device)
    new_cands_to_ignore, active_hypos = torch.topk(active_mask, k=beam, dim=1, largest=False)
    rows = torch.gather(cand_rows, 1, active_hypos).view(-1)
    scores = torch.gather(cand_scores, 1, active_hypos).view(-1)
    tokens = tokens.index_select(0, rows)
    chosen = torch.gather(cand_indices, 1, active_hypos).view(-1)
    tokens[:, step + 1] = chosen if vocabulary is None else vocabulary[chosen]
    return done, keep, tokens, rows, scores, fin_count, new_cands_to_ignore.ge(C), finished


def _advance_native(*args):
    """:func:`advance_reference`, compiled (``native/search_step.cpp``)."""
    return torch.ops.fairseq_lrn.advance_search(*args)


class _Active:
    """The sentences a search still decodes: ``ids (n,)`` (their index in the batch),
    ``max_len (n,)``, and for their ``n * beam`` rows ``row_max (n * beam,)``."""

    def __init__(self, ids: Tensor, max_len: Tensor, beam: int):
        self.ids, self.max_len, self.beam = ids, max_len, beam
        self.count = ids.numel()
        self.row_max = max_len.repeat_interleave(beam)

    def select(self, keep: Tensor) -> "_Active":
        return _Active(self.ids.index_select(0, keep), self.max_len.index_select(0, keep), self.beam)
