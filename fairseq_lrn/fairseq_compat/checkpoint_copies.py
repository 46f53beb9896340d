"""Atomic copies of ``checkpoint_last.pt`` / ``checkpoint_best.pt``.

What fairseq does wrong: ``fairseq/checkpoint_utils.py`` ``save_checkpoint`` (fairseq 0.12.x:
0.12.2 and the ``fairseq-fixed`` 0.12.3.x builds) writes ``checkpoint_N_U.pt`` atomically
(``.tmp`` + rename) but then *copies* it to ``checkpoint_last.pt`` / ``checkpoint_best.pt``
with ``PathManager.copy`` (``shutil.copyfile`` for local files): a SIGKILL during that copy
leaves a truncated ``checkpoint_last.pt``, the file the next run resumes from.

The fix: ``fairseq.checkpoint_utils`` (only that module) gets a ``PathManager`` whose ``copy``
of local files is :func:`fairseq_lrn.atomic_files.atomic_copy` (a temporary name in the same
folder, flushed to disk, then ``os.replace``): a reader sees the old file or the new one, never
a part. Remote paths (ioPath handlers) and ``overwrite=False`` onto an existing file keep
fairseq's own copy. No fairseq function is copied.
"""

import os
from typing import Tuple

SUMMARY = "checkpoint_last.pt / checkpoint_best.pt are replaced atomically, never left half-copied"
#: The fairseq versions (prefixes of ``fairseq.__version__``) this fix was written for.
FAIRSEQ_VERSIONS = ("0.12.",)


def install(models: Tuple[type, ...] = ()) -> bool:
    """Give ``fairseq.checkpoint_utils`` a PathManager with an atomic local ``copy``
    (idempotent). Returns True."""
    from fairseq import checkpoint_utils
    from fairseq.file_io import PathManager

    from ..atomic_files import atomic_copy

    if getattr(checkpoint_utils.PathManager, "lrn_atomic_copy", False):
        return True

    class AtomicCopyPathManager(PathManager):
        lrn_atomic_copy = True

        @staticmethod
        def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
            remote = PathManager.path_requires_pathmanager(src_path) or \
                PathManager.path_requires_pathmanager(dst_path)
            if remote or (not overwrite and os.path.exists(dst_path)):
                return PathManager.copy(src_path, dst_path, overwrite=overwrite)
            return atomic_copy(src_path, dst_path)

    checkpoint_utils.PathManager = AtomicCopyPathManager
    return True
