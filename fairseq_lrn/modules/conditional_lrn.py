"""The authors' conditional LRN (their toolkit zero, ``rnns/rnn.py`` ``cond_rnn``): ONE state
chain through two cells with the attention between them, and the decoder's initial states.

At target step t, with y_t the (embedded) input and h_{t-1} the state carried from step t-1::

    s_t = lower(h_{t-1}, y_t)            the lower LRN cell continues from the upper cell's state
    c_t = attention(s_t, encoder states)
    h_t = higher(s_t, c_t)               the higher LRN cell continues from s_t, reading c_t

and h_t is carried to t+1 (zero's cond_rnn returns the h_t and the c_t of every step). The attention
sits inside the recurrence, so training is serial over the target steps: only the lower cell's input
projection is computed for all positions at once. Every step runs the cell update
:func:`~fairseq_lrn.ops.lrn_step` (the ``impl`` of the recurrence kernels does not apply here).
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import lrn_step
from .lrn import LRNLayer

INIT_STATE_STYLES = ("tanh_linear", "zero")


class ConditionalLRN(nn.Module):
    """zero's ``cond_rnn`` with LRN (oLRN with ``output_gate``) cells; see the module docstring.

    ``attention`` is any module with :class:`~fairseq_lrn.modules.Attention`'s call signature
    (``project_keys`` once per source, then ``(query, keys, encoder_out, padding_mask)``) whose
    contexts have ``context_size`` channels.
    """

    def __init__(self, input_size: int, hidden_size: int, attention: nn.Module, context_size: int, *,
                 activation: str = "identity", layer_norm: bool = False,
                 layer_norm_style: str = "per_gate", output_gate: bool = False):
        super().__init__()
        cell = dict(activation=activation, layer_norm=layer_norm, layer_norm_style=layer_norm_style,
                    output_gate=output_gate)
        self.lower = LRNLayer(input_size, hidden_size, **cell)
        self.attention = attention
        self.higher = LRNLayer(context_size, hidden_size, **cell)
        self.activation = activation

    def forward(self, x: Tensor, h0: Tensor, keys: Tensor, encoder_out: Tensor,
                encoder_padding_mask: Optional[Tensor], padding_mask: Optional[Tensor] = None
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """x ``(T, B, input_size)``, h0 ``(B, H)``, keys from ``attention.project_keys``,
        encoder_out ``(S, B, K)``, encoder_padding_mask ``(B, S)``, padding_mask ``(T, B)`` (True
        at padded target steps: both states are carried unchanged there, as zero's mask does).

        Returns the states ``h (T, B, H)``, the contexts ``(T, B, K)``, the attention weights
        ``(B, T, S)`` and the last state ``(B, H)``."""
        pqr = self.lower.project(x).unbind(0)  # the only work done for all steps at once
        h, states, contexts, weights = h0, [], [], []
        for t in range(x.size(0)):
            pad = None if padding_mask is None else padding_mask[t].unsqueeze(-1)
            h, context, attn = self._step(pqr[t], h, keys, encoder_out, encoder_padding_mask, pad)
            states.append(h)
            contexts.append(context)
            weights.append(attn)
        return torch.stack(states, 0), torch.stack(contexts, 0), torch.stack(weights, 1), h

    def step(self, x: Tensor, h_prev: Tensor, keys: Tensor, encoder_out: Tensor,
             encoder_padding_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        """One target step (incremental decoding): x ``(B, input_size)``, h_prev ``(B, H)`` ->
        the new state ``h (B, H)``, the context ``(B, K)`` and the weights ``(B, S)``."""
        return self._step(self.lower.project(x), h_prev, keys, encoder_out, encoder_padding_mask)

    def step_with(self, x: Tensor, h_prev: Tensor, attend) -> Tuple[Tensor, Tensor]:
        """One target step with the attention given as a function ``attend(s (B, H)) -> context
        (B, K)`` (for a caller that lays out the encoder memory its own way, e.g. shared by the
        beams of a sentence): x ``(B, input_size)``, h_prev ``(B, H)`` -> the new state ``h (B, H)``
        and the context ``(B, K)``; the numbers of :meth:`step`."""
        s = lrn_step(self.lower.project(x), h_prev.to(x.dtype), self.activation)
        context = attend(s)
        return lrn_step(self.higher.project(context), s, self.activation), context

    def _step(self, pqr_lower: Tensor, h_prev: Tensor, keys: Tensor, encoder_out: Tensor,
              encoder_padding_mask: Optional[Tensor], pad: Optional[Tensor] = None
              ) -> Tuple[Tensor, Tensor, Tensor]:
        """s = lower(h_prev), attention from s, h = higher(s, context); ``pad (B, 1)`` True
        carries h_prev through (zero: ``s = m*s + (1-m)*h_``, ``h = m*h + (1-m)*s``)."""
        h_prev = h_prev.to(pqr_lower.dtype)
        s = lrn_step(pqr_lower, h_prev, self.activation)
        if pad is not None:
            s = torch.where(pad, h_prev, s)
        context, attn = self.attention(s.unsqueeze(0), keys, encoder_out, encoder_padding_mask)
        h = lrn_step(self.higher.project(context[0]), s, self.activation)
        if pad is not None:
            h = torch.where(pad, s, h)
        return h, context[0], attn[:, 0]


class InitialStates(nn.Module):
    """Decoder initial states from the encoder's final state ``(B, input_size)`` ->
    ``(num_states, B, hidden_size)``:

    * ``tanh_linear``: ``tanh(W z + b)`` (this project's parallel decoder);
    * ``zero``: the cell's own initializer in zero (``rnns/cell.py`` ``_get_init_state``, called by
      ``models/deepnmt.py`` for each decoder layer): ``LN(W_l z) + b_l`` with ``layer_norm``
      (the norm over the state's H channels; its shift is zero's bias), ``W_l z + b_l`` without;
      no activation.
    """

    def __init__(self, input_size: int, hidden_size: int, num_states: int, style: str = "tanh_linear",
                 layer_norm: bool = False):
        super().__init__()
        if style not in INIT_STATE_STYLES:
            raise ValueError(f"--decoder-init-state must be one of {INIT_STATE_STYLES}, got {style!r}")
        self.style, self.num_states, self.hidden_size = style, num_states, hidden_size
        normed = style == "zero" and layer_norm
        self.proj = nn.Linear(input_size, num_states * hidden_size, bias=not normed)
        if normed:
            self.norm_weight = nn.Parameter(torch.ones(num_states, hidden_size))
            self.norm_bias = nn.Parameter(torch.zeros(num_states, hidden_size))
        else:
            self.register_parameter("norm_weight", None)
            self.register_parameter("norm_bias", None)

    def forward(self, final_state: Tensor) -> Tensor:
        y = self.proj(final_state).view(final_state.size(0), self.num_states, self.hidden_size)
        if self.style == "tanh_linear":
            y = torch.tanh(y)
        elif self.norm_weight is not None:
            y = torch.addcmul(self.norm_bias, F.layer_norm(y, (self.hidden_size,)), self.norm_weight)
        return y.transpose(0, 1)
