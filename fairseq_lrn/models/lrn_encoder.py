"""LRN encoder: embeddings, a (bidirectional) first layer, unidirectional upper layers."""

from typing import Dict, Optional

import torch.nn.functional as F
from fairseq.models import FairseqEncoder
from torch import Tensor, nn

from ..modules import LRNBlock

EncoderOut = Dict[str, Optional[Tensor]]


class LRNEncoder(FairseqEncoder):
    """Each layer is an :class:`LRNBlock` (LRN -> linear -> dropout -> residual when the
    sizes match -> optional LayerNorm). Only the first layer may be bidirectional. With
    ``output_gate`` every layer is an oLRN.

    Returns a dict: ``encoder_out (S, B, hidden)``, ``final_state (B, D_top)`` (the top LRN's
    state after the last real token; both directions when it is bidirectional) and
    ``padding_mask (B, S)`` bool (None when the batch has no padding).
    """

    def __init__(self, dictionary, embed_tokens: nn.Embedding, *,
                 hidden_size: int, num_layers: int, bidirectional: bool,
                 dropout_in: float, dropout_out: float,
                 activation: str, layer_norm: bool, impl: str, output_gate: bool = False,
                 layer_norm_style: str = "per_gate", max_source_positions: int):
        """Everything after the source ``dictionary`` and ``embed_tokens`` is keyword-only:

        * layers: ``hidden_size`` of every block (its LRN's per direction and its output),
          ``num_layers``, ``bidirectional`` (the first layer only);
        * dropout: ``dropout_in`` on the embeddings, ``dropout_out`` in each block;
        * the cell: ``activation``, ``layer_norm``, ``impl`` (the recurrence implementation),
          ``output_gate`` (oLRN), ``layer_norm_style`` (see :class:`~fairseq_lrn.modules.LRNLayer`);
        * ``max_source_positions``: the longest source fairseq may feed it.
        """
        super().__init__(dictionary)
        self.embed_tokens = embed_tokens
        self.padding_idx = embed_tokens.padding_idx
        self.dropout_in = dropout_in
        self.max_source_positions = max_source_positions
        embed_dim = embed_tokens.embedding_dim
        self.layers = nn.ModuleList(
            LRNBlock(embed_dim if k == 0 else hidden_size, hidden_size, hidden_size,
                     bidirectional=bidirectional and k == 0, dropout=dropout_out,
                     activation=activation, layer_norm=layer_norm, impl=impl, output_gate=output_gate,
                     layer_norm_style=layer_norm_style)
            for k in range(num_layers))
        self.output_size = hidden_size
        self.final_state_size = self.layers[-1].lrn.output_size

    def forward(self, src_tokens: Tensor, src_lengths: Optional[Tensor] = None, **unused) -> EncoderOut:
        """src_tokens ``(B, S)`` (left- or right-padded)."""
        x = F.dropout(self.embed_tokens(src_tokens.t()), self.dropout_in, self.training)  # (S, B, E)
        padding_mask = src_tokens.eq(self.padding_idx)
        if not padding_mask.any():
            padding_mask = None
        time_mask = None if padding_mask is None else padding_mask.t()
        final_state = None
        for layer in self.layers:
            residual = x if x.size(-1) == layer.out_proj.out_features else None
            x, final_state = layer(x, residual, padding_mask=time_mask)
        return {"encoder_out": x, "final_state": final_state, "padding_mask": padding_mask}

    def reorder_encoder_out(self, encoder_out: EncoderOut, new_order: Tensor) -> EncoderOut:
        """Select batch entries ``new_order`` (beam search)."""
        batch_dim = {"encoder_out": 1, "final_state": 0, "padding_mask": 0}
        return {key: None if value is None else value.index_select(batch_dim[key], new_order)
                for key, value in encoder_out.items()}

    def max_positions(self) -> int:
        return self.max_source_positions
