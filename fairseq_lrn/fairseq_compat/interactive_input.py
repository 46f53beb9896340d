"""fairseq-interactive: input that is not UTF-8, and lines longer than the model accepts.

What fairseq does wrong (fairseq 0.12.x: 0.12.2 and the ``fairseq-fixed`` 0.12.3.x builds),
in ``fairseq_cli/interactive.py``:

* ``buffered_read`` reads the input with ``fileinput.input(files=[input],
  openhook=fileinput.hook_encoded("utf-8"))``, strict decoding: one line that is not valid
  UTF-8 (for ``-``, i.e. stdin, as decoded by ``sys.stdin`` under a UTF-8 locale or
  ``PYTHONIOENCODING=utf-8:strict``) ends the whole run with a ``UnicodeDecodeError``
  traceback, after the lines before it were translated.
* ``make_batches`` hands a line longer than ``--max-source-positions`` to a batch iterator that
  raises ``Exception: Size of sample #N is invalid`` (a traceback; N counted within the buffer,
  not the input), or under ``--skip-invalid-size-inputs-valid-test`` drops it with a warning
  that gives that in-buffer index only; ``--truncate-source`` does not apply there.

The fix, applied only inside fairseq-interactive (``fairseq_cli.interactive`` run as the
``fairseq-interactive`` script or as ``python -m fairseq_cli.interactive``), keeps fairseq's own
``buffered_read`` and ``make_batches`` running; it copies neither:

* decoding does not fail: ``sys.stdin`` is reconfigured to decode UTF-8 with
  ``errors="surrogateescape"``, and the interactive module's ``fileinput`` name becomes
  :class:`FileinputWithSurrogateEscape` (the real ``fileinput``, except that ``hook_encoded``
  defaults to ``errors="surrogateescape"``) for ``--input FILE``. A byte that is not UTF-8 then
  reaches ``make_batches`` as a lone surrogate;
* ``make_batches`` is wrapped: the wrapper numbers the input lines across its calls, replaces
  those surrogates by U+FFFD (the word becomes ``<unk>``) with a warning naming the line, and
  applies the too-long-line policy with messages naming the line: refused (exit code 1, no
  traceback) by default, skipped with a warning under ``--skip-invalid-size-inputs-valid-test``,
  cut to the limit under ``--truncate-source``; then it calls fairseq's ``make_batches``.

Limits: the line numbers count the lines fairseq's ``buffered_read`` hands over (one per input
line); with ``--constraints`` the too-long-line policy is fairseq's own (the UTF-8 handling still
applies). If ``sys.stdin`` is not a ``io.TextIOWrapper`` (replaced by the caller), stdin keeps
its own decoding.
"""

import fileinput
import io
import logging
import sys
import types
from typing import Tuple

from .max_positions import source_limit

logger = logging.getLogger(__name__)

SUMMARY = ("fairseq-interactive: bytes that are not UTF-8 become U+FFFD with a warning; too-long lines "
           "are refused/skipped/truncated naming the line")
#: The fairseq versions (prefixes of ``fairseq.__version__``) this fix was written for.
FAIRSEQ_VERSIONS = ("0.12.",)

INTERACTIVE_MODULE = "fairseq_cli.interactive"


class FileinputWithSurrogateEscape(types.ModuleType):
    """A stand-in for the ``fileinput`` module: every attribute is the real module's, except
    ``hook_encoded``, whose ``errors`` defaults to ``"surrogateescape"``. Only the ``fileinput``
    name of fairseq-interactive's module points here."""

    def __init__(self, fileinput_module=fileinput):
        super().__init__(fileinput_module.__name__, fileinput_module.__doc__)
        self._fileinput = fileinput_module

    def hook_encoded(self, encoding, errors=None):
        return self._fileinput.hook_encoded(encoding, errors=errors or "surrogateescape")

    def __getattr__(self, name):
        return getattr(self._fileinput, name)


def _is_escaped_byte(char: str) -> bool:
    """Whether ``char`` is a byte that ``surrogateescape`` could not decode."""
    return "\udc80" <= char <= "\udcff"


