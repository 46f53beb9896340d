"""fairseq glue: importing this registers the ``lrn`` and ``transformer_lrn`` models and their architectures and makes
fairseq's checkpoint loading work (safely) under torch >= 2.6."""

from fairseq.models import ARCH_MODEL_REGISTRY

from ..checkpoint_safety import install as _install_safe_checkpoint_loading
from ..robustness import install as _install_robustness
from .cli_help import add_model_flags_to_help
from .lrn import LRNModel
from .lrn_lm import LRNLanguageModel
from .transformer_lrn import TransformerLRNModel

_install_safe_checkpoint_loading()
_install_robustness()
add_model_flags_to_help(LRNModel, [arch for arch, model in ARCH_MODEL_REGISTRY.items() if model is LRNModel])
add_model_flags_to_help(TransformerLRNModel, [arch for arch, model in ARCH_MODEL_REGISTRY.items()
                                              if model is TransformerLRNModel])
add_model_flags_to_help(LRNLanguageModel, [arch for arch, model in ARCH_MODEL_REGISTRY.items()
                                           if model is LRNLanguageModel])

__all__ = ["LRNModel", "TransformerLRNModel"]
