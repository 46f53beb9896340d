"""``--shortlist FILE``: a lexical shortlist for the output layer, as in Marian's CPU students
(Firefox Translations, bergamot): each batch's output projection and softmax run over the target
words likely to appear in its translations, not over the whole target vocabulary.

**Building** (:func:`build_shortlist`; ``scripts/build_shortlist.py``): IBM Model 1 translation
probabilities ``t(target word | source word)``, a NULL source word included, estimated by EM on
the binarized training split of a data-bin (the one the model was trained on). A source word's
list is its ``per_source`` most probable target words; every batch also gets the ``frequent``
most frequent target words, ``</s>`` and ``<unk>``.

**Decoding** (:class:`Shortlist`): for a batch, the union of its source words' lists and the
words every batch gets, sorted (:meth:`Shortlist.vocabulary`); the beam search scores only those
(log-softmax over them: the probabilities are renormalised over the shortlist, as Marian does).
Translations can therefore differ from full-vocabulary ones; the cost in BLEU is measured in
BENCHMARKS.md, which is why the shortlist is an option, not a default.

**The file** is UTF-8 text, read as data only (nothing in it runs or opens anything)::

    # fairseq-lrn shortlist 1<TAB>source en<TAB>target fr<TAB>per_source 50<TAB>frequent 100
    frequent<TAB>de la le ...
    SOURCE_WORD<TAB>TARGET_WORD TARGET_WORD ...      (one line per source word)

Words are spelled as in the data-bin's dictionaries; a word the dictionaries do not have is an
error naming the file and line (a shortlist built for another data-bin).
"""

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

MAGIC = "# fairseq-lrn shortlist 1"
DEFAULT_PER_SOURCE = 50
DEFAULT_FREQUENT = 100


class ShortlistError(ValueError):
    """A shortlist file or data-bin that cannot be used; the message names the file."""


class Shortlist:
    """Target word ids allowed per source word: ``table (V_src, per_source)`` (rows padded with
    ``</s>``) and ``always (M,)``, the ids every batch gets (the frequent words, ``</s>``,
    ``<unk>``)."""

    def __init__(self, table: Tensor, always: Tensor, info: Optional[Dict[str, str]] = None):
        self.table, self.always = table, always
        self.info = dict(info or {})

    def vocabulary(self, src_tokens: Tensor) -> Tensor:
        """The target ids a batch ``src_tokens (B, S)`` may produce: sorted, unique, ``(K,)``, on
        the device of ``src_tokens``."""
        table = self.table.to(src_tokens.device)
        allowed = torch.cat([table[src_tokens.reshape(-1)].reshape(-1), self.always.to(src_tokens.device)])
        return torch.unique(allowed)

    def word_lists(self, src_dict, tgt_dict) -> Tuple[List[str], List[Tuple[str, List[str]]]]:
        """The lists as words: the words every batch gets, and ``(source word, its target words)``
        for each source word that has a list."""
        eos = tgt_dict.eos()
        lists = [(src_dict[s], [tgt_dict[t] for t in row if t != eos]) for s, row in enumerate(self.table.tolist())]
        return [tgt_dict[i] for i in self.always.tolist()], [(source, words) for source, words in lists if words]

    def save(self, path: str, src_dict, tgt_dict) -> None:
        """Write the file format of the module docstring, atomically (never seen half-written)."""
        from ..atomic_files import atomic_outputs

        header = "\t".join([MAGIC, *(f"{k} {v}" for k, v in self.info.items())])
        always, lists = self.word_lists(src_dict, tgt_dict)
        lines = [header, "frequent\t" + " ".join(always), *(f"{source}\t{' '.join(words)}" for source, words in lists)]
        with atomic_outputs(path) as (temp,):
            temp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_shortlist(path: str, src_dict, tgt_dict) -> Shortlist:
    """Read a shortlist file (format: the module docstring) against the model's dictionaries.
    Raises ShortlistError naming the file and line for anything else."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise ShortlistError(f"cannot read the shortlist {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ShortlistError(f"the shortlist {path!r} is not UTF-8 text ({exc.reason})") from None
    if not lines or not lines[0].startswith(MAGIC):
        raise ShortlistError(f"{path!r} is not a fairseq-lrn shortlist (its first line is not "
                             f"{MAGIC!r}); build one with scripts/build_shortlist.py")
    info = dict(field.split(" ", 1) for field in lines[0].split("\t")[1:] if " " in field)

    def ids(words: str, dictionary, side: str, number: int) -> List[int]:
        out = []
        for word in words.split():
            index = dictionary.index(word)
            if index == dictionary.unk() and word != dictionary.unk_word:
                raise ShortlistError(f"{path!r} line {number}: the {side} word {word!r} is not in the "
                                     f"model's {side} dictionary (a shortlist of another data-bin?)")
            out.append(index)
        return out

    if len(lines) < 2 or not lines[1].startswith("frequent\t"):
        raise ShortlistError(f"{path!r} line 2: expected 'frequent<TAB>WORDS'")
    always = ids(lines[1].split("\t", 1)[1], tgt_dict, "target", 2)
    rows: Dict[int, List[int]] = {}
    for number, line in enumerate(lines[2:], start=3):
        if line.count("\t") != 1:
            raise ShortlistError(f"{path!r} line {number}: expected 'SOURCE_WORD<TAB>TARGET_WORDS'")
        source, targets = line.split("\t")
        if len(source.split()) != 1 or source != source.strip():
            raise ShortlistError(f"{path!r} line {number}: expected one source word, got {source!r}")
        (s,) = ids(source, src_dict, "source", number)
        if s in rows:
            raise ShortlistError(f"{path!r} line {number}: the source word {source!r} is listed twice")
        rows[s] = ids(targets, tgt_dict, "target", number)
    width = max([len(r) for r in rows.values()] + [1])
    table = torch.full((len(src_dict), width), tgt_dict.eos(), dtype=torch.long)
    for s, targets in rows.items():
        table[s, : len(targets)] = torch.tensor(targets, dtype=torch.long)
    specials = [tgt_dict.eos(), tgt_dict.unk()]
    return Shortlist(table, torch.tensor(sorted(set(always + specials)), dtype=torch.long), info)


def ibm_model1(pairs: Sequence[Tuple[Tensor, Tensor]], src_size: int, tgt_size: int,
               iterations: int = 5) -> Tuple[Tensor, Tensor, Tensor]:
    """IBM Model 1 by EM over sentence pairs of token ids (``(source (n,), target (m,))``; source
    id ``src_size`` is the NULL word, added to every sentence here). Returns the co-occurring
    pairs' ``source ids (P,)``, ``target ids (P,)`` and ``t(target | source) (P,)``."""
    null = torch.tensor([src_size])
    src_parts, tgt_parts, group_parts = [], [], []
    position = 0
    for source, target in pairs:
        source = torch.cat([source, null])
        n, m = source.numel(), target.numel()
        src_parts.append(source.repeat(m))  # for each target position, every source position
        tgt_parts.append(target.repeat_interleave(n))
        group_parts.append(torch.arange(position, position + m).repeat_interleave(n))
        position += m
    if not position:
        raise ShortlistError("the training split has no target words")
    src, tgt, group = torch.cat(src_parts), torch.cat(tgt_parts), torch.cat(group_parts)
    keys, pair = torch.unique(src * tgt_size + tgt, return_inverse=True)
    pair_src, pair_tgt = keys // tgt_size, keys % tgt_size
    del src, tgt
    prob = torch.ones(keys.numel(), dtype=torch.float64)
    for _ in range(iterations):
        weight = prob[pair]
        norm = torch.zeros(position, dtype=torch.float64).index_add_(0, group, weight)
        counts = torch.zeros_like(prob).index_add_(0, pair, weight / norm[group])
        totals = torch.zeros(src_size + 1, dtype=torch.float64).index_add_(0, pair_src, counts)
        prob = counts / totals[pair_src]
    return pair_src, pair_tgt, prob


