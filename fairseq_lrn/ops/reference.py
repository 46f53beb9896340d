"""Plain-PyTorch LRN recurrence: the ground truth every fast path is tested against.

Conventions shared by every implementation in ``fairseq_lrn.ops``:

* ``pqr`` is the projection ``x W + b`` for the whole sequence, time-major, shaped
  ``(T, B, 3, D)``: ``pqr[:, :, 0]`` is p (input gate), ``[:, :, 1]`` is q (forget gate),
  ``[:, :, 2]`` is r (value). With ``output_gate=True`` (oLRN) it is ``(T, B, 4, D)`` and
  ``[:, :, 3]`` is s (output gate).
* With ``bidirectional=True`` the channel axis holds two directions, ``D = 2 * d``:
  channels ``[0, d)`` run forward in time, channels ``[d, 2d)`` run backward
  (from ``t = T-1`` down to ``t = 0``).
* ``h0`` is the initial state ``(B, D)`` (zeros when None).
* ``mask`` is ``(T, B)`` bool, True at padded steps. A padded step carries the state
  forward unchanged and its output is zero; its p, q, r (, s) get zero gradient. This holds
  for left padding (fairseq's source side) and right padding alike, in both directions.
* Returns ``(out, h_last)``: ``out`` ``(T, B, D)`` holds every state (zero at padded
  steps), ``h_last`` ``(B, D)`` is the state after the last step each direction walked
  (for ``T = 0``: an empty ``out`` and ``h_last`` = ``h0``, zeros when None).
* ``h0`` and ``mask`` are on ``pqr``'s device (else a ValueError naming both devices).

The cell (Zhang & Sennrich, 2019)::

    i_t = sigmoid(p_t + h_{t-1})
    f_t = sigmoid(q_t - h_{t-1})
    h_t = g(i_t * r_t + f_t * h_{t-1})       g = identity or tanh

oLRN, the authors' output-gated variant (their ``zero`` toolkit), adds a fourth gate::

    c_t = g(i_t * r_t + f_t * h_{t-1})       the LRN cell above, g = the layer's activation
    o_t = sigmoid(s_t - c_t)
    h_t = o_t * c_t                          both the output and the state carried to t+1

(g is the same ``activation`` option as for LRN, identity or tanh; the authors' MT model,
where oLRN was used, has identity.)
"""

from typing import Optional, Tuple

import torch
from torch import Tensor

ACTIVATIONS = ("identity", "tanh")


def num_gates(output_gate: bool) -> int:
    """Gates per channel in ``pqr``: 3 (p, q, r) for LRN, 4 (p, q, r, s) for oLRN."""
    return 4 if output_gate else 3


def check_recurrence_args(pqr: Tensor, h0: Optional[Tensor], mask: Optional[Tensor],
                          activation: str, bidirectional: bool, output_gate: bool = False) -> None:
    """Raise ValueError naming the argument whose shape, value or device is wrong."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    gates = num_gates(output_gate)
    if pqr.dim() != 4 or pqr.size(2) != gates:
        raise ValueError(f"pqr must be shaped (T, B, {gates}, D) with output_gate={bool(output_gate)}, "
                         f"got {tuple(pqr.shape)}")
    T, B, _, D = pqr.shape
    if bidirectional and D % 2:
        raise ValueError(f"bidirectional needs an even channel count D, got D={D}")
    if h0 is not None and tuple(h0.shape) != (B, D):
        raise ValueError(f"h0 must be shaped (B, D) = {(B, D)}, got {tuple(h0.shape)}")
    if mask is not None:
        if tuple(mask.shape) != (T, B):
            raise ValueError(f"mask must be shaped (T, B) = {(T, B)}, got {tuple(mask.shape)}")
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor (True = padding), got {mask.dtype}")
    for name, tensor in (("h0", h0), ("mask", mask)):
        if tensor is not None and tensor.device != pqr.device:
            raise ValueError(f"{name} must be on pqr's device ({pqr.device}), got {name} on {tensor.device}")


def lrn_cell(p: Tensor, q: Tensor, r: Tensor, h_prev: Tensor, activation: str = "identity",
             s: Optional[Tensor] = None) -> Tensor:
    """One LRN step (one oLRN step when the output gate's ``s`` is given): all tensors
    ``(..., d)``; returns ``h_t`` of the same shape."""
    i = torch.sigmoid(p + h_prev)
    f = torch.sigmoid(q - h_prev)
    c = i * r + f * h_prev
    if activation == "tanh":
        c = torch.tanh(c)
    return c if s is None else torch.sigmoid(s - c) * c


def _run_direction(pqr: Tensor, h: Tensor, mask: Optional[Tensor], activation: str,
                   reverse: bool) -> Tuple[Tensor, Tensor]:
    """Walk one direction over ``pqr`` ``(T, B, 3 or 4, d)`` from state ``h`` ``(B, d)``
    (T = 0: an empty ``out`` and ``h`` itself)."""
    T = pqr.size(0)
    if T == 0:
        return h.new_zeros(0, *h.shape), h
    steps = pqr.unbind(0)  # one autograd node for all steps (indexing per step would cost O(T^2))
    outs = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        p, q, r, *s = steps[t].unbind(1)
        h_new = lrn_cell(p, q, r, h, activation, *s)
        if mask is None:
            h = h_new
            outs[t] = h
        else:
            pad = mask[t].unsqueeze(-1)
            h = torch.where(pad, h, h_new)
            outs[t] = h.masked_fill(pad, 0.0)
    return torch.stack(outs, 0), h


def lrn_recurrence_reference(pqr: Tensor, h0: Optional[Tensor] = None, mask: Optional[Tensor] = None,
                             activation: str = "identity", bidirectional: bool = False,
                             output_gate: bool = False) -> Tuple[Tensor, Tensor]:
    """LRN (oLRN with ``output_gate``) recurrence over precomputed projections, step by step
    with autograd.

    pqr ``(T, B, 3, D)`` (``(T, B, 4, D)`` with ``output_gate``), h0 ``(B, D)`` or None, mask
    ``(T, B)`` bool or None. Returns ``out (T, B, D)`` and ``h_last (B, D)``; see the module docstring.
    """
    check_recurrence_args(pqr, h0, mask, activation, bidirectional, output_gate)
    T, B, _, D = pqr.shape
    if h0 is None:
        h0 = pqr.new_zeros(B, D)
    if not bidirectional:
        return _run_direction(pqr, h0, mask, activation, reverse=False)
    d = D // 2
    out_f, last_f = _run_direction(pqr[..., :d], h0[:, :d], mask, activation, reverse=False)
    out_b, last_b = _run_direction(pqr[..., d:], h0[:, d:], mask, activation, reverse=True)
    return torch.cat([out_f, out_b], -1), torch.cat([last_f, last_b], -1)
