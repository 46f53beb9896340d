"""File helpers shared by the WMT14 preparation steps: line I/O and alignment checks.

Outputs are written through :func:`fairseq_lrn.atomic_files.atomic_outputs` (a temporary name,
renamed into place when complete), the one way fairseq-lrn writes files atomically."""


class PrepError(Exception):
    """A preparation failure the user can act on; the message names the file involved."""


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
