"""fairseq-lrn-translate --shortlist (fairseq_lrn.translate.shortlist): IBM Model 1 finds the
translations, the file round-trips and bad files name the line, a search over the whole vocabulary
through the shortlist path equals the plain search, and shortlisted translations of trained toy
models (fp32 and int8)."""

import os
import subprocess
import sys

import pytest
import torch

from fairseq_lrn.translate import Translator
from fairseq_lrn.translate.search import SearchOptions, beam_search
from fairseq_lrn.translate.shortlist import (Shortlist, ShortlistError, build_shortlist, ibm_model1,
                                             load_shortlist, top_per_source)
from tests.cli_utils import REPO
from tests.models.test_fast_translate import fairseq_generate


def test_ibm_model1_finds_each_source_words_translation():
    """Source word s translates to target word s + 10; sentences mix random words, in random order."""
    g = torch.Generator().manual_seed(0)
    pairs = []
    for _ in range(400):
        source = torch.randint(0, 10, (int(torch.randint(2, 7, (1,), generator=g)),), generator=g)
        target = (source + 10)[torch.randperm(source.numel(), generator=g)]
        pairs.append((source, target))
    pair_src, pair_tgt, prob = ibm_model1(pairs, src_size=10, tgt_size=20, iterations=10)
    table = top_per_source(pair_src, pair_tgt, prob, src_size=10, k=2, fill=-1)
    assert table[:, 0].tolist() == list(range(10, 20))
    for s in range(10):  # t(. | s) is a distribution
        assert float(prob[pair_src == s].sum()) == pytest.approx(1.0)


def test_top_per_source_pads_short_lists():
    pair_src, pair_tgt = torch.tensor([0, 0, 0, 2]), torch.tensor([5, 6, 7, 5])
    prob = torch.tensor([0.2, 0.5, 0.3, 1.0], dtype=torch.float64)
    table = top_per_source(pair_src, pair_tgt, prob, src_size=3, k=2, fill=9)
    assert table.tolist() == [[6, 7], [9, 9], [5, 9]]


@pytest.fixture(scope="module")
def shortlist_file(trained, tmp_path_factory):
    """The shortlist of the toy reversal data-bin, written by scripts/build_shortlist.py."""
    _, data_bin, _ = trained
    path = tmp_path_factory.mktemp("shortlist") / "shortlist.txt"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "build_shortlist.py"), data_bin,
                           "-s", "src", "-t", "tgt", "--out", str(path), "--per-source", "3", "--frequent", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "from 1500 training pairs" in proc.stderr
    return str(path)


def test_built_shortlist_lists_the_reversal_translations(trained, shortlist_file):
    """On the reversal task a word translates to itself: it is first in its own list."""
    from fairseq.data import Dictionary

    _, data_bin, _ = trained
    src_dict = Dictionary.load(os.path.join(data_bin, "dict.src.txt"))
    tgt_dict = Dictionary.load(os.path.join(data_bin, "dict.tgt.txt"))
    shortlist = load_shortlist(shortlist_file, src_dict, tgt_dict)
    words = [w for w in src_dict.symbols[src_dict.nspecial:] if w in tgt_dict.indices]
    assert len(words) > 5
    assert all(tgt_dict[int(shortlist.table[src_dict.index(w), 0])] == w for w in words)
    assert shortlist.always.numel() == 4 and {tgt_dict.eos(), tgt_dict.unk()} <= set(shortlist.always.tolist())
    assert shortlist.info["per_source"] == "3" and shortlist.info["source"] == "src"
    built, _, _ = build_shortlist(data_bin, "src", "tgt", per_source=3, frequent=2)
    torch.testing.assert_close(shortlist.table, built.table)  # the file holds what was built


def _write(tmp_path, text):
    path = tmp_path / "s.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("text, message", [
    ("de la\n", "is not a fairseq-lrn shortlist"),
    ("# fairseq-lrn shortlist 1\n", "line 2: expected 'frequent<TAB>WORDS'"),
    ("# fairseq-lrn shortlist 1\nfrequent\tw1\nw1\tw2 nope\n", "line 3: the target word 'nope' is not in"),
    ("# fairseq-lrn shortlist 1\nfrequent\tw1\nnope\tw2\n", "line 3: the source word 'nope' is not in"),
    ("# fairseq-lrn shortlist 1\nfrequent\tw1\nw1\tw2\nw1\tw3\n", "line 4: the source word 'w1' is listed twice"),
    ("# fairseq-lrn shortlist 1\nfrequent\tw1\nw1 w2\tw3\n", "line 3: expected one source word"),
    ("# fairseq-lrn shortlist 1\nfrequent\tw1\nw1\n", "line 3: expected 'SOURCE_WORD<TAB>TARGET_WORDS'"),
])
def test_bad_shortlist_files_name_the_line(tmp_path, text, message):
    from tests.models.helpers import make_dictionary

    d = make_dictionary()
    with pytest.raises(ShortlistError, match=message):
        load_shortlist(_write(tmp_path, text), d, d)


