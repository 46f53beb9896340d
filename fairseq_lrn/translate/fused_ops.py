"""The fused parts of a decoder step in compiled int8 mode, and the PyTorch computations they replace.

A decoder step at beam 5 is a few to a few hundred rows of small vectors, and in PyTorch the LRN
cell after its projection (the layer norm of each gate, its shift, the gates, the state update)
and the encoder attention of a sentence's beams (scaling, ``q k^T``, the padding mask, the
softmax, the sum of the values) are 6-12 operations each, most of a step's operations outside
the matrix products. ``native/fused_step.cpp`` computes each in one pass:
``torch.ops.fairseq_lrn.lrn_cell`` and ``torch.ops.fairseq_lrn.beam_attention``. For a
``transformer_lrn`` decoder, ``native/decoder_step.cpp`` runs all its layers in one call
(``torch.ops.fairseq_lrn.transformer_lrn_layers``: the int8 products, the fused cell and attention,
ReLU, the residuals and layer norms; :func:`transformer_lrn_layers`), what the step otherwise does
layer by layer with these operations.

They are used where the int8 layers run compiled (:func:`~fairseq_lrn.translate.quantize.quantize_runner`
sets the runner's ``fused_ops``): the sums are taken in another order and the exponential is a
polynomial, so the numbers equal the references below only up to float rounding, which fp32 mode
(the same translations as fairseq-generate) must not change, and which int8 mode's own rounding
dwarfs. The tests bound the difference and compare the translations.
"""

from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..modules.lrn import LRNLayer
from ..ops import lrn_step
from .int8_linear import Int8Linear

#: lrn_cell's ``norm_style`` argument for an LRN layer's ``layer_norm_style`` (None: no norm).
NORM_STYLE_CODES = {None: 0, "per_gate": 1, "whole": 2}
#: F.layer_norm's default epsilon, which LRNLayer.normalize_projection uses.
LAYER_NORM_EPS = 1e-5


def lrn_cell_reference(layer: LRNLayer, projected: Tensor, h_prev: Tensor) -> Tensor:
    """The cell of a unidirectional LRN layer after its linear projection: ``projected (N, G * D)``
    (``layer.proj``'s output), ``h_prev (N, D)`` -> ``h (N, D)``, as :meth:`LRNLayer.step`."""
    return lrn_step(layer.normalize_projection(projected), h_prev, layer.activation)


def lrn_layer_step(layer: LRNLayer, x: Tensor, h_prev: Tensor, fused: bool) -> Tensor:
    """:meth:`LRNLayer.step` of ``x (N, input_size)`` from ``h_prev (N, D)``; with ``fused``
    the cell after the projection is ``torch.ops.fairseq_lrn.lrn_cell`` (:func:`lrn_cell_reference`)."""
    if not fused:
        return layer.step(x, h_prev)
    if layer.bidirectional:
        raise RuntimeError("step() needs a unidirectional layer")
    style = NORM_STYLE_CODES[None if layer.norm_weight is None else layer.layer_norm_style]
    return torch.ops.fairseq_lrn.lrn_cell(layer.proj(x), h_prev, layer.norm_weight, layer.norm_bias, style,
                                          LAYER_NORM_EPS, layer.activation == "tanh", layer.num_gates)


def beam_attention_reference(query: Tensor, keys: Tensor, values: Tensor, padding_mask: Optional[Tensor],
                             scaling: float) -> Tensor:
    """fairseq ``MultiheadAttention``'s attention between its projections, for one step of
    ``N = B * beam`` query rows (``beam`` per sentence) against the keys ``(B, heads, S, d)`` and
    values ``(B, heads, S, dv)`` of their B sentences: ``softmax(q * scaling @ k^T)`` with padded
    positions ``padding_mask (B, S)`` at -inf (softmax in float32), ``@ v``. ``query (N, heads * d)``
    (``q_proj``'s output) -> ``(N, heads * dv)`` (``out_proj``'s input). The ``lrn`` decoder's
    general and dot attentions are the same computation with ``scaling = 1 / sqrt(d)``."""
    N = query.size(0)
    B, heads, S, d = keys.shape
    q = (query * scaling).view(B, -1, heads, d).transpose(1, 2)  # (B, heads, beam, d)
    weights = q @ keys.transpose(2, 3)  # (B, heads, beam, S)
    if padding_mask is not None:
        weights = weights.masked_fill(padding_mask.view(B, 1, 1, S), float("-inf"))
    weights = F.softmax(weights, dim=-1, dtype=torch.float32).type_as(weights)
    return (weights @ values).transpose(1, 2).reshape(N, -1)  # (B, beam, heads, dv) -> (N, heads * dv)


#: The fused attention reads the keys' source positions in blocks of this many (zero padded).
KEY_ALIGN = 8


def attention_keys(keys: Tensor, fused: bool) -> Tensor:
    """The layout a step's keys are kept in: ``keys (B, heads, S, d)`` as they are, or with
    ``fused`` transposed to ``(B, heads, d, Sp)`` (contiguous, zeros after S, Sp the next multiple
    of :data:`KEY_ALIGN`), as ``beam_attention`` reads them."""
    if not fused:
        return keys
    S = keys.size(2)
    return F.pad(keys.transpose(2, 3), (0, -S % KEY_ALIGN)).contiguous()


