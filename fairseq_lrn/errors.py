"""Errors fairseq-lrn raises, in one module that imports nothing (so models, the fairseq fixes
and scripts can all use them without importing each other)."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded; the message names the file and the reason."""


class GenerateOutputError(ValueError):
    """fairseq-generate output that cannot be read as a whole test set (ids missing)."""
