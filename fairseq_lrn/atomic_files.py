"""Writing files so that a reader never sees a half-written one.

Every output of fairseq-lrn that a later step trusts (corpora, data-bins, checkpoint copies,
averaged checkpoints, reports) is written under a temporary name next to its final name and
renamed into place only once complete. The temporary name is this process's own
(``{name}.lrn-{host}-{pid}-{random}{suffix}``), so nothing that another process or the user
made is ever overwritten or deleted. A folder that replaces an existing folder is swapped in
with one atomic exchange (Linux ``renameat2(RENAME_EXCHANGE)``); where the file system cannot
exchange, the old folder is first renamed aside (``{name}.lrn-...-old``) and the next call for
the same path puts it back if the process was killed in between. So a kill at any point leaves
the old or the new complete output under the final name (or, without the exchange, the old one
renamed aside until the next call), never a half-written one, and the next call for that path
removes what a killed run of this machine left (:func:`recover`).
"""

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import socket
import sys
import zlib
from pathlib import Path
from typing import Iterator, List, Union

PathLike = Union[str, "os.PathLike[str]"]

#: What an owned temporary name adds to the final name: ``.lrn-{host}-{pid}-{random}``.
_OWNED = re.compile(r"\.lrn-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-[0-9a-f]{8}(?P<rest>.*)")
_ASIDE = "-old"  # the ending of an old folder renamed aside (the swap without an exchange)


def _host_tag() -> str:
    """This machine, as 8 hex digits (temporary names on a shared file system stay apart)."""
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def owned_name(final: PathLike, suffix: str = ".tmp") -> Path:
    """A name next to ``final`` that only this call of this process uses:
    ``{final}.lrn-{host}-{pid}-{random}{suffix}``."""
    return Path(f"{final}.lrn-{_host_tag()}-{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` (of this machine) still runs."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # runs, as another user
        return True
    return True


def recover(final: PathLike) -> None:
    """Finish what a killed :func:`atomic_outputs` for ``final`` left next to it: an old folder
    renamed aside comes back if ``final`` is missing; other temporaries of dead processes of this
    machine are removed. Names that are not such temporaries (the user's ``final.tmp`` say), and
    those of a process still running, are left alone."""
    final = Path(final)
    if not final.parent.is_dir():
        return
    host, prefix = _host_tag(), final.name
    leftovers = []
    for entry in final.parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        owned = _OWNED.fullmatch(entry.name[len(prefix):])
        if owned and owned["host"] == host and not _alive(int(owned["pid"])):
            leftovers.append((owned["rest"].endswith(_ASIDE), entry))
    for aside, entry in sorted(leftovers, reverse=True):  # folders renamed aside first
        if aside and not os.path.lexists(final):
            os.rename(entry, final)  # the old complete folder, back under its name
        else:
            _remove(entry)


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


def _exchange(a: Path, b: Path) -> bool:
    """Swap paths ``a`` and ``b`` in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).
    Returns False, having changed nothing, where the system or file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _put_in_place(temp: Path, final: Path) -> None:
    """Rename ``temp`` to ``final``. A folder that replaces a folder is swapped in (exchange,
    else old folder aside -> new folder in), then the old one is removed under an owned name."""
    if not (temp.is_dir() and final.is_dir() and not final.is_symlink()):
        os.replace(temp, final)
        return
    if not _exchange(temp, final):
        aside = Path(f"{temp}{_ASIDE}")
        os.rename(final, aside)  # killed after this: recover() renames it back
        try:
            os.rename(temp, final)
        except BaseException:
            os.rename(aside, final)
            raise
        os.rename(aside, temp)  # the old folder, under a name that recover() only removes
    _remove(temp)  # now the old folder


@contextlib.contextmanager
def atomic_outputs(*paths: PathLike, suffix: str = ".tmp", durable: bool = False) -> Iterator[List[Path]]:
    """Yield one temporary path (an owned name, :func:`owned_name`, in the same folder; not yet
    created) per final path; when the block completes, rename each temporary path over its final
    path (``os.replace``, atomic on POSIX; a folder over an existing folder is swapped in, see the
    module docstring). If the block raises, the temporary paths are removed and no final path is
    touched. What a killed earlier call for the same paths left is cleaned up first (:func:`recover`).

    ``durable``: also fsync each file before its rename and the folders after, so that the new
    contents survive a power loss (used for checkpoints). A temporary path may be a file or a
    folder."""
    finals = [Path(p) for p in paths]
    for final in finals:
        final.parent.mkdir(parents=True, exist_ok=True)
        recover(final)
    temps = [owned_name(final, suffix) for final in finals]
    try:
        yield temps
        for temp, final in zip(temps, finals):
            if durable:
                _fsync_path(temp)
            _put_in_place(temp, final)
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
