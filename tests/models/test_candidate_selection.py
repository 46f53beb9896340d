"""The compiled candidate selection of the search (fairseq_lrn/translate/native/candidates.cpp)
against PyTorch's (candidates.select_candidates_reference, fairseq's arithmetic), and what happens
where it cannot be built."""

import logging

import pytest
import torch

from fairseq_lrn.translate import candidates
from fairseq_lrn.translate.candidates import native_selector, select_candidates_reference, selector_for


def _cases(count: int):
    """Random selection problems: (logits, scores, sentences, k, keyword arguments, has_ties)."""
    g = torch.Generator().manual_seed(0)

    def draw(low, high):
        return int(torch.randint(low, high, (), generator=g))

    for trial in range(count):
        B, R = draw(1, 6), draw(1, 6)
        V = 8088 if trial % 10 == 0 else draw(4, 300)
        k = min(draw(1, 12), R * V - 1)
        logits = torch.randn(B * R, V, generator=g) * float(torch.rand((), generator=g) * 10)
        ties = trial % 3 == 0
        if ties:
            logits = logits.round()
        scores = None if R == 1 else torch.randn(B * R, generator=g)
        pad = draw(-1, 2)  # -1: not in the vocabulary (a shortlist without it)
        keywords = dict(pad=pad, unk=3, unkpen=float(draw(0, 2)), eos=2, forbid_eos=trial % 4 == 1,
                        only_eos=(torch.rand(B * R, generator=g) < 0.3) if trial % 2 else None)
        yield logits, scores, B, k, keywords, ties


def test_native_selection_equals_pytorch_selection():
    """Same finite scores (to float rounding), the same -inf candidates, and the same (row, token)
    choices wherever the scores have no ties; the masks (pad, unk penalty, minimum and maximum
    length) and absent special columns included."""
    select = native_selector(required=True)
    checked = 0
    for logits, scores, B, k, keywords, ties in _cases(300):
        expected_scores, expected_index = select_candidates_reference(logits.clone(), scores, B, k, **keywords)
        got_scores, got_index = select(logits, scores, B, k, **keywords)
        finite = torch.isfinite(expected_scores)
        assert torch.equal(finite, torch.isfinite(got_scores))
        torch.testing.assert_close(got_scores[finite], expected_scores[finite], rtol=0, atol=1e-5)
        if not ties:
            assert torch.equal(got_index[finite], expected_index[finite])
            checked += int(finite.sum())
    assert checked > 3000


def test_native_selection_breaks_ties_by_lowest_index():
    logits = torch.zeros(2, 6)  # one sentence, two rows, all equal
    scores, index = native_selector(required=True)(logits, torch.zeros(2), 1, 4, pad=1, unk=-1, unkpen=0.0,
                                                   eos=2, forbid_eos=False, only_eos=None)
    assert index.tolist() == [[0, 2, 3, 4]]  # pad (1) is never a candidate with a finite score
    assert torch.allclose(scores, torch.full((1, 4), -torch.log(torch.tensor(6.0)).item()))


def test_selection_rejects_inconsistent_shapes():
    select = native_selector(required=True)
    with pytest.raises(RuntimeError, match="not a multiple of sentences"):
        select(torch.zeros(5, 10), None, 2, 3, pad=1, unk=3, unkpen=0.0, eos=2, forbid_eos=False, only_eos=None)
    with pytest.raises(RuntimeError, match="scores must be"):
        select(torch.zeros(4, 10), torch.zeros(3), 2, 3, pad=1, unk=3, unkpen=0.0, eos=2, forbid_eos=False,
               only_eos=None)


def test_a_selection_that_cannot_be_built_falls_back_or_is_refused(monkeypatch, caplog):
    """auto: PyTorch's selection, with a warning that says why; yes: an error that says why."""
    import torch.utils.cpp_extension

    def no_compiler(*args, **kwargs):
        raise RuntimeError("Error building extension: c++: command not found")

    monkeypatch.setattr(candidates, "_native_loaded", None)
    monkeypatch.setattr(torch.utils.cpp_extension, "load", no_compiler)
    with caplog.at_level(logging.WARNING, logger=candidates.__name__):
        assert selector_for("auto", torch.device("cpu")) is select_candidates_reference
    assert "could not be built" in caplog.text and "command not found" in caplog.text
    with pytest.raises(ValueError, match="--native yes.*command not found"):
        selector_for("yes", torch.device("cpu"))
    assert selector_for("no", torch.device("cpu")) is select_candidates_reference
    with pytest.raises(ValueError, match="CPU only"):
        selector_for("yes", torch.device("cuda"))
