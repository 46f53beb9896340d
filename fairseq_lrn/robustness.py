"""Plugin-side fixes that make fairseq 0.12 runs survive crashes, bad input and numpy 2.

Installed by ``fairseq_lrn.models`` (so by ``--user-dir fairseq_lrn``), each idempotent:

* :func:`install_atomic_checkpoint_copies`: fairseq writes ``checkpoint_N_U.pt`` atomically
  (``.tmp`` + rename) but then *copies* it to ``checkpoint_last.pt`` / ``checkpoint_best.pt``
  with ``shutil.copyfile``: a SIGKILL during that copy leaves a truncated ``checkpoint_last.pt``,
  the file the next run resumes from. Here those copies go to a temporary name in the same
  folder, are flushed to disk, and replace the destination with ``os.replace``: a reader sees
  the old file or the new one, never a part.
* :func:`install_interactive_input_handling` (only inside ``fairseq-interactive``): input lines
  that are not valid UTF-8 are translated with the bad bytes replaced by U+FFFD (they become
  ``<unk>``) and a warning naming the line, instead of a ``UnicodeDecodeError`` that ends the
  run; a line longer than the model accepts is refused with a message naming the line (exit
  code 1, no traceback), skipped with a warning under ``--skip-invalid-size-inputs-valid-test``,
  or cut to the limit under ``--truncate-source``.
* :func:`install_hub_skip_alignment`: ``hub.translate(sentences, skip_invalid_size_inputs=True)``
  returned fewer outputs than inputs, each one after a skipped sentence in the wrong place;
  now a skipped sentence gets ``None`` in its own place (and a warning naming its index).
* :func:`install_keep_last_partial_batch`: fairseq 0.12's ``batch_by_size`` drops the last
  batch when its size is not a multiple of ``--required-batch-size-multiple`` (default 8), so
  ``fairseq-generate`` silently skips up to 7 test sentences; they come back as a last batch.
* :func:`install_numpy2_compat`: fairseq 0.12 still uses ``np.compat.long`` and
  ``np.percentile(interpolation=)``, both removed in numpy 2, which ends language-model
  generation (fairseq-generate/-interactive, the hub's ``sample()``), any ``--sample-break-mode
  eos`` run and translation with ``--num-batch-buckets``; the fairseq modules concerned get a ``np`` that has them.
"""

import functools
import importlib
import io
import logging
import os
import shutil
import sys
import types

logger = logging.getLogger(__name__)

INTERACTIVE_MODULE = "fairseq_cli.interactive"


# --- atomic copies of checkpoint_last.pt / checkpoint_best.pt -------------------------------

