"""Tiny WMT14 En-De archives in the exact upstream layouts (inner paths, SGML test files), for offline tests."""

import io
import random
import tarfile
from dataclasses import dataclass, field

WORDS = {  # en -> de, so that every pair has a sane length ratio
    "the": "das", "house": "Haus", "is": "ist", "small": "klein", "and": "und", "garden": "Garten",
    "green": "grün", "we": "wir", "read": "lesen", "old": "alte", "books": "Bücher", "in": "im",
    "winter": "Winter", "city": "Stadt", "river": "Fluss", "bridge": "Brücke", "night": "Nacht",
    "morning": "Morgen", "people": "Leute", "street": "Straße", "market": "Markt", "tree-house": "Baum-Haus",
    "children": "Kinder", "play": "spielen", "music": "Musik", "quickly": "schnell", "today": "heute",
}

# Pairs the cleaning must drop (empty side, > 250 tokens, length ratio > 1.5) and one it must keep
# (ratio exactly 1.5). Words only, so that the token counts are those of the text.
DROPPED = [
    ("", "ein leerer Satz"),
    (" ".join(["house"] * 251), " ".join(["Haus"] * 251)),
    ("we read old books in the city and the garden today", "wir lesen"),
]
KEPT_AT_RATIO_LIMIT = ("we read books", "wir lesen")
# Lines with characters that would split a line in other tools, or that Moses removes.
TRICKY = [("a carriage\rreturn inside", "ein Wagen\rRücklauf drin"),
          ("a line\u2028separator", "ein Zeilen\u2028Trenner"),
          ("a bell\x07character", "ein Glocken\x07Zeichen")]


@dataclass
class TinyWmt14:
    """What was written, for the tests to check the preparation against."""

    train: dict = field(default_factory=dict)  # corpus name -> list of (en, de)
    dev: dict = field(default_factory=dict)    # newstest2012/2013 -> list of (en, de)
    test: list = field(default_factory=list)   # newstest2014 (en, de) segments as written in the SGML


def _pairs(rng, n):
    pairs = []
    for _ in range(n):
        en = rng.choices(list(WORDS), k=rng.randint(3, 12))
        punct = rng.choice(["", ".", ",", "!"])
        pairs.append((" ".join(en).capitalize() + punct, " ".join(WORDS[w] for w in en).capitalize() + punct))
    return pairs


def _text(lines):
    return ("".join(line + "\n" for line in lines)).encode("utf-8")


def _sgml(root, attrs, docs):
    out = [f"<{root} {attrs}>"]
    for d, segs in enumerate(docs):
        out += [f'<doc sysid="ref" docid="{d}-tiny" genre="news" origlang="en">', "<p>"]
        out += [f'<seg id="{i}">{s}</seg>' for i, s in enumerate(segs, 1)]
        out += ["</p>", "</doc>"]
    return _text(out + [f"</{root}>"])


def write_tgz(path, members):
    """A gzipped tar with `members` (inner path -> bytes) and their parent directory entries."""
    with tarfile.open(path, "w:gz") as tar:
        dirs = sorted({name.rsplit("/", 1)[0] for name in members if "/" in name})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))


def build_raw_dir(raw_dir, seed=0):
    """Write the five upstream archives into `raw_dir`; return what they contain."""
    rng = random.Random(seed)
    tiny = TinyWmt14()
    tiny.train["europarl-v7.de-en"] = _pairs(rng, 80)
    tiny.train["commoncrawl.de-en"] = _pairs(rng, 40) + TRICKY + _pairs(rng, 40)
    tiny.train["news-commentary-v9.de-en"] = _pairs(rng, 40) + DROPPED + [KEPT_AT_RATIO_LIMIT] + _pairs(rng, 40)
    tiny.dev = {"newstest2012": _pairs(rng, 15), "newstest2013": _pairs(rng, 20)}
    test = _pairs(rng, 24)
    tiny.test = [(f"  {en}  ", de) if i == 3 else (en, de) for i, (en, de) in enumerate(test)]

    def sides(pairs):
        return _text(p[0] for p in pairs), _text(p[1] for p in pairs)

    ep_en, ep_de = sides(tiny.train["europarl-v7.de-en"])
    write_tgz(raw_dir / "training-parallel-europarl-v7.tgz", {
        "training/europarl-v7.de-en.de": ep_de, "training/europarl-v7.de-en.en": ep_en,
        "training/europarl-v7.fr-en.fr": b"une autre langue\n", "training/europarl-v7.fr-en.en": b"another pair\n"})
    cc_en, cc_de = sides(tiny.train["commoncrawl.de-en"])
    write_tgz(raw_dir / "training-parallel-commoncrawl.tgz", {
        "commoncrawl.cs-en.cs": b"jiny jazyk\n", "commoncrawl.cs-en.en": b"another language\n",
        "commoncrawl.de-en.annotation": b"http://example.org\n" * len(tiny.train["commoncrawl.de-en"]),
        "commoncrawl.de-en.de": cc_de, "commoncrawl.de-en.en": cc_en})
    nc_en, nc_de = sides(tiny.train["news-commentary-v9.de-en"])
    write_tgz(raw_dir / "training-parallel-nc-v9.tgz", {
        "training/news-commentary-v9.cs-en.cs": b"jiny\n", "training/news-commentary-v9.cs-en.en": b"other\n",
        "training/news-commentary-v9.de-en.de": nc_de, "training/news-commentary-v9.de-en.en": nc_en})
    dev = {"dev/newstest2011.en": b"older\n", "dev/newstest2013.fr": b"autre\n",
           "dev/newstest2013-src.en.sgm": _sgml("srcset", 'setid="newstest2013" srclang="any"', [["x"]])}
    for year, pairs in tiny.dev.items():
        dev[f"dev/{year}.en"], dev[f"dev/{year}.de"] = sides(pairs)
    write_tgz(raw_dir / "dev.tgz", dev)
    docs_en = [[en for en, _ in tiny.test[:10]], [en for en, _ in tiny.test[10:]]]
    docs_de = [[de for _, de in tiny.test[:10]], [de for _, de in tiny.test[10:]]]
    write_tgz(raw_dir / "test-full.tgz", {
        "test-full/newstest2014-deen-src.de.sgm": _sgml("srcset", 'setid="newstest2014" srclang="any"', docs_de),
        "test-full/newstest2014-deen-src.en.sgm": _sgml("srcset", 'setid="newstest2014" srclang="any"', docs_en),
        "test-full/newstest2014-deen-ref.de.sgm":
            _sgml("refset", 'setid="newstest2014" srclang="any" trglang="de"', docs_de),
        "test-full/newstest2014-deen-ref.en.sgm":
            _sgml("refset", 'setid="newstest2014" srclang="any" trglang="en"', docs_en),
        "test-full/newstest2014-fren-src.en.sgm": _sgml("srcset", 'setid="newstest2014" srclang="any"', [["x"]])})
    return tiny
