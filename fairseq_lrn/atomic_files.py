"""Writing files so that a reader never sees a half-written one.

Every output of fairseq-lrn that a later step trusts (corpora, data-bins, checkpoint copies,
averaged checkpoints, reports) is written under a temporary name next to its final name and
renamed into place only once complete: an interrupted run leaves the old file (or none) and a
``.tmp`` that the next run overwrites, never a final-looking partial file.
"""

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator, List, Union

PathLike = Union[str, "os.PathLike[str]"]


def _fsync_path(path: PathLike) -> None:
    """Flush a file's (or, best effort, a folder's) contents to disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # not every file system lets a folder be fsynced
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_outputs(*paths: PathLike, suffix: str = ".tmp", durable: bool = False) -> Iterator[List[Path]]:
    """Yield one temporary path (``{path}{suffix}``, same folder) per final path; when the block
    completes, rename each temporary path over its final path (``os.replace``, atomic on POSIX).
    If the block raises, the temporary paths are removed and no final path is touched.

    ``durable``: also fsync each file before its rename and the folders after, so that the new
    contents survive a power loss (used for checkpoints). A temporary path may be a file or a
    folder (a folder replaces a final path that does not exist or is an empty folder)."""
    finals = [Path(p) for p in paths]
    temps = [Path(f"{p}{suffix}") for p in finals]
    for final, temp in zip(finals, temps):
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove(temp)  # a leftover of an interrupted run
    try:
        yield temps
        for temp, final in zip(temps, finals):
            if durable:
                _fsync_path(temp)
            os.replace(temp, final)
    except BaseException:
        for temp in temps:
            _remove(temp)
        raise
    if durable:
        for folder in {final.parent for final in finals}:
            _fsync_path(folder)


def _remove(path: Path) -> None:
    """Remove a file or a folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def atomic_copy(src_path: PathLike, dst_path: PathLike) -> bool:
    """Copy ``src_path`` to ``dst_path`` durably, ``dst_path`` never seen half-written (through
    ``{dst_path}.copy.tmp``). Returns True, as fairseq's ``PathManager.copy`` does."""
    with atomic_outputs(dst_path, suffix=".copy.tmp", durable=True) as (temp,):
        with open(src_path, "rb") as src, open(temp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    return True


def write_json(path: PathLike, obj, *, indent: int = 1) -> None:
    """Write ``obj`` as JSON to ``path`` through :func:`atomic_outputs` (the reports of the
    benchmarks and the race: a reader never sees half of one)."""
    import json

    with atomic_outputs(path) as (temp,):
        temp.write_text(json.dumps(obj, indent=indent) + "\n", encoding="utf-8")
