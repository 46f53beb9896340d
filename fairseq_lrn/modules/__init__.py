"""nn.Modules built on the LRN recurrence: layers with projections and attention."""

from .attention import ATTENTION_TYPES, Attention
from .lrn import LRN, LRNBlock, LRNLayer
from .transformer_lrn_layer import TransformerLRNDecoderLayer

__all__ = ["ATTENTION_TYPES", "Attention", "LRN", "LRNBlock", "LRNLayer", "TransformerLRNDecoderLayer"]
