"""Reading fairseq-generate / fairseq-interactive output (the one parser used by the demo,
the benchmarks, ``scripts/evaluate.py`` and the tests).

The lines read are ``S-{id}\\t{source}``, ``T-{id}\\t{reference}``, ``H-{id}\\t{score}\\t{hypothesis}``
and ``D-{id}\\t{score}\\t{detokenized hypothesis}``; every other line (``P-``, logging) is ignored.
"""

import re
from typing import Dict, List, Optional, Tuple

from ..errors import GenerateOutputError

_LINE = re.compile(r"^([STHD])-(\d+)\t(.*)$", re.M)
#: fairseq-generate's summary: "Translated 1,266 sentences (23,456 tokens) in 12.3s (...)".
_TRANSLATED = re.compile(r"Translated ([\d,]+) sentences \(([\d,]+) tokens\) in ([\d.]+)s")

Sentences = Dict[int, Dict[str, str]]


def parse_generate_output(text: str) -> Sentences:
    """``{id: {"S": source, "T": reference, "H": hypothesis, "D": detokenized hypothesis}}``
    (only the kinds present; of several hypotheses of one id, as with ``--nbest``, the first)."""
    sentences: Sentences = {}
    for kind, idx, rest in _LINE.findall(text):
        if kind in "HD":  # H-/D- lines carry a score column before the text
            rest = rest.split("\t", 1)[1] if "\t" in rest else ""
        sentences.setdefault(int(idx), {}).setdefault(kind, rest)
    return sentences


def hypotheses_in_order(sentences: Sentences, *, what: str = "the output") -> Tuple[List[str], str]:
    """The hypotheses of sentences ``0 .. n-1`` in id order and the kind read (``"D"`` when any
    sentence has a D- line: fairseq's post-processed hypothesis, else ``"H"``).

    Raises :class:`~fairseq_lrn.errors.GenerateOutputError` naming ``what`` and the missing ids
    when an id in ``0 .. max`` has none (a partial run must not be scored as a whole one)."""
    kind = "D" if any("D" in s for s in sentences.values()) else "H"
    by_id = {idx: s[kind] for idx, s in sentences.items() if kind in s}
    if not by_id:
        return [], kind
    missing = sorted(set(range(max(by_id) + 1)) - set(by_id))
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise GenerateOutputError(f"{what}: {kind}- lines lack sentence ids {shown} (did "
                                  f"fairseq-generate run on the whole test set?)")
    return [by_id[i] for i in range(len(by_id))], kind


def decoding_seconds(text: str) -> Optional[float]:
    """The seconds of fairseq-generate's "Translated N sentences (M tokens) in Xs" line in
    ``text`` (its decoding time, model loading excluded), or None when there is none."""
    found = _TRANSLATED.search(text)
    return None if found is None else float(found[3])
