"""One LRN step from the packed projections, in as few kernels as it takes: the decoding path.

Incremental decoding runs one cell update per layer and generated token, on small tensors, where
each kernel launch costs more than its arithmetic. :func:`lrn_step` computes exactly what
:func:`~fairseq_lrn.ops.reference.lrn_cell` computes (it is tested against it), with both gates'
pre-activations in one ``addcmul`` and one ``sigmoid``: 4 kernels instead of 7 (LRN), 7 instead
of 10 (oLRN).
"""

from typing import Dict, Tuple

import torch
from torch import Tensor

_GATE_SIGNS: Dict[Tuple[torch.dtype, torch.device], Tensor] = {}


def _gate_signs(like: Tensor) -> Tensor:
    """``[[+1], [-1]]`` ``(2, 1)`` in ``like``'s dtype and device (cached): input gate reads
    ``p + h``, forget gate ``q - h``."""
    key = (like.dtype, like.device)
    signs = _GATE_SIGNS.get(key)
    if signs is None:
        signs = _GATE_SIGNS[key] = torch.tensor([[1.0], [-1.0]], dtype=like.dtype, device=like.device)
    return signs


def lrn_step(pqr: Tensor, h_prev: Tensor, activation: str = "identity") -> Tensor:
    """One step: pqr ``(B, G, D)`` = ``[p; q; r]`` (G = 3) or ``[p; q; r; s]`` (G = 4, the
    oLRN output gate), h_prev ``(B, D)`` -> h ``(B, D)``, as ``lrn_cell``:
    ``i, f = sigmoid(p + h_prev), sigmoid(q - h_prev)``, ``c = g(i*r + f*h_prev)``,
    ``h = c`` or ``sigmoid(s - c) * c``. Differentiable (plain autograd)."""
    gates = torch.sigmoid(torch.addcmul(pqr[:, :2], _gate_signs(pqr), h_prev.unsqueeze(1)))
    c = torch.addcmul(gates[:, 0] * pqr[:, 2], gates[:, 1], h_prev)
    if activation == "tanh":
        c = torch.tanh(c)
    if pqr.size(1) == 4:
        c = torch.sigmoid(pqr[:, 3] - c) * c
    return c
