"""The compiled steps of the search (fairseq_lrn/translate/native/: the candidate selection and the
bookkeeping) against their PyTorch versions (candidates.select_candidates_reference, fairseq's
arithmetic; search.advance_reference), and what happens where they cannot be built."""

import logging

import pytest
import torch

from fairseq_lrn.translate import native
from fairseq_lrn.translate.candidates import select_candidates_reference, select_native
from fairseq_lrn.translate.native import native_available, use_native


@pytest.fixture(scope="module")
def compiled():
    """The compiled operators, loaded (built on first use); a failure says why."""
    assert native_available() is None, native_available()


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


def test_native_selection_equals_pytorch_selection(compiled):
    """Same finite scores (to float rounding), the same -inf candidates, and the same (row, token)
    choices wherever the scores have no ties; the masks (pad, unk penalty, minimum and maximum
    length) and absent special columns included."""
    checked = 0
    for logits, scores, B, k, keywords, ties in _cases(300):
        expected_scores, expected_index = select_candidates_reference(logits.clone(), scores, B, k, **keywords)
        got_scores, got_index = select_native(logits, scores, B, k, **keywords)
        finite = torch.isfinite(expected_scores)
        assert torch.equal(finite, torch.isfinite(got_scores))
        torch.testing.assert_close(got_scores[finite], expected_scores[finite], rtol=0, atol=1e-5)
        if not ties:
            assert torch.equal(got_index[finite], expected_index[finite])
            checked += int(finite.sum())
    assert checked > 3000


def test_native_selection_breaks_ties_by_lowest_index(compiled):
    logits = torch.zeros(2, 6)  # one sentence, two rows, all equal
    scores, index = select_native(logits, torch.zeros(2), 1, 4, pad=1, unk=-1, unkpen=0.0, eos=2,
                                  forbid_eos=False, only_eos=None)
    assert index.tolist() == [[0, 2, 3, 4]]  # pad (1) is never a candidate with a finite score
    assert torch.allclose(scores, torch.full((1, 4), -torch.log(torch.tensor(6.0)).item()))


def test_selection_rejects_inconsistent_shapes(compiled):
    select = select_native
    with pytest.raises(RuntimeError, match="not a multiple of sentences"):
        select(torch.zeros(5, 10), None, 2, 3, pad=1, unk=3, unkpen=0.0, eos=2, forbid_eos=False, only_eos=None)
    with pytest.raises(RuntimeError, match="scores must be"):
        select(torch.zeros(4, 10), torch.zeros(3), 2, 3, pad=1, unk=3, unkpen=0.0, eos=2, forbid_eos=False,
               only_eos=None)


def test_steps_that_cannot_be_built_fall_back_or_are_refused(monkeypatch, caplog):
    """auto: PyTorch's operations, with a warning that says why; yes: an error that says why."""
    import torch.utils.cpp_extension

    def no_compiler(*args, **kwargs):
        raise RuntimeError("Error building extension: c++: command not found")

    monkeypatch.setattr(native, "_state", {"loaded": None, "error": ""})
    monkeypatch.setattr(torch.utils.cpp_extension, "load", no_compiler)
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        assert use_native("auto", "cpu") is False
    assert "could not be built" in caplog.text and "command not found" in caplog.text
    with pytest.raises(ValueError, match="--native yes.*command not found"):
        use_native("yes", "cpu")
    assert use_native("no", "cpu") is False and use_native("auto", "cuda") is False
    with pytest.raises(ValueError, match="CPU only"):
        use_native("yes", "cuda")


@pytest.mark.parametrize("options,drop_finished,restricted", [
    (dict(beam=5), True, False), (dict(beam=5), False, False), (dict(beam=1), True, False),
    (dict(beam=4, min_len=3, max_len_a=1.0, max_len_b=1, lenpen=0.5), True, False),
    (dict(beam=3, unkpen=1.0), True, True)], ids=["beam5", "beam5-masked", "greedy", "lengths-lenpen", "vocabulary"])
def test_native_search_equals_pytorch_search(trained_transformer_lrn, compiled, options, drop_finished, restricted):
    """Whole searches of a batch (a trained toy transformer_lrn, fp32): the same hypotheses, lengths
    and scores (to float rounding) with the compiled steps as with PyTorch's, with finished
    sentences dropped or masked, length limits, and a restricted vocabulary."""
    from fairseq.data import data_utils

    from fairseq_lrn.translate import Translator
    from fairseq_lrn.translate.search import SearchOptions, beam_search

    data_bin, checkpoint = trained_transformer_lrn
    translator = Translator.from_checkpoint(checkpoint, data_bin, quantize="none", native="no")
    lines = ["w1 w2", "w3 w4 w5 w6 w7 w8 w9", "w9 w8 w7 w6 w5 w4 w3 w2", "w5", "w2 w4 w6 w8 w1"]
    sources = translator.encode(lines)
    src_dict = translator.src_dict
    src_tokens = data_utils.collate_tokens(sources, src_dict.pad(), src_dict.eos(), left_pad=True)
    src_lengths = torch.tensor([s.numel() for s in sources])
    vocabulary = None
    if restricted:  # the special symbols and every other word
        V = len(translator.tgt_dict)
        vocabulary = torch.tensor(sorted(set(range(translator.tgt_dict.nspecial)) | set(range(4, V, 2))))
    results = [beam_search(translator.runner, src_tokens, src_lengths, SearchOptions(**options),
                           drop_finished=drop_finished, vocabulary=vocabulary, native=flag) for flag in (False, True)]
    reference, compiled_search = results
    assert torch.equal(compiled_search.lengths, reference.lengths)
    assert compiled_search.as_lists() == reference.as_lists()
    torch.testing.assert_close(compiled_search.scores, reference.scores, rtol=0, atol=1e-5)
    assert len({len(t) for t in reference.as_lists()}) > 1  # the sentences end at different steps