def atomic_copy(src_path: str, dst_path: str) -> bool:
    """Copy ``src_path`` to ``dst_path`` so that ``dst_path`` is never seen half-written:
    write ``dst_path.copy.tmp``, fsync it, ``os.replace`` it over ``dst_path``, fsync the folder."""
    tmp_path = dst_path + ".copy.tmp"
    try:
        with open(src_path, "rb") as src, open(tmp_path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp_path, dst_path)
    except BaseException:
        try:
            os.remove(tmp_path)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (best effort: not every file system allows it)
        folder = os.open(os.path.dirname(os.path.abspath(dst_path)), os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError:
        pass
    return True


def install_atomic_checkpoint_copies() -> None:
    """Give ``fairseq.checkpoint_utils`` (only that module) a PathManager whose ``copy`` of
    local files is :func:`atomic_copy`; remote paths (ioPath handlers) keep fairseq's copy."""
    from fairseq import checkpoint_utils
    from fairseq.file_io import PathManager

    if getattr(checkpoint_utils.PathManager, "lrn_atomic_copy", False):
        return

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


# --- fairseq-interactive: non-UTF-8 bytes and too-long lines ---------------------------------

def _source_limit(max_positions):
    """The source length limit in fairseq's ``max_positions`` (a number, a (source, target)
    pair, or None for no limit)."""
    return max_positions[0] if isinstance(max_positions, (tuple, list)) else max_positions


class _InputPosition:
    """Number (1-based) of the first input line in the buffer being translated."""
    first_line = 1


def _undecodable(text: str) -> bytes:
    """The bytes that ``surrogateescape`` turned into lone surrogates in ``text``."""
    return bytes(ord(c) - 0xDC00 for c in text if "\udc80" <= c <= "\udcff")


def buffered_read(input, buffer_size):
    """fairseq-interactive's ``buffered_read``, decoding each line on its own: bytes that are
    not UTF-8 become U+FFFD (a warning names the line) instead of ending the run."""
    position = _InputPosition
    raw = sys.stdin.buffer if input == "-" else open(input, "rb")
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline=None)
    buffer, line_number = [], 0
    position.first_line = 1
    try:
        for line_number, line in enumerate(stream, 1):
            bad = _undecodable(line)
            if bad:
                line = "".join("\ufffd" if "\udc80" <= c <= "\udcff" else c for c in line)
                logger.warning(f"input line {line_number} is not valid UTF-8: {len(bad)} byte(s) "
                               f"{bad[:8]!r} replaced by U+FFFD; words containing them are unknown "
                               f"to the model (<unk>)")
            buffer.append(line.strip())
            if len(buffer) >= buffer_size:
                yield buffer
                buffer = []
                position.first_line = line_number + 1
        if buffer:
            yield buffer
    finally:
        stream.detach()  # leave sys.stdin open; close our own file
        if raw is not sys.stdin.buffer:
            raw.close()


def _make_batches(original):
    """Wrap fairseq-interactive's ``make_batches`` with the too-long-line policy."""

    def make_batches(lines, cfg, task, max_positions, encode_fn):
        limit = _source_limit(max_positions)
        if cfg.generation.constraints or limit is None:
            yield from original(lines, cfg, task, max_positions, encode_fn)
            return
        truncate = bool(getattr(cfg.task, "truncate_source", False))
        skip = bool(cfg.dataset.skip_invalid_size_inputs_valid_test)
        encoded = [encode_fn(line) for line in lines]
        _, lengths = task.get_interactive_tokens_and_lengths(encoded, lambda x: x)
        for i, length in enumerate(lengths):
            if length <= limit:
                continue
            too_long = (f"input line {_InputPosition.first_line + i} has {length} tokens (</s> included), "
                        f"more than the model accepts ({limit}, --max-source-positions)")
            if truncate:
                encoded[i] = " ".join(encoded[i].split()[: limit - 1])
                logger.warning(f"{too_long}: translating its first {limit - 1} tokens (--truncate-source)")
            elif skip:
                logger.warning(f"{too_long}: skipped, no output (--skip-invalid-size-inputs-valid-test)")
            else:
                logger.error(f"{too_long}: refused. Rerun with --skip-invalid-size-inputs-valid-test to "
                             f"skip such lines or with --truncate-source to translate their first "
                             f"{limit - 1} tokens.")
                raise SystemExit(1)
        yield from original(encoded, cfg, task, max_positions, lambda x: x)

    make_batches.lrn_input_handling = True
    return make_batches


def _interactive_modules() -> list:
    """fairseq-interactive's module object(s) in this process: ``fairseq_cli.interactive``
    when run through the ``fairseq-interactive`` script, ``__main__`` under ``python -m``."""
    found = []
    for module in (sys.modules.get(INTERACTIVE_MODULE), sys.modules.get("__main__")):
        spec = getattr(module, "__spec__", None)
        if module is not None and module not in found and (
                getattr(module, "__name__", None) == INTERACTIVE_MODULE
                or getattr(spec, "name", None) == INTERACTIVE_MODULE) \
                and hasattr(module, "buffered_read") and hasattr(module, "make_batches"):
            found.append(module)
    return found


