"""scripts/evaluate.py and its library, fairseq_lrn.tools.scoring, against sacrebleu's own Python API on
the same files."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu
from sacremoses import MosesDetokenizer

from fairseq_lrn.tools import scoring

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "evaluate.py"

REFS = [
    "Die Stadt hat eine neue Brücke über den Fluss gebaut.",
    "Am Morgen spielen die Kinder im Garten.",
    "Das Baum-Haus ist klein, aber \"gemütlich\".",
    "Wir lesen im Winter gern alte Bücher.",
    "Der Markt öffnet heute um 8 Uhr.",
    "Die Leute auf der Straße hören Musik.",
    "Niemand weiß, wie lange die Nacht dauert.",
    "Die Regierung & die Opposition streiten über den Haushalt.",
]
# Moses-tokenized (escaped, aggressive hyphens) and BPE-segmented, as fairseq-generate prints them.
HYPS_BPE = [
    "Die Stadt hat eine neue Brü@@ cke über den Fluss gebaut .",
    "Am Morgen spielen Kinder in dem Garten .",
    "Das Baum @-@ Haus ist klein , aber &quot; gem@@ ütlich &quot; .",
    "Wir lesen gern alte Bücher im Winter .",
    "Der Markt öffnet heute um 9 Uhr .",
    "Die Leute auf der Stra@@ ße hören Musik .",
    "Keiner weiß , wie lange die Nacht dauert .",
    "Die Regierung &amp; die Opposition streiten über das Budget .",
]


def detokenized(bpe_lines):
    detok = MosesDetokenizer(lang="de")
    return [detok.detokenize((line + " ").replace("@@ ", "").split()) for line in bpe_lines]


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def generate_output(hyps, d_lines=None, seed=0):
    """fairseq-generate's output format: S/T/H/D/P lines per sentence, sentences out of order."""
    order = list(range(len(hyps)))
    random.Random(seed).shuffle(order)
    out = []
    for i in order:
        out += [f"S-{i}\tsource {i}", f"T-{i}\ttarget {i}", f"H-{i}\t-0.{i + 1}\t{hyps[i]}"]
        if d_lines is not None:
            out.append(f"D-{i}\t-0.{i + 1}\t{d_lines[i]}")
        out.append(f"P-{i}\t-0.1 -0.2")
    return out + ["Generate test with beam=4: BLEU4 = 12.34, 50.0/20.0/10.0/5.0 (BP=1.000, ratio=1.000)"]


