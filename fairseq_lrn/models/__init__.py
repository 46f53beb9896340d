"""fairseq glue: importing this registers the ``lrn``, ``transformer_lrn`` and ``lrn_lm`` models and their architectures and applies
fairseq-lrn's fixes to fairseq (``fairseq_lrn.fairseq_compat``: safe checkpoint loading under torch >= 2.6, ...)."""

from .. import fairseq_compat
from .lrn import LRNModel
from .lrn_lm import LRNLanguageModel
from .transformer_lrn import TransformerLRNModel

fairseq_compat.install(models=(LRNModel, TransformerLRNModel, LRNLanguageModel))

__all__ = ["LRNLanguageModel", "LRNModel", "TransformerLRNModel"]