def install_interactive_input_handling() -> None:
    """Patch the running fairseq-interactive (if this process is one); no-op elsewhere."""
    for module in _interactive_modules():
        if not getattr(module.make_batches, "lrn_input_handling", False):
            module.buffered_read = buffered_read
            module.make_batches = _make_batches(module.make_batches)


# --- hub: skip_invalid_size_inputs=True kept outputs aligned with inputs --------------------

def install_hub_skip_alignment() -> None:
    """Wrap ``GeneratorHubInterface.sample`` (which ``translate`` calls) so that sentences
    skipped as too long get ``None`` at their own index instead of shifting later outputs."""
    from fairseq.hub_utils import GeneratorHubInterface

    original = GeneratorHubInterface.sample
    if getattr(original, "lrn_skip_alignment", False):
        return

    def sample(self, sentences, beam: int = 1, verbose: bool = False, **kwargs):
        if isinstance(sentences, str) or not kwargs.get("skip_invalid_size_inputs", False):
            return original(self, sentences, beam, verbose, **kwargs)
        limit = _source_limit(self.max_positions)
        fits = [limit is None or self.encode(s).numel() <= limit for s in sentences]
        for index in (i for i, ok in enumerate(fits) if not ok):
            logger.warning(f"sentence {index} is longer than the model accepts ({limit} tokens with "
                           f"</s>): skipped, its output is None")
        kept = [s for s, ok in zip(sentences, fits) if ok]
        outputs = iter(original(self, kept, beam, verbose, **kwargs) if kept else [])
        return [next(outputs) if ok else None for ok in fits]

    sample.lrn_skip_alignment = True
    sample.__doc__ = original.__doc__
    GeneratorHubInterface.sample = sample


# --- numpy 2: np.compat.long and np.percentile(interpolation=) in fairseq 0.12 -------------

#: The fairseq modules that use numpy names numpy 2 removed (fairseq 0.12.x), and where they do.
NUMPY2_PATCHED_MODULES = (
    "fairseq.data.token_block_dataset",  # np.compat.long: TokenBlockDataset, --sample-break-mode eos
    "fairseq.data.language_pair_dataset",  # np.compat.long: --num-batch-buckets
    "fairseq.data.data_utils",  # np.percentile(interpolation=): get_buckets, --num-batch-buckets
)
NUMPY2_FAIRSEQ_VERSIONS = ("0.12.",)


def _percentile_takes_interpolation(numpy_module) -> bool:
    import inspect

    return "interpolation" in inspect.signature(numpy_module.percentile).parameters


class NumpyForFairseq012(types.ModuleType):
    """A stand-in for the ``numpy`` module: every attribute is numpy's own (looked up once,
    then cached), plus what numpy 2 removed and fairseq 0.12 still uses: ``compat.long``
    (= ``int64``, numpy 1's value on 64-bit Linux) when numpy has no ``compat``, and a
    ``percentile`` that maps ``interpolation=`` to ``method=`` when numpy's no longer accepts it.
    Only the module-level ``np`` name of :data:`NUMPY2_PATCHED_MODULES` points here."""

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


