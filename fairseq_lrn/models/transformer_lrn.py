"""fairseq's Transformer encoder with a fast LRN decoder: ``--arch transformer_lrn``.

The encoder is fairseq's own ``TransformerEncoder``; the decoder is fairseq's
``TransformerDecoder`` (embeddings, output projection, adaptive softmax, layerdrop,
alignment) whose layers put an LRN in place of masked self-attention
(:class:`~fairseq_lrn.modules.TransformerLRNDecoderLayer`: LRN -> fairseq's encoder
``MultiheadAttention`` -> FFN). Every ``--encoder-*`` / ``--decoder-*`` flag of ``--arch
transformer`` keeps its meaning, so switching ``--arch transformer`` to ``--arch
transformer_lrn`` keeps a command valid, with these differences:

* ``--decoder-attention-heads`` sets the heads of the encoder attention (fairseq uses it for
  both of its decoder attentions; there is no decoder self-attention here).
* The decoder has no positional embeddings unless ``--decoder-positional-embeddings`` (the
  recurrence knows the order); ``--decoder-learned-pos`` needs that flag.
* ``--cross-self-attention`` and ``--no-cross-attention`` are refused (they describe a
  self-attention that is not there / a decoder without the encoder).

Incremental decoding keeps, per layer, the LRN state ``(B, C)`` and the encoder attention's
static key/value cache: nothing grows with the output length.
"""

from typing import Dict, Optional

from fairseq import utils
from fairseq.distributed import fsdp_wrap
from fairseq.incremental_decoding_utils import with_incremental_state
from fairseq.models import register_model, register_model_architecture
from fairseq.models.transformer import TransformerConfig, TransformerDecoderBase, TransformerModel
from fairseq.models.transformer import transformer_legacy
from fairseq.modules import MultiheadAttention
from fairseq.modules.checkpoint_activations import checkpoint_wrapper
from fairseq.modules.quant_noise import quant_noise
from torch import Tensor

from ..modules import TransformerLRNDecoderLayer
from .lrn_cell_options import TRAINING_MACHINE_ARGS, add_lrn_cell_args, check_lrn_cell_args, lrn_cell_defaults
from .model_checks import ChecksDictionarySizes, check_option_ranges

STATE_KEY = "lrn_state"

# Flags of --arch transformer that describe a decoder self-attention (or no encoder
# attention at all): refused, naming the flag, rather than silently ignored.
REFUSED_FLAGS = {
    "cross_self_attention": "the LRN decoder has no self-attention to join with the encoder attention",
    "no_cross_attention": "the LRN decoder's layers attend over the encoder",
    "decoder_xformers_att_config": "it configures fairseq's decoder self-attention (the encoder attention "
                                   "takes --encoder-xformers-att-config, as in fairseq)",
}


@with_incremental_state
class IncrementalLRNDecoderLayer(TransformerLRNDecoderLayer):
    """:class:`TransformerLRNDecoderLayer` called the way fairseq's ``TransformerDecoder``
    calls its layers; keeps its LRN state ``(B, C)`` in fairseq's incremental state."""

    def forward(self, x, encoder_out=None, encoder_padding_mask=None, incremental_state=None,
                prev_self_attn_state=None, prev_attn_state=None, self_attn_mask=None,
                self_attn_padding_mask=None, need_attn=False, need_head_weights=False):
        """As fairseq's decoder layer: x ``(T, B, C)`` -> ``(x, attn, None)``. The causal
        ``self_attn_mask`` is not needed (the recurrence only looks back)."""
        h0 = None
        if incremental_state is not None:
            h0 = (self.get_incremental_state(incremental_state, STATE_KEY) or {}).get("h")
        x, attn, h_last = super().forward(
            x, encoder_out, encoder_padding_mask, incremental_state=incremental_state, h0=h0,
            padding_mask=self_attn_padding_mask, need_attn=need_attn,
            need_head_weights=need_head_weights)
        if incremental_state is not None:
            self.set_incremental_state(incremental_state, STATE_KEY, {"h": h_last})
        return x, attn, None

    def reorder_incremental_state(self, incremental_state: Dict[str, Dict[str, Optional[Tensor]]],
                                  new_order: Tensor) -> None:
        """Select batch entries ``new_order`` of the LRN state (beam search)."""
        saved = self.get_incremental_state(incremental_state, STATE_KEY)
        if saved is not None and saved.get("h") is not None:
            self.set_incremental_state(incremental_state, STATE_KEY,
                                       {"h": saved["h"].index_select(0, new_order)})


