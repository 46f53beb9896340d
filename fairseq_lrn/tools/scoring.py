"""Scoring translations the standard way: sacreBLEU and chrF with their signatures, on detokenized
text, and (labelled as such) the tokenized BLEU older papers report. Used by ``scripts/evaluate.py``,
the quality race and the decoding benchmark.

The hypotheses are fairseq-generate output or a plain file (one translation per line). From
fairseq-generate output the D- lines are used when present (fairseq's own post-processing of H-,
identical to H- unless generate ran with --tokenizer/--bpe), else the H- lines; both are put back in
sentence-id order and the first hypothesis of each id is kept. Then subword marks are removed
(``bpe``) and the text is Moses-detokenized (``detok``). References are plain files, never downloaded.

:func:`tokenized_bleu`: Moses-tokenized hypotheses and references, compound splitting ("a-b" ->
"a ##AT##-##AT## b"), multi-bleu-style scoring, cased and case-insensitive (the LRN paper's 26.26
is this BLEU). It is not sacreBLEU and not comparable to it.

sacrebleu and sacremoses are imported inside the functions (``import fairseq_lrn`` stays cheap).
"""

import re

from ..errors import GenerateOutputError
from .generate_output import hypotheses_in_order, parse_generate_output

_COMPOUND = re.compile(r"(\S)-(\S)")
TOKENIZED_LABEL = "tokenized BLEU (paper-comparable, not sacreBLEU)"


class EvalError(Exception):
    """Inputs that cannot be scored; the message names the files."""


def read_lines(path):
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line.rstrip("\r\n") for line in f]


def load_hypotheses(path):
    """Return (hypotheses, description of what was read) from fairseq-generate output or a plain file.

    fairseq-generate output is read by the project's one parser (fairseq_lrn.tools.generate_output);
    a file without H-/D- lines is plain text, one hypothesis a line."""
    lines = read_lines(path)
    try:
        hyps, kind = hypotheses_in_order(parse_generate_output("\n".join(lines)), what=str(path))
    except GenerateOutputError as exc:
        raise EvalError(str(exc)) from None
    if not hyps:
        return lines, "plain text"
    return hyps, f"fairseq-generate {kind}- lines"


def remove_subwords(line, bpe):
    """Undo subword segmentation the way fairseq's --post-process does."""
    if bpe == "subword_nmt":
        return (line + " ").replace("@@ ", "").rstrip()
    if bpe == "sentencepiece":
        return line.replace(" ", "").replace("\u2581", " ").strip()
    return line


def detokenize(lines, lang):
    from sacremoses import MosesDetokenizer

    detok = MosesDetokenizer(lang=lang)
    return [detok.detokenize(line.split()) for line in lines]


def paper_tokenize(lines, lang):
    """Moses-tokenize (unescaped) and split hyphenated compounds: "a-b" -> "a ##AT##-##AT## b"."""
    from sacremoses import MosesTokenizer

    tok = MosesTokenizer(lang=lang)
    return [_COMPOUND.sub(r"\1 ##AT##-##AT## \2", tok.tokenize(line, return_str=True, escape=False))
            for line in lines]


def tokenized_bleu(hyps, refs, lang):
    """Cased and case-insensitive BLEU of paper-tokenized text, scored like multi-bleu.perl."""
    from sacrebleu.metrics import BLEU

    hyps, refs = paper_tokenize(hyps, lang), [paper_tokenize(r, lang) for r in refs]
    return {case: BLEU(tokenize="none", smooth_method="none", lowercase=case == "uncased", force=True)
            .corpus_score(hyps, refs).score for case in ("cased", "uncased")}


def score_file(hyp_path, ref_paths, lang="de", bpe="none", detok="moses", with_tokenized_bleu=False):
    """Score `hyp_path` against the reference files; return a dict (scores, signatures, what was read)."""
    hyps, source = load_hypotheses(hyp_path)
    refs = [read_lines(p) for p in ref_paths]
    for path, ref in zip(ref_paths, refs):
        if len(ref) != len(hyps):
            raise EvalError(f"{hyp_path} has {len(hyps)} hypotheses ({source}) but {path} has {len(ref)} lines")
    hyps = [remove_subwords(h, bpe) for h in hyps]
    warnings = []
    if bpe == "none" and any("@@ " in h or "\u2581" in h for h in hyps):
        warnings.append(f"{hyp_path} still contains subword marks; pass --bpe subword_nmt or --bpe sentencepiece")
    if detok == "moses":
        hyps = detokenize(hyps, lang)
    from sacrebleu.metrics import BLEU, CHRF

    bleu, chrf = BLEU(), CHRF()
    b, c = bleu.corpus_score(hyps, refs), chrf.corpus_score(hyps, refs)
    result = {
        "hypotheses": str(hyp_path), "read": source, "sentences": len(hyps), "references": list(map(str, ref_paths)),
        "bpe": bpe, "detok": detok, "warnings": warnings,
        "bleu": {"score": b.score, "signature": str(bleu.get_signature()), "verbose": str(b)},
        "chrf": {"score": c.score, "signature": str(chrf.get_signature()), "verbose": str(c)},
    }
    if with_tokenized_bleu:
        result["tokenized_bleu"] = {"label": TOKENIZED_LABEL, **tokenized_bleu(hyps, refs, lang)}
    return result


def format_report(r):
    lines = [f"hypotheses: {r['hypotheses']} ({r['read']}, {r['sentences']} sentences; "
             f"bpe removal: {r['bpe']}, detokenizer: {r['detok']})",
             *(f"warning: {w}" for w in r["warnings"]),
             f"sacreBLEU: {r['bleu']['score']:.2f}  signature: {r['bleu']['signature']}",
             f"  {r['bleu']['verbose']}",
             f"chrF: {r['chrf']['score']:.2f}  signature: {r['chrf']['signature']}"]
    if "tokenized_bleu" in r:
        t = r["tokenized_bleu"]
        lines.append(f"{t['label']}: {t['cased']:.2f} cased, {t['uncased']:.2f} case-insensitive "
                     "(Moses tokenization, ##AT##-##AT## compound splitting)")
    return "\n".join(lines)


def sacrebleu_score(hyps, refs):
    """sacreBLEU (default settings) of detokenized ``hyps`` against one list of references."""
    from sacrebleu.metrics import BLEU

    return BLEU().corpus_score(list(hyps), [list(refs)]).score