def install_numpy2_compat() -> bool:
    """Make fairseq 0.12 work under numpy 2.

    What fairseq does wrong: fairseq 0.12.x (0.12.2 and the ``fairseq-fixed`` 0.12.3.x builds)
    uses two numpy names that numpy 2 removed:

    * ``np.compat.long`` (``numpy.compat`` is gone from numpy 2; absent in the 2.4 used here) in
      ``data/token_block_dataset.py`` (``--sample-break-mode eos``, which every inference dataset
      of ``--task language_modeling`` uses: eval-lm with that mode, fairseq-generate/-interactive
      and the hub's ``sample()`` on a LM, even for fairseq's own ``lstm_lm``) and in
      ``data/language_pair_dataset.py`` (translation with ``--num-batch-buckets``):
      ``AttributeError: module 'numpy' has no attribute 'compat'``;
    * ``np.percentile(..., interpolation=...)`` (deprecated in numpy 1.22; refused by numpy 2.4)
      in ``data/data_utils.py`` ``get_buckets`` (``--num-batch-buckets``): ``TypeError``.

    The fix: the ``np`` name of those three modules becomes :class:`NumpyForFairseq012` (numpy
    plus the removed names); numpy itself and every other module are untouched, and no fairseq
    function is copied. Applied only for fairseq 0.12.x and only when numpy lacks one of the
    names (numpy 1 has both). Returns True when it patched (or had patched) the modules."""
    import fairseq
    import numpy

    missing = not hasattr(numpy, "compat") or not _percentile_takes_interpolation(numpy)
    if not missing or not fairseq.__version__.startswith(NUMPY2_FAIRSEQ_VERSIONS):
        return False
    for name in NUMPY2_PATCHED_MODULES:
        module = importlib.import_module(name)
        if getattr(module, "np", None) is numpy:
            module.np = NumpyForFairseq012(numpy)
    return True


# --- the last sentences of a split, which fairseq 0.12 drops ------------------------------------

LAST_BATCH_FAIRSEQ_VERSIONS = ("0.12.",)


def _loses_sentences(batch_by_size) -> bool:
    """True when ``batch_by_size`` batches fewer sentences than it is given (probed on nine
    one-token sentences, at most 8 a batch, batch sizes a multiple of 8)."""
    import numpy

    batches = batch_by_size(numpy.arange(9, dtype=numpy.int64), num_tokens_fn=lambda index: 1,
                            max_sentences=8, required_batch_size_multiple=8)
    return sum(len(batch) for batch in batches) != 9


def _keep_every_sentence(original):
    """Wrap fairseq's ``data_utils.batch_by_size`` so that the sentences it left out come back
    as one last batch (a subset of the batch fairseq built, so within its limits)."""
    import numpy

    @functools.wraps(original)
    def batch_by_size(indices, *args, **kwargs):
        batches = original(indices, *args, **kwargs)
        if not isinstance(indices, numpy.ndarray):
            indices = numpy.fromiter(indices, dtype=numpy.int64, count=-1)
        batched = numpy.concatenate(batches) if len(batches) else indices[:0]
        if len(batched) < len(indices):
            batches = list(batches) + [indices[~numpy.isin(indices, batched)]]
        return batches

    batch_by_size.keeps_every_sentence = True
    return batch_by_size


def install_keep_last_partial_batch() -> bool:
    """Stop fairseq 0.12 from silently dropping up to 7 sentences of every split.

    What fairseq does wrong: ``fairseq.data.data_utils.batch_by_size`` (0.12.2 and the
    ``fairseq-fixed`` 0.12.3.x builds; fairseq issue #5036, open) drops the last batch when its
    size is not a multiple of ``--required-batch-size-multiple`` (default 8), after the compiled
    batcher has split the tail off into it. So ``fairseq-generate`` on a test set of 1,518
    sentences translates 1,512 (BLEU is then computed on a subset, with no warning), validation
    loss skips the same sentences, and every training epoch skips up to 7 pairs. The fix puts
    the dropped sentences back as one last, smaller batch. Applied only to fairseq 0.12.x and
    only when a probe shows the loss. Returns True when ``batch_by_size`` is (now) wrapped."""
    import fairseq
    from fairseq.data import data_utils

    if getattr(data_utils.batch_by_size, "keeps_every_sentence", False):
        return True
    if not fairseq.__version__.startswith(LAST_BATCH_FAIRSEQ_VERSIONS) \
            or not _loses_sentences(data_utils.batch_by_size):
        return False
    data_utils.batch_by_size = _keep_every_sentence(data_utils.batch_by_size)
    return True


def install() -> None:
    """Install every fix of this module (idempotent)."""
    install_numpy2_compat()
    install_keep_last_partial_batch()
    install_atomic_checkpoint_copies()
    install_interactive_input_handling()
    install_hub_skip_alignment()
