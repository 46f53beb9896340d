"""The WMT14 English-German corpora: where they are published, and how to get plain text out of them."""

import re
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..atomic_files import atomic_outputs

from .io import PrepError, count_lines, open_text

URLS = {
    "training-parallel-europarl-v7.tgz": "http://statmt.org/wmt13/training-parallel-europarl-v7.tgz",
    "training-parallel-commoncrawl.tgz": "http://statmt.org/wmt13/training-parallel-commoncrawl.tgz",
    "training-parallel-nc-v9.tgz": "http://statmt.org/wmt14/training-parallel-nc-v9.tgz",
    "dev.tgz": "http://statmt.org/wmt14/dev.tgz",
    "test-full.tgz": "http://statmt.org/wmt14/test-full.tgz",
}


@dataclass(frozen=True)
class Corpus:
    """One parallel corpus: `members[lang]` is its path inside `archive`; SGML members are unwrapped."""

    name: str
    archive: str
    members: dict
    sgml: bool = False


TRAIN = (
    Corpus("europarl-v7.de-en", "training-parallel-europarl-v7.tgz",
           {"en": "training/europarl-v7.de-en.en", "de": "training/europarl-v7.de-en.de"}),
    Corpus("commoncrawl.de-en", "training-parallel-commoncrawl.tgz",
           {"en": "commoncrawl.de-en.en", "de": "commoncrawl.de-en.de"}),
    Corpus("news-commentary-v9.de-en", "training-parallel-nc-v9.tgz",
           {"en": "training/news-commentary-v9.de-en.en", "de": "training/news-commentary-v9.de-en.de"}),
)
DEV = {
    year: Corpus(year, "dev.tgz", {"en": f"dev/{year}.en", "de": f"dev/{year}.de"})
    for year in ("newstest2012", "newstest2013")
}
# For en->de the source is the English original side, the reference the German one.
TEST = Corpus("newstest2014", "test-full.tgz",
              {"en": "test-full/newstest2014-deen-src.en.sgm", "de": "test-full/newstest2014-deen-ref.de.sgm"},
              sgml=True)

_SEG = re.compile(r"<seg[^>]*>(.*?)</seg>", re.DOTALL)
_SPACES = re.compile(r"\s+")


def sgml_segments(text):
    """The <seg> contents of a WMT SGML file, whitespace collapsed (as sacrebleu reads them)."""
    return [_SPACES.sub(" ", seg).strip() for seg in _SEG.findall(text)]


def fetch(archive, raw_dir, download_dir):
    """Path of `archive`: taken from `raw_dir` when given (never downloaded), else downloaded once."""
    if raw_dir is not None:
        path = Path(raw_dir) / archive
        if not path.is_file():
            raise PrepError(f"missing archive {path} (expected the upstream file {URLS[archive]})")
        return path
    path = Path(download_dir) / archive
    if not path.is_file():
        with atomic_outputs(path) as [tmp]:
            _download(URLS[archive], tmp)
    return path


def _download(url, dest):
    from tqdm import tqdm

    try:
        with urllib.request.urlopen(url) as resp, open(dest, "wb") as out:
            size = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=f"download {url.rsplit('/', 1)[-1]}") as bar:
                for block in iter(lambda: resp.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
    except OSError as exc:
        raise PrepError(f"could not download {url}: {exc}") from exc


def extract(archive_path, corpora, out_dir):
    """Write `out_dir/<corpus.name>.<lang>` for every corpus of `corpora` found in `archive_path`.

    The archive is streamed once, to its end, so that a truncated file is always noticed.
    Lines are split on "\\n" only; SGML members become one segment per line. Each pair must align.
    """
    from tqdm import tqdm

    wanted = {member: (Path(out_dir) / f"{c.name}.{lang}", c.sgml)
              for c in corpora for lang, member in c.members.items()}
    found = set()
    with atomic_outputs(*(dest for dest, _ in wanted.values())) as tmps:
        tmp_of = dict(zip(wanted, tmps))
        try:
            with open(archive_path, "rb") as raw, \
                    tqdm.wrapattr(raw, "read", total=archive_path.stat().st_size,
                                  desc=f"extract {archive_path.name}") as f, \
                    tarfile.open(fileobj=f, mode="r|gz") as tar:
                for info in tar:
                    name = info.name.removeprefix("./")
                    if name in wanted and info.isfile():
                        _copy_member(tar.extractfile(info), tmp_of[name], sgml=wanted[name][1])
                        found.add(name)
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise PrepError(f"corrupt or truncated archive {archive_path}: {exc}; "
                            "replace it with a fresh copy of the upstream file") from exc
        missing = sorted(set(wanted) - found)
        if missing:
            raise PrepError(f"archive {archive_path} lacks {', '.join(missing)}")
        for c in corpora:
            n_en, n_de = (count_lines(tmp_of[c.members[lang]]) for lang in ("en", "de"))
            if n_en != n_de:
                raise PrepError(f"line counts differ in {archive_path}: {c.members['en']} has {n_en} lines, "
                                f"{c.members['de']} has {n_de}")


def _copy_member(src, dest, sgml):
    with open_text(dest, "w") as out:
        if sgml:
            for seg in sgml_segments(src.read().decode("utf-8", errors="replace")):
                out.write(seg + "\n")
        else:
            for line in src:
                out.write(line.decode("utf-8", errors="replace").rstrip("\r\n") + "\n")