def replace_undecodable(line: str, line_number: int) -> str:
    """``line`` with the bytes that were not UTF-8 (read with ``errors="surrogateescape"``)
    replaced by U+FFFD, and a warning naming input line ``line_number`` (1-based) when there were
    any. fairseq-lrn-translate uses it too, for the same message."""
    bad = bytes(ord(c) - 0xDC00 for c in line if _is_escaped_byte(c))
    if not bad:
        return line
    logger.warning(f"input line {line_number} is not valid UTF-8: {len(bad)} byte(s) "
                   f"{bad[:8]!r} replaced by U+FFFD; words containing them are unknown "
                   f"to the model (<unk>)")
    return "".join("\ufffd" if _is_escaped_byte(c) else c for c in line)


def too_long_message(*, line_number: int, length: int, limit: int) -> str:
    """What is wrong with input line ``line_number`` (1-based) of ``length`` tokens (</s> included)."""
    return (f"input line {line_number} has {length} tokens (</s> included), "
            f"more than the model accepts ({limit}, --max-source-positions)")


def apply_too_long_policy(encoded: str, *, line_number: int, length: int, limit: int,
                          truncate: bool, skip: bool):
    """The policy for an encoded input line of ``length`` tokens (</s> included) over ``limit``,
    with a message naming input line ``line_number``: returns its first ``limit - 1`` tokens
    (``truncate``, a warning), None (``skip``: no output, a warning), or logs an error and raises
    ``SystemExit(1)`` (the default: refused). fairseq-lrn-translate uses it too."""
    too_long = too_long_message(line_number=line_number, length=length, limit=limit)
    if truncate:
        logger.warning(f"{too_long}: translating its first {limit - 1} tokens (--truncate-source)")
        return " ".join(encoded.split()[: limit - 1])
    if skip:
        logger.warning(f"{too_long}: skipped, no output (--skip-invalid-size-inputs-valid-test)")
        return None
    logger.error(f"{too_long}: refused. Rerun with --skip-invalid-size-inputs-valid-test to "
                 f"skip such lines or with --truncate-source to translate their first "
                 f"{limit - 1} tokens.")
    raise SystemExit(1)


def _make_batches(original):
    """Wrap fairseq-interactive's ``make_batches`` with the U+FFFD replacement and the
    too-long-line policy; the lines are numbered across calls (one call per buffer)."""
    lines_seen = [0]  # input lines handed to make_batches so far

    def make_batches(lines, cfg, task, max_positions, encode_fn):
        first_line = lines_seen[0] + 1
        lines_seen[0] += len(lines)
        lines = [replace_undecodable(line, first_line + i) for i, line in enumerate(lines)]
        limit = source_limit(max_positions)
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
            kept = apply_too_long_policy(encoded[i], line_number=first_line + i, length=length,
                                         limit=limit, truncate=truncate, skip=skip)
            if kept is not None:  # skipped lines stay: fairseq's batching drops them, keeping the ids
                encoded[i] = kept
        yield from original(encoded, cfg, task, max_positions, lambda x: x)

    make_batches.lrn_input_handling = True
    make_batches.__wrapped__ = original
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
                and hasattr(module, "buffered_read") and hasattr(module, "make_batches") \
                and hasattr(module, "fileinput"):
            found.append(module)
    return found


def _decode_stdin_with_surrogateescape() -> None:
    """Make ``sys.stdin`` decode UTF-8 with ``errors="surrogateescape"`` (fairseq reads ``-``
    through ``sys.stdin``, whose decoding ``hook_encoded`` does not reach)."""
    stdin = sys.stdin
    if not isinstance(stdin, io.TextIOWrapper) or (
            stdin.errors == "surrogateescape" and stdin.encoding.lower().replace("-", "") == "utf8"):
        return
    try:
        stdin.reconfigure(encoding="utf-8", errors="surrogateescape")
    except (io.UnsupportedOperation, ValueError):  # already read from: only the error handler
        stdin.reconfigure(errors="surrogateescape")


def install(models: Tuple[type, ...] = ()) -> bool:
    """Patch the running fairseq-interactive (if this process is one; idempotent). Returns True
    there, False (nothing done) in any other process."""
    modules = _interactive_modules()
    for module in modules:
        if not getattr(module.make_batches, "lrn_input_handling", False):
            module.fileinput = FileinputWithSurrogateEscape(fileinput)
            module.make_batches = _make_batches(module.make_batches)
    if modules:
        _decode_stdin_with_surrogateescape()
    return bool(modules)
