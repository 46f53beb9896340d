"""Generated toy translation tasks (no download): for the demo, the tests and benchmarks.

``reordering``: an English-like source (subject, verb, object, optional adverb; adjectives
before nouns) is translated word by word into a made-up target language with the verb at
the end and adjectives after nouns, so a model must attend across the sentence::

    the big cat sees a small dog quickly  ->  le kato granda un hundo malgranda rapide vidas

``reversal``: the target is the source reversed (a minimal deterministic mapping).
"""

import os
import random
from typing import Callable, Dict, Tuple

from .atomic_files import atomic_outputs

NOUNS = {"cat": "kato", "dog": "hundo", "bird": "birdo", "child": "infano", "teacher": "instruisto",
         "farmer": "farmisto", "horse": "ĉevalo", "friend": "amiko", "doctor": "kuracisto",
         "king": "reĝo", "city": "urbo", "river": "rivero"}
ADJECTIVES = {"big": "granda", "small": "malgranda", "old": "maljuna", "young": "juna", "happy": "feliĉa",
              "sad": "malĝoja", "red": "ruĝa", "clever": "saĝa"}
VERBS = {"sees": "vidas", "likes": "ŝatas", "follows": "sekvas", "helps": "helpas", "finds": "trovas",
         "calls": "vokas", "knows": "konas", "visits": "vizitas"}
ADVERBS = {"quickly": "rapide", "often": "ofte", "today": "hodiaŭ", "again": "denove"}
DETERMINERS = {"the": "le", "a": "un"}

Pair = Tuple[str, str]


def _noun_phrase(rng: random.Random) -> Pair:
    det = rng.choice(list(DETERMINERS))
    noun = rng.choice(list(NOUNS))
    if rng.random() < 0.5:
        adj = rng.choice(list(ADJECTIVES))
        return f"{det} {adj} {noun}", f"{DETERMINERS[det]} {NOUNS[noun]} {ADJECTIVES[adj]}"
    return f"{det} {noun}", f"{DETERMINERS[det]} {NOUNS[noun]}"


def reordering_pair(rng: random.Random) -> Pair:
    """One (source, target) pair of the reordering task."""
    subj_s, subj_t = _noun_phrase(rng)
    obj_s, obj_t = _noun_phrase(rng)
    verb = rng.choice(list(VERBS))
    src, tgt = [subj_s, verb, obj_s], [subj_t, obj_t]
    if rng.random() < 0.4:
        adv = rng.choice(list(ADVERBS))
        src.append(adv)
        tgt.append(ADVERBS[adv])
    tgt.append(VERBS[verb])
    return " ".join(src), " ".join(tgt)


def reversal_pair(rng: random.Random, vocab: int = 12, min_len: int = 3, max_len: int = 7) -> Pair:
    """One pair of the reversal task over words ``w0 .. w{vocab-1}``."""
    words = [f"w{rng.randrange(vocab)}" for _ in range(rng.randint(min_len, max_len))]
    return " ".join(words), " ".join(reversed(words))


TASKS: Dict[str, Callable[[random.Random], Pair]] = {"reordering": reordering_pair, "reversal": reversal_pair}


def write_corpus(folder: str, task: str = "reordering", sizes: Dict[str, int] = None,
                 seed: int = 0, src: str = "src", tgt: str = "tgt") -> Dict[str, int]:
    """Write ``{split}.{src}`` / ``{split}.{tgt}`` for each split in ``sizes`` into ``folder``
    (each file via a temporary name, renamed when complete). Returns the sizes."""
    if task not in TASKS:
        raise ValueError(f"unknown toy task {task!r}; choose one of {sorted(TASKS)}")
    sizes = sizes or {"train": 6000, "valid": 200, "test": 200}
    rng = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    for split, n in sizes.items():
        pairs = [TASKS[task](rng) for _ in range(n)]
        for lang, column in ((src, 0), (tgt, 1)):
            with atomic_outputs(os.path.join(folder, f"{split}.{lang}")) as (temp,), \
                    open(temp, "w", encoding="utf-8") as f:
                f.writelines(pair[column] + "\n" for pair in pairs)
    return sizes
