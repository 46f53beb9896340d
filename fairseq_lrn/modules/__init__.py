"""nn.Modules built on the LRN recurrence: layers with projections and attention."""

from .attention import ATTENTION_TYPES, Attention, ZeroAdditiveAttention
from .conditional_lrn import INIT_STATE_STYLES, ConditionalLRN, InitialStates
from .lrn import LAYER_NORM_STYLES, LRN, LRNBlock, LRNLayer
from .transformer_lrn_layer import TransformerLRNDecoderLayer

__all__ = ["ATTENTION_TYPES", "Attention", "ConditionalLRN", "INIT_STATE_STYLES", "InitialStates",
           "LAYER_NORM_STYLES", "LRN", "LRNBlock", "LRNLayer", "TransformerLRNDecoderLayer",
           "ZeroAdditiveAttention"]
