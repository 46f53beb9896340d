"""Safe loading of fairseq checkpoints under torch >= 2.6 (``weights_only`` unpickling), and
the same for the checkpoint state rank 0 broadcasts in distributed training.

What fairseq does wrong: fairseq 0.12.x (0.12.2 and the ``fairseq-fixed`` 0.12.3.x builds)
calls ``torch.load`` without ``weights_only`` in ``fairseq/checkpoint_utils.py``
``load_checkpoint_to_cpu``. torch >= 2.6 defaults to ``weights_only=True`` and then refuses
every fairseq checkpoint, because it holds an ``argparse.Namespace`` (and numpy scalars such as
``best_bleu``). Instead of switching the check off, :func:`install` wraps
``load_checkpoint_to_cpu`` so that, while a checkpoint is read, exactly the extra types fairseq
writes are allowed, and any other global (``os.system``, ``builtins.eval``, ...) is refused
before it can run. Unreadable files get a :class:`~fairseq_lrn.errors.CheckpointError` naming
the file (and the other checkpoints next to it).

The same applies to one more ``torch.load``: in distributed training rank 0 reads the checkpoint
and broadcasts it; the other ranks unpickle it in ``fairseq/distributed/utils.py``
``_broadcast_object_slow``, and under torch >= 2.6 that fails on the omegaconf ``cfg``
("Unsupported global: DictConfig"), so resuming a multi-process run crashed. :func:`install`
wraps that function too, allowing the checkpoint types plus the omegaconf containers fairseq's
``cfg`` is made of. Other ``torch.load`` calls are untouched; no fairseq function is copied.

Versions: fairseq 0.12.x with torch >= 2.6 (:data:`MIN_TORCH`). torch before 2.6 unpickles
everything by default (``weights_only=False``): fairseq then loads checkpoints as it always did,
with no protection against crafted files, and an allow-list would change nothing (torch before
2.5 does not even have ``torch.serialization.safe_globals``). There ``fairseq_compat.install``
does not apply this fix and warns (:data:`OUTSIDE_VERSIONS`); use torch >= 2.6 for the protection.
"""

import argparse
import errno
import functools
import pickle
import re
import zipfile
from typing import Optional, Tuple

from ..errors import CheckpointError

SUMMARY = "fairseq checkpoints load under torch's weights_only unpickling; crafted files are refused"
#: The fairseq versions (prefixes of ``fairseq.__version__``) this fix was written for.
FAIRSEQ_VERSIONS = ("0.12.",)
#: The oldest torch this fix applies to (the first that unpickles with ``weights_only=True``).
MIN_TORCH = (2, 6)
#: What happens outside those versions (added to fairseq_compat's warning).
OUTSIDE_VERSIONS = ("fairseq's checkpoint loading is left as it is: no protection against crafted files; "
                    "torch >= 2.6 has it")

#: The numpy dtypes whose scalars a checkpoint may hold (bool, integers, floats, complex, str,
#: bytes; not ``object``), as numpy type codes.
NUMPY_SCALAR_CODES = "?bhilqBHILQefdgFDGUS"