def test_unreadable_shortlist_names_the_file(tmp_path):
    from tests.models.helpers import make_dictionary

    d = make_dictionary()
    with pytest.raises(ShortlistError, match="cannot read the shortlist"):
        load_shortlist(str(tmp_path / "missing.txt"), d, d)
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"# fairseq-lrn shortlist 1\nfrequent\tcaf\xe9\n")
    with pytest.raises(ShortlistError, match="is not UTF-8 text"):
        load_shortlist(str(path), d, d)


def test_round_trip_and_batch_vocabulary(tmp_path):
    from tests.models.helpers import make_dictionary

    d = make_dictionary()
    w = d.index
    table = torch.full((len(d), 2), d.eos())
    table[w("w1")] = torch.tensor([w("w2"), w("w3")])
    table[w("w4")] = torch.tensor([w("w5"), d.eos()])
    shortlist = Shortlist(table, torch.tensor(sorted([d.eos(), d.unk(), w("w9")])), {"source": "a"})
    path = str(tmp_path / "s.txt")
    shortlist.save(path, d, d)
    loaded = load_shortlist(path, d, d)
    assert loaded.info == {"source": "a"}
    src = torch.tensor([[d.pad(), w("w1"), d.eos()], [w("w4"), w("w1"), d.eos()]])
    expected = sorted({d.eos(), d.unk(), w("w9"), w("w2"), w("w3"), w("w5")})
    assert loaded.vocabulary(src).tolist() == expected == shortlist.vocabulary(src).tolist()


def _sources(data_bin, checkpoint, folder):
    sources, _ = fairseq_generate(data_bin, checkpoint, folder, "--beam", "1")
    return sources


@pytest.mark.parametrize("family", ["lrn", "transformer_lrn"])
def test_search_through_the_shortlist_path_over_every_word_is_exact(family, trained, trained_transformer_lrn,
                                                                     tmp_path):
    """vocabulary = every id: the restricted projection, the column mapping and the special
    symbols' columns give exactly the unrestricted search's hypotheses and scores (fp32)."""
    data_bin, checkpoint = trained[1:] if family == "lrn" else trained_transformer_lrn
    translator = Translator.from_checkpoint(checkpoint, data_bin, quantize="none")
    sources = [translator.encode([line])[0] for line in _sources(data_bin, checkpoint, tmp_path)[:16]]
    from fairseq.data import data_utils

    d = translator.src_dict
    src = data_utils.collate_tokens(sources, d.pad(), d.eos(), left_pad=translator.left_pad_source)
    lengths = torch.tensor([s.numel() for s in sources])
    options = SearchOptions(beam=4, unkpen=0.5)
    plain = beam_search(translator.runner, src, lengths, options)
    every = torch.arange(translator.runner.vocab_size)
    restricted = beam_search(translator.runner, src, lengths, options, vocabulary=every)
    assert restricted.as_lists() == plain.as_lists()
    torch.testing.assert_close(restricted.scores, plain.scores)
    assert translator.runner._restricted is None  # the runner scores the whole vocabulary again
    # without <s> (never produced; a trained model gives it almost no probability) every column is
    # one less than its id: the mapping back to ids, and the search's start from </s>, are exercised
    no_bos = every[every != translator.tgt_dict.bos()]
    shifted = beam_search(translator.runner, src, lengths, options, vocabulary=no_bos)
    assert shifted.as_lists() == plain.as_lists()
    torch.testing.assert_close(shifted.scores, plain.scores, atol=1e-3, rtol=0)


def test_shortlisted_translations_of_trained_models(trained, shortlist_file, tmp_path):
    """The toy lrn with a 3-word-per-source shortlist: the shortlist holds the reversed words, so
    at least 90% of the 40 test translations equal the full-vocabulary ones, in fp32 and in int8
    (a bound for this toy, not a BLEU measurement); the batch vocabulary is smaller than V."""
    _, data_bin, checkpoint = trained
    sources = _sources(data_bin, checkpoint, tmp_path)
    for quantize in ("none", "int8"):
        full = Translator.from_checkpoint(checkpoint, data_bin, quantize=quantize)
        short = Translator.from_checkpoint(checkpoint, data_bin, quantize=quantize, shortlist=shortlist_file)
        expected, got = full.translate(sources, beam=5), short.translate(sources, beam=5)
        agree = sum(a == b for a, b in zip(expected, got)) / len(expected)
        assert agree >= 0.9, (quantize, agree)
        src = torch.tensor([[short.src_dict.index(w) for w in sources[0].split()] + [short.src_dict.eos()]])
        assert short.shortlist.vocabulary(src).numel() < len(short.tgt_dict)


def test_command_refuses_a_shortlist_of_other_dictionaries(trained, tmp_path):
    _, data_bin, checkpoint = trained
    path = _write(tmp_path, "# fairseq-lrn shortlist 1\nfrequent\tnot-a-word\n")
    proc = subprocess.run([sys.executable, "-m", "fairseq_lrn.translate", data_bin, "--path", checkpoint,
                           "--shortlist", path], input="a b c\n", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"{path!r} line 2: the target word 'not-a-word' is not in the model's target dictionary" in proc.stderr
