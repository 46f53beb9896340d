"""fairseq 0.12 under numpy 2: ``np.compat.long`` and ``np.percentile(interpolation=)``.

What fairseq does wrong: fairseq 0.12.x (0.12.2 and the ``fairseq-fixed`` 0.12.3.x builds)
uses two numpy names that numpy 2 removed:

* ``np.compat.long`` (``numpy.compat`` is gone from numpy 2; absent in the 2.4 used here) in
  ``fairseq/data/token_block_dataset.py`` ``TokenBlockDataset`` (``--sample-break-mode eos``,
  which every inference dataset of ``--task language_modeling`` uses: eval-lm with that mode,
  fairseq-generate/-interactive and the hub's ``sample()`` on a LM, even for fairseq's own
  ``lstm_lm``) and in ``fairseq/data/language_pair_dataset.py`` (translation with
  ``--num-batch-buckets``): ``AttributeError: module 'numpy' has no attribute 'compat'``;
* ``np.percentile(..., interpolation=...)`` (deprecated in numpy 1.22; refused by numpy 2.4)
  in ``fairseq/data/data_utils.py`` ``get_buckets`` (``--num-batch-buckets``): ``TypeError``.

The fix: the ``np`` name of those three modules (:data:`PATCHED_MODULES`) becomes
:class:`NumpyForFairseq012` (numpy plus the removed names); numpy itself and every other module
are untouched, and no fairseq function is copied.

Versions: fairseq 0.12.x with numpy >= 2 (applied only when numpy lacks one of the names; numpy
1 has both).
"""

import importlib
import types
from typing import Tuple

SUMMARY = "fairseq's uses of np.compat.long and np.percentile(interpolation=) work under numpy 2"
#: The fairseq versions (prefixes of ``fairseq.__version__``) this fix was written for.
FAIRSEQ_VERSIONS = ("0.12.",)

#: The fairseq modules that use numpy names numpy 2 removed (fairseq 0.12.x), and where they do.
PATCHED_MODULES = (
    "fairseq.data.token_block_dataset",  # np.compat.long: TokenBlockDataset, --sample-break-mode eos
    "fairseq.data.language_pair_dataset",  # np.compat.long: --num-batch-buckets
    "fairseq.data.data_utils",  # np.percentile(interpolation=): get_buckets, --num-batch-buckets
)


def _percentile_takes_interpolation(numpy_module) -> bool:
    import inspect

    return "interpolation" in inspect.signature(numpy_module.percentile).parameters


class NumpyForFairseq012(types.ModuleType):
    """A stand-in for the ``numpy`` module: every attribute is numpy's own (looked up once,
    then cached), plus what numpy 2 removed and fairseq 0.12 still uses: ``compat.long``
    (= ``int64``, numpy 1's value on 64-bit Linux) when numpy has no ``compat``, and a
    ``percentile`` that maps ``interpolation=`` to ``method=`` when numpy's no longer accepts it.
    Only the module-level ``np`` name of :data:`PATCHED_MODULES` points here."""

    def __init__(self, numpy_module):
        super().__init__(numpy_module.__name__, numpy_module.__doc__)
        self._numpy = numpy_module
        if not hasattr(numpy_module, "compat"):
            self.compat = types.SimpleNamespace(long=numpy_module.int64)
        if not _percentile_takes_interpolation(numpy_module):
            def percentile(a, q, *args, interpolation=None, **kwargs):
                if interpolation is not None:
                    kwargs.setdefault("method", interpolation)
                return numpy_module.percentile(a, q, *args, **kwargs)

            self.percentile = percentile

    def __getattr__(self, name):
        value = getattr(self._numpy, name)
        setattr(self, name, value)
        return value

    def __dir__(self):
        return sorted(set(dir(self._numpy)) | set(self.__dict__))


def install(models: Tuple[type, ...] = ()) -> bool:
    """Give the ``np`` name of :data:`PATCHED_MODULES` the names numpy 2 removed (idempotent),
    when numpy lacks one of them. Returns True when it patched (or had patched) the modules."""
    import numpy

    if hasattr(numpy, "compat") and _percentile_takes_interpolation(numpy):
        return False
    for name in PATCHED_MODULES:
        module = importlib.import_module(name)
        if getattr(module, "np", None) is numpy:
            module.np = NumpyForFairseq012(numpy)
    return True
