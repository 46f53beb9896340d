"""Safe loading of fairseq checkpoints under torch >= 2.6 (``weights_only`` unpickling).

fairseq 0.12 calls ``torch.load`` without ``weights_only``; torch >= 2.6 then refuses every
fairseq checkpoint because it holds an ``argparse.Namespace``. Instead of switching the
check off, :func:`install` wraps ``fairseq.checkpoint_utils.load_checkpoint_to_cpu`` so that,
while a checkpoint is read, exactly the extra types fairseq writes are allowed, and any
other global (``os.system``, ``builtins.eval``, ...) is refused before it can run.
Unreadable files get a message naming the file. Other ``torch.load`` calls are untouched.
"""

import argparse
import functools
import pickle
import re
import zipfile


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded; the message names the file and the reason."""


def fairseq_checkpoint_globals() -> list:
    """The non-tensor types fairseq 0.12 writes into checkpoints: the legacy ``args``
    Namespace and numpy scalars (validation scores such as ``best_bleu``)."""
    import numpy as np

    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 renamed numpy.core
    scalar = core.multiarray.scalar
    return [argparse.Namespace, np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.float32)),
            (scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar")]


def _refusal_message(path: str, error: pickle.UnpicklingError) -> str:
    """Say which global the unpickler refused, or why else the pickle was rejected."""
    text = str(error)
    found = re.search(r"unsupported(?: global:)? GLOBAL ([\w.]+)", text, re.IGNORECASE)
    if found:
        return (f"refused to load checkpoint {path!r}: it references {found.group(1)}, which is not "
                f"one of the types a fairseq checkpoint contains. Unpickling such a reference can "
                f"run arbitrary code, so the load was stopped before anything in the file ran. "
                f"Only if you made the file yourself: load it with torch.load(path, "
                f"weights_only=False) and save its tensors again.")
    reason = next((line.strip() for line in text.splitlines() if "Unsupported" in line), text.splitlines()[0])
    return (f"refused to load checkpoint {path!r}: it is not a checkpoint of tensors and the types "
            f"fairseq writes ({reason})")


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
        except (EOFError, KeyError, zipfile.BadZipFile, RuntimeError) as error:
            if isinstance(error, RuntimeError) and "PytorchStreamReader" not in str(error):
                raise
            first_line = (str(error).splitlines() or [type(error).__name__])[0]
            raise CheckpointError(f"cannot read checkpoint {path!r}: the file is truncated, empty or "
                                  f"not a fairseq checkpoint ({type(error).__name__}: {first_line})") from None

    load.lrn_safe_loader = True
    return load


def install() -> None:
    """Route fairseq's checkpoint loading through :func:`safe_loader` (idempotent)."""
    from fairseq import checkpoint_utils

    if not getattr(checkpoint_utils.load_checkpoint_to_cpu, "lrn_safe_loader", False):
        checkpoint_utils.load_checkpoint_to_cpu = safe_loader(checkpoint_utils.load_checkpoint_to_cpu)