def top_per_source(pair_src: Tensor, pair_tgt: Tensor, prob: Tensor, src_size: int, k: int,
                   fill: int) -> Tensor:
    """``(src_size, k)``: each source id's ``k`` most probable targets (ties: lower id first),
    rows padded with ``fill``."""
    order = torch.argsort(pair_tgt, stable=True)
    order = order[torch.argsort(-prob[order], stable=True)]
    order = order[torch.argsort(pair_src[order], stable=True)]  # by source, then probability
    src_sorted = pair_src[order]
    counts = torch.bincount(src_sorted, minlength=src_size + 1)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(order.numel()) - starts[src_sorted]
    keep = (rank < k) & (src_sorted < src_size)  # not the NULL word's list
    table = torch.full((src_size, k), fill, dtype=torch.long)
    table[src_sorted[keep], rank[keep]] = pair_tgt[order][keep]
    return table


def build_shortlist(data_bin: str, source_lang: str, target_lang: str, *,
                    per_source: int = DEFAULT_PER_SOURCE, frequent: int = DEFAULT_FREQUENT,
                    iterations: int = 5) -> Tuple[Shortlist, object, object]:
    """The shortlist of the training split of ``data_bin`` (see the module docstring): returns
    ``(shortlist, source dictionary, target dictionary)``. Raises ShortlistError naming what is
    missing."""
    from ..tools.data_bin import load_train_split

    if per_source < 1 or frequent < 0 or iterations < 1:
        raise ShortlistError(f"need per_source >= 1, frequent >= 0 and iterations >= 1 "
                             f"(got {per_source}, {frequent}, {iterations})")
    dicts, sides = load_train_split(data_bin, source_lang, target_lang, error=ShortlistError)
    src_dict, tgt_dict = dicts
    specials = [tgt_dict.bos(), tgt_dict.pad(), tgt_dict.eos()]

    def words(tokens: Tensor, dictionary) -> Tensor:  # without </s>, <pad>, <s>
        tokens = tokens.long()
        return tokens[(tokens != dictionary.eos()) & (tokens != dictionary.pad()) & (tokens != dictionary.bos())]

    pairs = [(words(sides[0][i], src_dict), words(sides[1][i], tgt_dict)) for i in range(len(sides[0]))]
    pair_src, pair_tgt, prob = ibm_model1(pairs, len(src_dict), len(tgt_dict), iterations)
    table = top_per_source(pair_src, pair_tgt, prob, len(src_dict), per_source, tgt_dict.eos())
    target_counts = torch.bincount(torch.cat([t for _, t in pairs]), minlength=len(tgt_dict))
    target_counts[specials] = -1
    common = torch.argsort(-target_counts, stable=True)[:frequent]
    common = common[target_counts[common] > 0]
    always = torch.unique(torch.cat([common, torch.tensor([tgt_dict.eos(), tgt_dict.unk()])]))
    info = {"source": source_lang, "target": target_lang, "per_source": per_source, "frequent": frequent,
            "ibm1_iterations": iterations, "training_pairs": len(pairs)}
    return Shortlist(table, always, {k: str(v) for k, v in info.items()}), src_dict, tgt_dict