def fairseq_checkpoint_globals() -> list:
    """The non-tensor types fairseq 0.12 writes into checkpoints: the legacy ``args``
    Namespace and numpy scalars of :data:`NUMPY_SCALAR_CODES` (validation scores such as
    ``best_bleu``, counters such as an ``np.int64`` in ``extra_state``)."""
    import numpy as np

    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 renamed numpy.core
    scalar = core.multiarray.scalar
    dtype_types = list(dict.fromkeys(type(np.dtype(code)) for code in NUMPY_SCALAR_CODES))
    return [argparse.Namespace, np.dtype, *dtype_types,
            (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]


def broadcast_globals() -> list:
    """What a checkpoint state holds once loaded (``cfg`` as an omegaconf DictConfig), for the
    objects rank 0 broadcasts: the checkpoint types, omegaconf's containers and value nodes, the
    type markers omegaconf keeps in its metadata, and fairseq's tensor placeholder."""
    import collections
    import typing

    import omegaconf
    from fairseq.distributed import utils as distributed_utils
    from omegaconf import base, nodes

    node_types = [getattr(nodes, name) for name in ("AnyNode", "StringNode", "IntegerNode", "FloatNode",
                                                    "BooleanNode", "BytesNode", "PathNode")
                  if hasattr(nodes, name)]
    return [*fairseq_checkpoint_globals(), omegaconf.DictConfig, omegaconf.ListConfig,
            base.ContainerMetadata, base.Metadata, *node_types, collections.defaultdict, typing.Any,
            dict, list, tuple, int, float, str, bool, bytes,
            distributed_utils._TensorPlaceholder]


def _refused_global(error: pickle.UnpicklingError) -> Optional[str]:
    """The global (``module.name``) torch's weights-only unpickler refused, if that was the error."""
    found = re.search(r"unsupported(?: global:)? GLOBAL ([\w.]+)", str(error), re.IGNORECASE)
    return found.group(1) if found else None


def _refusal_message(path: str, error: pickle.UnpicklingError) -> str:
    """Say which global the unpickler refused, or why else the pickle was rejected."""
    text = str(error)
    refused = _refused_global(error)
    if refused:
        return (f"refused to load checkpoint {path!r}: it references {refused}, which is not "
                f"one of the types a fairseq checkpoint contains. Unpickling such a reference can "
                f"run arbitrary code, so the load was stopped before anything in the file ran. "
                f"Only if you made the file yourself: load it with torch.load(path, "
                f"weights_only=False) and save its tensors again.")
    reason = next((line.strip() for line in text.splitlines() if "Unsupported" in line), text.splitlines()[0])
    return (f"refused to load checkpoint {path!r}: it is not a checkpoint of tensors and the types "
            f"fairseq writes ({reason})")


def _raised_in_torch_load(error: BaseException) -> bool:
    """Whether ``error`` was raised inside ``torch.load`` (reading the file) rather than by
    fairseq's processing of what it read."""
    import os

    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(os.path.join("torch", "serialization.py")):
            return True
        tb = tb.tb_next
    return False


def _other_checkpoints_hint(path) -> str:
    """Name the other checkpoints next to an unreadable one, newest first, and how to use one."""
    import os

    try:
        folder = os.path.dirname(os.path.abspath(path))
        names = [n for n in os.listdir(folder) if n.startswith("checkpoint") and n.endswith(".pt")
                 and n != os.path.basename(path)]
    except (OSError, TypeError):
        return ""
    if not names:
        return ""
    names.sort(key=lambda n: os.path.getmtime(os.path.join(folder, n)), reverse=True)
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return (f". Other checkpoints in {folder}: {shown}; to resume from one, pass "
            f"--restore-file {os.path.join(folder, names[0])} (or move the damaged file away and "
            f"copy that one to its name)")


def is_fairseq_checkpoint(content) -> bool:
    """Whether what ``torch.load`` read has the shape of a fairseq checkpoint: a dict with
    ``model`` and at least one of ``cfg``, ``args``, ``optimizer_history``."""
    return isinstance(content, dict) and "model" in content and \
        any(key in content for key in ("cfg", "args", "optimizer_history"))


def _is_foreign_file(path) -> bool:
    """Whether ``path`` (which torch read) holds something other than a fairseq checkpoint:
    read again under the allow-list (only after fairseq failed on it)."""
    import torch

    with torch.serialization.safe_globals(fairseq_checkpoint_globals()):
        try:
            content = torch.load(path, map_location="cpu", mmap=True)
        except RuntimeError:  # mmap needs torch's zip format
            content = torch.load(path, map_location="cpu")
    return not is_fairseq_checkpoint(content)


def _classify_read_error(error: BaseException, path=None):
    """``"damaged"`` when torch could not read the file, ``"foreign"`` when it read a torch file
    that is not a fairseq checkpoint (:func:`is_fairseq_checkpoint`), None when the error is
    about something else (re-raised): also any error fairseq raises while processing what has
    the shape of a checkpoint."""
    text = str(error)
    if not _raised_in_torch_load(error):
        # torch.load worked and fairseq's handling of the content failed: foreign only if the
        # content is not shaped like a checkpoint (a bare state_dict, a tensor, a list, ...)
        try:
            return "foreign" if path is not None and _is_foreign_file(path) else None
        except Exception:  # noqa: BLE001  (cannot tell: keep fairseq's own error)
            return None
    if isinstance(error, (EOFError, KeyError, zipfile.BadZipFile)):
        return "damaged"
    if isinstance(error, RuntimeError):
        markers = ("PytorchStreamReader", "inline_container", "enforce fail")
        return "damaged" if any(marker in text for marker in markers) else None
    # torch's zip reader seeks before the start of a file cut short: OSError(EINVAL) on a file,
    # ValueError("negative seek value") on a buffer. Other OSErrors (missing file, permissions)
    # and ValueErrors are not about the content.
    if isinstance(error, OSError):
        return "damaged" if error.errno == errno.EINVAL else None
    if isinstance(error, ValueError):
        return "damaged" if "seek" in text else None
    return None


def safe_loader(load_checkpoint_to_cpu):
    """Wrap fairseq's ``load_checkpoint_to_cpu(path, ...)`` with the allow-list and clear errors."""
    import torch

    @functools.wraps(load_checkpoint_to_cpu)
    def load(path, *args, **kwargs):
        try:
            with torch.serialization.safe_globals(fairseq_checkpoint_globals()):
                return load_checkpoint_to_cpu(path, *args, **kwargs)
        except pickle.UnpicklingError as error:
            raise CheckpointError(_refusal_message(path, error)) from None
        except (EOFError, KeyError, zipfile.BadZipFile, RuntimeError, OSError, ValueError, TypeError,
                AttributeError) as error:
            kind = _classify_read_error(error, path)
            if kind is None:
                raise
            first_line = (str(error).splitlines() or [type(error).__name__])[0]
            if kind == "foreign":
                raise CheckpointError(f"cannot use {path!r} as a fairseq checkpoint: it is a torch file, "
                                      f"but not one fairseq-train wrote (no 'model' / 'cfg' / "
                                      f"'optimizer_history' as fairseq expects; {type(error).__name__}: "
                                      f"{first_line})") from error
            raise CheckpointError(f"cannot read checkpoint {path!r}: the file is truncated, empty or "
                                  f"not a fairseq checkpoint ({type(error).__name__}: {first_line})"
                                  f"{_other_checkpoints_hint(path)}") from None

    load.lrn_safe_loader = True
    return load


def safe_broadcast_receiver(broadcast_object_slow):
    """Wrap fairseq's ``_broadcast_object_slow(obj, src_rank, group, dist_device)`` so that the
    receiving ranks unpickle under :func:`broadcast_globals` (weights_only stays on)."""
    import torch

    @functools.wraps(broadcast_object_slow)
    def receive(obj, src_rank, group, dist_device):
        try:
            with torch.serialization.safe_globals(broadcast_globals()):
                return broadcast_object_slow(obj, src_rank, group, dist_device)
        except pickle.UnpicklingError as error:
            what = _refused_global(error) or str(error).splitlines()[0]
            raise CheckpointError(
                f"could not receive the object rank {src_rank} broadcast (e.g. the checkpoint state "
                f"when resuming): it references {what}, which is not among the types a fairseq "
                f"checkpoint and its config contain") from None

    receive.lrn_safe_loader = True
    return receive


def install(models: Tuple[type, ...] = ()) -> bool:
    """Route fairseq's checkpoint loading, and the unpickling of what rank 0 broadcasts to the
    other ranks, through the allow-lists (idempotent). Returns True."""
    from fairseq import checkpoint_utils
    from fairseq.distributed import utils as distributed_utils

    if not getattr(checkpoint_utils.load_checkpoint_to_cpu, "lrn_safe_loader", False):
        checkpoint_utils.load_checkpoint_to_cpu = safe_loader(checkpoint_utils.load_checkpoint_to_cpu)
    if not getattr(distributed_utils._broadcast_object_slow, "lrn_safe_loader", False):
        distributed_utils._broadcast_object_slow = safe_broadcast_receiver(
            distributed_utils._broadcast_object_slow)
    return True
