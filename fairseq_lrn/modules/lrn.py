"""LRN layers as nn.Modules, in the spirit of ``nn.LSTM`` (time-major).

All parameter-dependent work is one projection over the whole sequence; the recurrence
(``fairseq_lrn.ops``) is elementwise. Layouts follow the ops: a bidirectional layer's
channels are ``[forward | backward]``.
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import ACTIVATIONS, IMPLS, lrn_recurrence, lrn_step, num_gates

LAYER_NORM_STYLES = ("per_gate", "whole")


class LRNLayer(nn.Module):
    """One LRN layer: ``pqr = x W + b`` (optionally layer-normalised before the bias: each
    gate's d channels on their own with ``layer_norm_style="per_gate"``, or all gates' channels
    together, per direction, with ``"whole"``, as the authors' ``zero`` toolkit does), then the
    recurrence. With ``output_gate`` it is an oLRN layer: the projection has a
    fourth gate s and ``h = sigmoid(s - c) * c`` (c the LRN cell; see :mod:`fairseq_lrn.ops`).

    input ``(T, B, input_size)`` -> output ``(T, B, D)`` with ``D = ndir * hidden_size``.
    """

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool = False,
                 activation: str = "identity", layer_norm: bool = False, impl: str = "auto",
                 output_gate: bool = False, layer_norm_style: str = "per_gate"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        if layer_norm_style not in LAYER_NORM_STYLES:
            raise ValueError(f"layer_norm_style must be one of {LAYER_NORM_STYLES}, got {layer_norm_style!r}")
        self.layer_norm_style = layer_norm_style
        self.input_size, self.hidden_size = input_size, hidden_size
        self.bidirectional, self.activation, self.impl = bidirectional, activation, impl
        self.output_gate = bool(output_gate)
        self.num_gates = num_gates(self.output_gate)
        self.num_directions = 2 if bidirectional else 1
        self.output_size = self.num_directions * hidden_size
        # Output features are laid out (gate, direction, channel).
        self.proj = nn.Linear(input_size, self.num_gates * self.output_size, bias=not layer_norm)
        if layer_norm:  # the norm's shift plays the role of the bias b (elementwise in both styles)
            norm_shape = (self.num_gates, self.num_directions, hidden_size)
            self.norm_weight = nn.Parameter(torch.ones(norm_shape))
            self.norm_bias = nn.Parameter(torch.zeros(norm_shape))
        else:
            self.register_parameter("norm_weight", None)
            self.register_parameter("norm_bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform W and zero bias, as in the authors' code."""
        nn.init.xavier_uniform_(self.proj.weight)
        if self.proj.bias is not None:
            nn.init.zeros_(self.proj.bias)

    def project(self, x: Tensor) -> Tensor:
        """``x (..., input_size)`` -> ``pqr (..., G, D)``, G = 3 gates (4 with the output gate)."""
        return self.normalize_projection(self.proj(x))

    def normalize_projection(self, y: Tensor) -> Tensor:
        """The linear projection's output ``y (..., G * D)`` -> ``pqr (..., G, D)``: the layer
        norm and its shift, when the layer has them, else only the view."""
        if self.norm_weight is None:
            return y.unflatten(-1, (self.num_gates, self.output_size))
        y = y.unflatten(-1, (self.num_gates, self.num_directions, self.hidden_size))
        if self.layer_norm_style == "per_gate":
            y = F.layer_norm(y, (self.hidden_size,))
        else:  # whole: the statistics of all gates of one direction together
            y = F.layer_norm(y.transpose(-3, -2), (self.num_gates, self.hidden_size)).transpose(-3, -2)
        y = torch.addcmul(self.norm_bias, y, self.norm_weight)
        return y.flatten(-2)

    def forward(self, x: Tensor, h0: Optional[Tensor] = None,
                padding_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """x ``(T, B, input_size)``, h0 ``(B, D)`` (zeros if None), padding_mask ``(T, B)`` bool
        (True = pad). Returns ``out (T, B, D)`` (zero at padded steps) and ``h_last (B, D)``,
        computed by the recurrence implementation ``impl`` whatever T is (incremental decoders
        call :meth:`step` for one token)."""
        pqr = self.project(x)
        return lrn_recurrence(pqr, h0, padding_mask, self.activation, self.bidirectional, self.impl,
                              output_gate=self.output_gate)

    def step(self, x: Tensor, h_prev: Optional[Tensor] = None) -> Tensor:
        """One step of a unidirectional layer (incremental decoding): x ``(B, input_size)``,
        h_prev ``(B, D)`` (zeros if None) -> h ``(B, D)``, the cell update :func:`lrn_step`
        (the same numbers as :meth:`forward` over a sequence of one step)."""
        if self.bidirectional:
            raise RuntimeError("step() needs a unidirectional layer: a backward direction "
                               "cannot be run one step at a time")
        pqr = self.project(x)
        if h_prev is None:
            h_prev = pqr.new_zeros(pqr.size(0), self.output_size)
        return lrn_step(pqr, h_prev, self.activation)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, bidirectional={self.bidirectional}, "
                f"activation={self.activation}, layer_norm={self.norm_weight is not None}, impl={self.impl}, "
                f"output_gate={self.output_gate}"
                + (f", layer_norm_style={self.layer_norm_style}" if self.layer_norm_style != "per_gate" else ""))


class LRN(nn.Module):
    """Stacked LRN, like ``nn.LSTM(input_size, hidden_size, num_layers, dropout=, bidirectional=)``
    (time-major); oLRN layers with ``output_gate``. Dropout is applied between layers, not after
    the last one.

    forward: x ``(T, B, input_size)``, h0 ``(L, B, D)``, padding_mask ``(T, B)`` ->
    ``out (T, B, D)``, ``h_n (L, B, D)``, where ``D = ndir * hidden_size``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, activation: str = "identity",
                 layer_norm: bool = False, impl: str = "auto", output_gate: bool = False):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        ndir = 2 if bidirectional else 1
        self.layers = nn.ModuleList(
            LRNLayer(input_size if k == 0 else ndir * hidden_size, hidden_size, bidirectional,
                     activation, layer_norm, impl, output_gate=output_gate)
            for k in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.output_size = ndir * hidden_size

    def forward(self, x: Tensor, h0: Optional[Tensor] = None,
                padding_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        finals = []
        for k, layer in enumerate(self.layers):
            if k:
                x = self.dropout(x)
            x, h_last = layer(x, None if h0 is None else h0[k], padding_mask)
            finals.append(h_last)
        return x, torch.stack(finals, 0)

    def step(self, x: Tensor, state: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """One step (incremental decoding): x ``(B, input_size)``, state ``(L, B, D)`` (zeros
        if None) -> ``out (B, D)``, new state ``(L, B, D)``."""
        new_state = []
        for k, layer in enumerate(self.layers):
            if k:
                x = self.dropout(x)
            x = layer.step(x, None if state is None else state[k])
            new_state.append(x)
        return x, torch.stack(new_state, 0)


class LRNBlock(nn.Module):
    """The authors' MT layer: LRN (oLRN with ``output_gate``) -> linear (D -> output_size) ->
    dropout -> + residual -> optional LayerNorm.

    forward: x ``(T, B, input_size)``, residual ``(T, B, output_size)`` or None, h0 ``(B, D)``,
    padding_mask ``(T, B)`` -> ``y (T, B, output_size)``, ``h_last (B, D)``.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 bidirectional: bool = False, dropout: float = 0.0, activation: str = "identity",
                 layer_norm: bool = False, impl: str = "auto", output_gate: bool = False,
                 layer_norm_style: str = "per_gate"):
        super().__init__()
        self.lrn = LRNLayer(input_size, hidden_size, bidirectional, activation, layer_norm, impl,
                            output_gate=output_gate, layer_norm_style=layer_norm_style)
        self.out_proj = nn.Linear(self.lrn.output_size, output_size)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(output_size) if layer_norm else None
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: Tensor, residual: Optional[Tensor] = None, h0: Optional[Tensor] = None,
                padding_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """See the class docstring: the LRN's recurrence over the sequence, then the output."""
        h, h_last = self.lrn(x, h0, padding_mask)
        return self._output(h, residual), h_last

    def step(self, x: Tensor, residual: Optional[Tensor] = None,
             h_prev: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """One step (incremental decoding; unidirectional): x ``(B, input_size)``, residual
        ``(B, output_size)`` or None, h_prev ``(B, D)`` (zeros if None) -> ``y (B, output_size)``
        and the new state ``h (B, D)``."""
        h = self.lrn.step(x, h_prev)
        return self._output(h, residual), h

    def _output(self, h: Tensor, residual: Optional[Tensor]) -> Tensor:
        """``norm(dropout(h W_o + b_o) + residual)`` over LRN states ``h (..., D)``."""
        y = self.dropout(self.out_proj(h))
        if residual is not None:
            y = y + residual
        if self.norm is not None:
            y = self.norm(y)
        return y
