"""Helpers shared by the preparation steps (the WMT14 preparation, :mod:`.wmt14`, and the quality
race's corpus preparation): resumable steps, line I/O and alignment checks.

Outputs are written through :func:`fairseq_lrn.atomic_files.atomic_outputs` (a temporary name,
renamed into place when complete), the one way fairseq-lrn writes files atomically."""

import json
import time

from ..atomic_files import atomic_outputs


class PrepError(Exception):
    """A preparation failure the user can act on; the message names the file involved."""


class StepRunner:
    """Runs preparation steps in order, skipping those already done with the same settings.

    A finished step records its settings in ``{folder}/.done/{name}.json`` (written atomically);
    a rerun whose settings match skips it. Once a step runs, every later one runs too (its
    inputs may have changed). ``log``: where the progress lines go (``{prefix}{name}: running``,
    ``... done already, skipped``, ``... done in S s``); ``stop_after``: the step after which a
    call returns True (tests use it to simulate an interruption)."""

    def __init__(self, folder, *, log, prefix: str = "", stop_after=None):
        self.markers = folder / ".done"
        self.log, self.prefix, self.stop_after = log, prefix, stop_after
        self.rerun = False

    def __call__(self, name: str, settings: dict, fn) -> bool:
        """Run (or skip) step ``name`` (``fn()``) for ``settings`` (JSON-serializable); returns
        whether the run should stop after it."""
        marker = self.markers / f"{name}.json"
        record = json.dumps(settings, sort_keys=True)
        label = f"{self.prefix}{name}"
        if not self.rerun and marker.is_file() and marker.read_text() == record:
            self.log(f"{label}: done already, skipped")
        else:
            self.rerun = True
            marker.unlink(missing_ok=True)
            self.log(f"{label}: running")
            start = time.time()
            fn()
            with atomic_outputs(marker) as (temp,):
                temp.write_text(record)
            self.log(f"{label}: done in {time.time() - start:.1f}s")
        return name == self.stop_after


def open_text(path, mode="r"):
    """Open UTF-8 text that splits lines on "\\n" only (a stray "\\r" must not shift the alignment)."""
    return open(path, mode, encoding="utf-8", newline="\n")


def read_lines(*paths):
    """Yield the lines of `paths` in order, without their trailing newline."""
    for path in paths:
        with open_text(path) as f:
            for line in f:
                yield line[:-1] if line.endswith("\n") else line


def write_lines(path, lines):
    """Write `lines` to `path`, one per line."""
    with open_text(path, "w") as f:
        for line in lines:
            f.write(line + "\n")


def count_lines(path):
    """Number of lines in `path`, counted by newline bytes (fast on large files)."""
    n = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
    return n


def check_aligned(src, tgt):
    """Raise PrepError unless `src` and `tgt` have the same number of lines; return that number."""
    n_src, n_tgt = count_lines(src), count_lines(tgt)
    if n_src != n_tgt:
        raise PrepError(f"line counts differ: {src} has {n_src} lines, {tgt} has {n_tgt}")
    return n_src
