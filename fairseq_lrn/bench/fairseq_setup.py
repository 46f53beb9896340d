"""Quiet fairseq for a benchmark, whose output should be its tables: called by the entry points'
``main`` (and the memory probe's), never at import."""

import logging
import warnings


def quiet_fairseq() -> None:
    """fairseq logs every step and option at INFO, and importing it sets the root logger to
    DEBUG: raise both to WARNING (fairseq's before it is imported) and silence the warnings it
    and hydra print on every run."""
    logging.getLogger("fairseq").setLevel(logging.WARNING)
    import fairseq  # noqa: F401

    logging.getLogger().setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*pin_memory.*")
    warnings.filterwarnings("ignore", category=FutureWarning, module="fairseq")
    warnings.filterwarnings("ignore", category=UserWarning, module="hydra")
    warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema")
    warnings.filterwarnings("ignore", message=".*mismatched key_padding_mask.*")
