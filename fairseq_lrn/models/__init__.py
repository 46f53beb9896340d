"""fairseq glue: importing this registers the ``lrn`` model and its architectures and makes
fairseq's checkpoint loading work (safely) under torch >= 2.6."""

from ..checkpoint_safety import install as _install_safe_checkpoint_loading
from .lrn import LRNModel

_install_safe_checkpoint_loading()

__all__ = ["LRNModel"]