def assert_same_as_sacrebleu(result, hyps, refs):
    bleu, chrf = sacrebleu.corpus_bleu(hyps, refs), sacrebleu.corpus_chrf(hyps, refs)
    assert result["bleu"]["score"] == bleu.score and result["chrf"]["score"] == chrf.score
    assert 0 < bleu.score < 100
    assert result["bleu"]["signature"].startswith(f"nrefs:{len(refs)}|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert result["chrf"]["signature"].startswith(f"nrefs:{len(refs)}|case:mixed|eff:yes|nc:6|nw:0|space:no|version:")


def test_plain_files_score_as_sacrebleu(tmp_path):
    hyps = detokenized(HYPS_BPE)
    result = scoring.score_file(write(tmp_path / "hyp", hyps), [write(tmp_path / "ref", REFS)], detok="none")
    assert result["read"] == "plain text"
    assert_same_as_sacrebleu(result, hyps, [REFS])


def test_several_references(tmp_path):
    hyps = detokenized(HYPS_BPE)
    ref2 = [r.replace("Kinder", "Jungen").replace("Budget", "Haushalt") for r in REFS]
    refs = [write(tmp_path / "ref1", REFS), write(tmp_path / "ref2", ref2)]
    result = scoring.score_file(write(tmp_path / "hyp", hyps), refs, detok="none")
    assert_same_as_sacrebleu(result, hyps, [REFS, ref2])


def test_generate_output_is_reordered_debped_and_detokenized(tmp_path):
    gen = write(tmp_path / "gen.out", generate_output(HYPS_BPE, d_lines=HYPS_BPE))
    result = scoring.score_file(gen, [write(tmp_path / "ref", REFS)], bpe="subword_nmt")
    assert result["read"] == "fairseq-generate D- lines" and result["sentences"] == len(REFS)
    expected = detokenized(HYPS_BPE)
    assert expected[2] == 'Das Baum-Haus ist klein, aber "gemütlich".'
    assert_same_as_sacrebleu(result, expected, [REFS])


def test_d_lines_are_preferred_and_h_lines_used_without_them(tmp_path):
    ref = write(tmp_path / "ref", REFS)
    detok = detokenized(HYPS_BPE)
    with_d = scoring.score_file(write(tmp_path / "d.out", generate_output(HYPS_BPE, d_lines=detok)), [ref],
                               detok="none")
    assert with_d["read"] == "fairseq-generate D- lines"
    assert_same_as_sacrebleu(with_d, detok, [REFS])
    only_h = scoring.score_file(write(tmp_path / "h.out", generate_output(HYPS_BPE)), [ref], bpe="subword_nmt")
    assert only_h["read"] == "fairseq-generate H- lines"
    assert_same_as_sacrebleu(only_h, detok, [REFS])


def test_sentencepiece_removal():
    assert scoring.remove_subwords("\u2581Das \u2581Baum - Ha us \u2581ist", "sentencepiece") == "Das Baum-Haus ist"
    assert scoring.remove_subwords("Brü@@ cke über", "subword_nmt") == "Brücke über"


def test_leftover_subword_marks_warn(tmp_path):
    result = scoring.score_file(write(tmp_path / "hyp", HYPS_BPE), [write(tmp_path / "ref", REFS)])
    assert any("--bpe subword_nmt" in w for w in result["warnings"])


def test_tokenized_bleu_splits_compounds():
    assert scoring.paper_tokenize(['Das Baum-Haus ist "klein".'], "de") == ['Das Baum ##AT##-##AT## Haus ist " klein " .']
    scores = scoring.tokenized_bleu(["das baum-haus ist klein ."], [["Das Baum-Haus ist klein ."]], "de")
    assert scores["uncased"] == pytest.approx(100.0) and scores["cased"] < 90.0


def _cli(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_command_line_json_and_report(tmp_path):
    gen = write(tmp_path / "gen.out", generate_output(HYPS_BPE, d_lines=HYPS_BPE))
    ref = write(tmp_path / "ref.de", REFS)
    proc = _cli("--hyp", gen, "--ref", ref, "--lang", "de", "--bpe", "subword_nmt", "--json")
    assert proc.returncode == 0, proc.stderr
    assert_same_as_sacrebleu(json.loads(proc.stdout), detokenized(HYPS_BPE), [REFS])

    proc = _cli("--hyp", gen, "--ref", ref, "--bpe", "subword_nmt", "--tokenized-bleu")
    assert proc.returncode == 0, proc.stderr
    bleu = sacrebleu.corpus_bleu(detokenized(HYPS_BPE), [REFS])
    assert f"sacreBLEU: {bleu.score:.2f}  signature: nrefs:1|case:mixed|eff:no|tok:13a" in proc.stdout
    assert "chrF: " in proc.stdout
    assert "tokenized BLEU (paper-comparable, not sacreBLEU): " in proc.stdout


@pytest.mark.parametrize("n_hyps", [len(REFS) - 1, len(REFS) + 2])
def test_line_count_mismatch_names_both_files(tmp_path, n_hyps):
    hyp = write(tmp_path / "hyp.txt", (detokenized(HYPS_BPE) * 2)[:n_hyps])
    ref = write(tmp_path / "ref.de", REFS)
    proc = _cli("--hyp", hyp, "--ref", ref)
    assert proc.returncode == 1
    assert f"{hyp} has {n_hyps} hypotheses (plain text) but {ref} has {len(REFS)} lines" in proc.stderr


def test_missing_sentence_ids_are_reported(tmp_path):
    gen = generate_output(HYPS_BPE, d_lines=HYPS_BPE)
    gen = [line for line in gen if not line.startswith(("H-3\t", "D-3\t"))]
    # the wording of fairseq_lrn.tools.generate_output.hypotheses_in_order, the one reader of such files
    with pytest.raises(scoring.EvalError, match=r"gen\.out: D- lines lack sentence ids 3 \(did fairseq-generate"):
        scoring.score_file(write(tmp_path / "gen.out", gen), [write(tmp_path / "ref", REFS)])