def beam_attention(query: Tensor, keys: Tensor, values: Tensor, padding_mask: Optional[Tensor], scaling: float,
                   fused: bool) -> Tensor:
    """:func:`beam_attention_reference`, or with ``fused`` ``torch.ops.fairseq_lrn.beam_attention``,
    which reads the keys transposed and padded, ``(B, heads, d, Sp)`` (:func:`attention_keys`)."""
    if fused:
        return torch.ops.fairseq_lrn.beam_attention(query, keys, values, padding_mask, scaling)
    return beam_attention_reference(query, keys, values, padding_mask, scaling)


class FusedTransformerLRNLayers(NamedTuple):
    """What ``torch.ops.fairseq_lrn.transformer_lrn_layers`` needs of a ``transformer_lrn``
    decoder's layers besides the step's tensors (:func:`fused_transformer_lrn_layers`)."""

    params: List[Tensor]  # per layer, _layer_params' tensors (an empty tensor for an absent one)
    out_features: List[int]  # per layer, the output features of its five int8 layers
    normalize_before: bool
    layer_norm_eps: float
    cell_norm_style: int
    tanh_activation: bool
    gates: int
    scaling: float


#: The int8 layers of a ``TransformerLRNDecoderLayer``, in the order ``decoder_step.cpp`` reads them
#: (each as weight, scale, sum, bias).
TRANSFORMER_LRN_LINEARS = ("lrn.proj", "encoder_attn.q_proj", "encoder_attn.out_proj", "fc1", "fc2")


def _layer_params(layer: nn.Module) -> List[Optional[Tensor]]:
    """One layer's tensors in ``decoder_step.cpp``'s order (None: absent): the LRN projection (4),
    the cell's norm weight and bias, ``lrn_layer_norm`` (2), q_proj (4), out_proj (4),
    ``encoder_attn_layer_norm`` (2), fc1 (4), fc2 (4), ``final_layer_norm`` (2)."""
    def linear(name):
        module = layer.get_submodule(name)
        return [module.weight_int8, module.weight_scale, module.weight_sum, module.bias]

    def norm(module):
        return [module.weight, module.bias]

    return (linear("lrn.proj") + [layer.lrn.norm_weight, layer.lrn.norm_bias] + norm(layer.lrn_layer_norm)
            + linear("encoder_attn.q_proj") + linear("encoder_attn.out_proj") + norm(layer.encoder_attn_layer_norm)
            + linear("fc1") + linear("fc2") + norm(layer.final_layer_norm))


def fused_transformer_lrn_layers(layers: Sequence[nn.Module]) -> Optional[FusedTransformerLRNLayers]:
    """The arguments of ``transformer_lrn_layers`` for a ``transformer_lrn`` decoder's ``layers``
    (``TransformerLRNDecoderLayer``, int8 and compiled), or None when they are not all of the form
    it computes: every linear layer compiled int8, ReLU, plain ``nn.LayerNorm`` with weights and
    one epsilon, a unidirectional LRN, the same settings in every layer."""
    first = layers[0]
    lrn, attention = first.lrn, first.encoder_attn
    norms = [n for layer in layers for n in (layer.lrn_layer_norm, layer.encoder_attn_layer_norm, layer.final_layer_norm)]
    settings = {(layer.normalize_before, layer.lrn.layer_norm_style if layer.lrn.norm_weight is not None else None,
                 layer.lrn.activation, layer.lrn.num_gates, layer.encoder_attn.scaling) for layer in layers}
    fits = (len(settings) == 1 and not lrn.bidirectional
            and all(layer.activation_fn is F.relu for layer in layers)
            and all(type(n) is nn.LayerNorm and n.elementwise_affine and n.bias is not None
                    and n.eps == norms[0].eps for n in norms)
            and all(isinstance(m, Int8Linear) and m.compiled
                    for layer in layers for m in map(layer.get_submodule, TRANSFORMER_LRN_LINEARS)))
    if not fits:
        return None
    absent = torch.empty(0)  # a trace cannot record lists of optional tensors
    return FusedTransformerLRNLayers(
        params=[absent if t is None else t for layer in layers for t in _layer_params(layer)],
        out_features=[layer.get_submodule(name).out_features for layer in layers for name in TRANSFORMER_LRN_LINEARS],
        normalize_before=first.normalize_before, layer_norm_eps=norms[0].eps,
        cell_norm_style=NORM_STYLE_CODES[None if lrn.norm_weight is None else lrn.layer_norm_style],
        tanh_activation=lrn.activation == "tanh", gates=lrn.num_gates, scaling=attention.scaling)


def transformer_lrn_layers(fused: FusedTransformerLRNLayers, x: Tensor, h_prev: Tensor, keys: List[Tensor],
                           values: List[Tensor], padding_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """The decoder layers of a ``transformer_lrn`` step in one compiled call: ``x (N, C)`` (the
    embedded tokens), ``h_prev (N, L, C)`` (every layer's LRN state), each layer's keys (as
    :func:`attention_keys` keeps them with ``fused``) and values ``(B, heads, S, d)``, the
    padding mask ``(B, S)`` or None -> ``(x (N, C), h (N, L, C))``. The same numbers as the
    layers' per-operation step with the fused operations, up to float rounding (tested)."""
    return torch.ops.fairseq_lrn.transformer_lrn_layers(
        x, h_prev, fused.params, fused.out_features, keys, values, padding_mask, fused.normalize_before,
        fused.layer_norm_eps, fused.cell_norm_style, LAYER_NORM_EPS, fused.tanh_activation, fused.gates,
        fused.scaling)