class TransformerLRNDecoder(TransformerDecoderBase):
    """fairseq's ``TransformerDecoder`` with :class:`IncrementalLRNDecoderLayer` layers.
    Returns ``(logits (B, T, V), {"attn": [...], "inner_states": [...]})`` as fairseq's."""

    def __init__(self, cfg: TransformerConfig, dictionary, embed_tokens, decoder_positions: bool):
        super().__init__(cfg, dictionary, embed_tokens, no_encoder_attn=False)
        if not decoder_positions:
            self.embed_positions = None

    def build_decoder_layer(self, cfg, no_encoder_attn=False):
        """One LRN decoder layer, wrapped for activation checkpointing / FSDP as fairseq wraps
        its own (``TransformerDecoderBase.build_decoder_layer``)."""
        q_noise, block = cfg.quant_noise.pq, cfg.quant_noise.pq_block_size
        encoder_attention = MultiheadAttention(
            cfg.decoder.embed_dim, cfg.decoder.attention_heads, kdim=cfg.encoder.embed_dim,
            vdim=cfg.encoder.embed_dim, dropout=cfg.attention_dropout, encoder_decoder_attention=True,
            q_noise=q_noise, qn_block_size=block, xformers_att_config=cfg.encoder.xformers_att_config)
        activation_dropout = cfg.activation_dropout or cfg.relu_dropout or 0.0
        layer = IncrementalLRNDecoderLayer(
            embed_dim=cfg.decoder.embed_dim, ffn_embed_dim=cfg.decoder.ffn_embed_dim,
            encoder_attention=encoder_attention, dropout=cfg.dropout,
            activation_dropout=float(activation_dropout),
            activation_fn=utils.get_activation_fn(activation=cfg.activation_fn),
            normalize_before=cfg.decoder.normalize_before, lrn_activation=cfg.lrn_activation,
            lrn_layer_norm=cfg.layer_norm, lrn_impl=cfg.lrn_impl,
            output_gate=cfg.lrn_output_gate)
        # quant noise where fairseq's layer has it: the FFN and, in place of the self-attention's
        # projections, the LRN's (a no-op at --quant-noise-pq 0)
        for name in ("fc1", "fc2"):
            setattr(layer, name, quant_noise(getattr(layer, name), q_noise, block))
        layer.lrn.proj = quant_noise(layer.lrn.proj, q_noise, block)
        if cfg.checkpoint_activations:
            layer = checkpoint_wrapper(layer, offload_to_cpu=cfg.offload_activations)
        min_params_to_wrap = 0 if cfg.checkpoint_activations else cfg.min_params_to_wrap
        return fsdp_wrap(layer, min_num_params=min_params_to_wrap)


def check_args(args) -> None:
    """Raise ValueError naming the first option that cannot build a transformer_lrn."""
    for name, why in REFUSED_FLAGS.items():
        if getattr(args, name, False):
            raise ValueError(f"--{name.replace('_', '-')} does not apply to --arch transformer_lrn: {why}")
    if args.decoder_learned_pos and not args.decoder_positional_embeddings:
        raise ValueError("--decoder-learned-pos needs --decoder-positional-embeddings (the LRN decoder "
                         "has no positional embeddings by default)")
    check_lrn_cell_args(args)
    check_option_ranges(args, positive=("encoder_layers", "decoder_layers", "encoder_embed_dim",
                                        "decoder_embed_dim", "decoder_ffn_embed_dim", "decoder_attention_heads"))
    if args.decoder_embed_dim % args.decoder_attention_heads:
        raise ValueError(f"--decoder-embed-dim ({args.decoder_embed_dim}) must be divisible by "
                         f"--decoder-attention-heads ({args.decoder_attention_heads})")
    check_option_ranges(args, probabilities=("dropout",))


@register_model("transformer_lrn")
class TransformerLRNModel(ChecksDictionarySizes, TransformerModel):
    """fairseq's Transformer encoder + an LRN decoder (see the module docstring)."""

    MODEL_NAME = "transformer_lrn"
    TRAINING_MACHINE_ARGS = TRAINING_MACHINE_ARGS

    @classmethod
    def hub_models(cls):
        return {}  # fairseq's pretrained transformers are not transformer_lrn checkpoints

    @classmethod
    def add_args(cls, parser):
        """Every flag of ``--arch transformer``, plus the LRN decoder's."""
        TransformerModel.add_args(parser)
        add = parser.add_argument
        add_lrn_cell_args(add, layer_norm_help="layer-normalise each LRN gate's projection xW (before "
                                               "the bias; default on)",
                          no_layer_norm_help="no layer norm on the LRN projections (the layers' own norms stay)")
        add("--decoder-positional-embeddings", action="store_true",
            help="add positional embeddings to the decoder input (off by default: the "
                 "recurrence knows the order; --decoder-learned-pos picks learned ones)")

    @classmethod
    def build_model(cls, args, task):
        transformer_lrn_base(args)
        check_args(args)
        return super().build_model(args, task)

    @classmethod
    def build_decoder(cls, args, tgt_dict, embed_tokens):
        return TransformerLRNDecoder(TransformerConfig.from_namespace(args), tgt_dict, embed_tokens,
                                     decoder_positions=args.decoder_positional_embeddings)


def lrn_decoder_defaults(args) -> None:
    """Defaults of the LRN decoder's own flags (identity activation and layer-normalised
    projections, the authors' MT settings; no decoder positional embeddings)."""
    lrn_cell_defaults(args, activation="identity")
    args.decoder_positional_embeddings = getattr(args, "decoder_positional_embeddings", False)


@register_model_architecture("transformer_lrn", "transformer_lrn")
def transformer_lrn_base(args):
    """fairseq's ``transformer`` defaults (512 dims, FFN 2048, 8 heads, 6+6 layers) with an LRN decoder."""
    lrn_decoder_defaults(args)
    transformer_legacy.base_architecture(args)


@register_model_architecture("transformer_lrn", "transformer_lrn_iwslt_de_en")
def transformer_lrn_iwslt_de_en(args):
    """fairseq's ``transformer_iwslt_de_en`` (512 dims, FFN 1024, 4 heads, 6+6) with an LRN decoder."""
    lrn_decoder_defaults(args)
    transformer_legacy.transformer_iwslt_de_en(args)


@register_model_architecture("transformer_lrn", "transformer_lrn_wmt_en_de")
def transformer_lrn_wmt_en_de(args):
    """fairseq's ``transformer_wmt_en_de`` (Transformer-base) with an LRN decoder."""
    lrn_decoder_defaults(args)
    transformer_legacy.transformer_wmt_en_de(args)


__all__ = ["TransformerLRNDecoder", "TransformerLRNModel"]
