"""The LRN encoder-decoder model for fairseq: ``--arch lrn | lrn_iwslt_de_en | lrn_wmt_en_de |
lrn_wmt_en_de_paper``.

Flags that mean the same as in fairseq's ``lstm`` model carry its names, so switching
``--arch lstm`` to ``--arch lrn`` keeps the rest of a command valid.
"""

from fairseq import utils
from fairseq.models import FairseqEncoderDecoderModel, register_model, register_model_architecture
from torch import nn

from ..modules import ATTENTION_TYPES, INIT_STATE_STYLES, LAYER_NORM_STYLES
from .lrn_cell_options import TRAINING_MACHINE_ARGS, add_lrn_cell_args, check_lrn_cell_args, lrn_cell_defaults
from .lrn_conditional_decoder import LRNConditionalDecoder
from .lrn_decoder import LRNDecoder
from .lrn_encoder import LRNEncoder
from .model_checks import ChecksDictionarySizes, check_option_ranges

DEFAULT_MAX_POSITIONS = int(1e5)
DECODER_STYLES = ("parallel", "conditional")


def Embedding(num_embeddings: int, embedding_dim: int, padding_idx: int) -> nn.Embedding:
    """Token embedding with N(0, dim^-0.5) init and a zero padding row."""
    m = nn.Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx)
    nn.init.normal_(m.weight, mean=0, std=embedding_dim ** -0.5)
    nn.init.constant_(m.weight[padding_idx], 0)
    return m


def parse_attention_type(value) -> str:
    """``--decoder-attention``: an attention type, or lstm's boolean spelling ('True' -> additive)."""
    text = str(value)
    if text.lower() in ("true", "1"):
        return "additive"
    if text.lower() in ("false", "0"):
        raise ValueError("--decoder-attention False: the LRN decoder is built around attention; "
                         f"choose one of {ATTENTION_TYPES}")
    if text not in ATTENTION_TYPES:
        raise ValueError(f"--decoder-attention must be one of {ATTENTION_TYPES} (or True), got {text!r}")
    return text


def check_args(args) -> None:
    """Raise ValueError naming the first option whose value cannot build a model."""
    check_option_ranges(
        args, positive=("encoder_embed_dim", "encoder_hidden_size", "encoder_layers", "decoder_embed_dim",
                        "decoder_hidden_size", "decoder_layers", "decoder_out_embed_dim",
                        "decoder_attention_dim", "decoder_attention_heads"),
        probabilities=("dropout", "encoder_dropout_in", "encoder_dropout_out", "decoder_dropout_in",
                       "decoder_dropout_out"),
        choices={"decoder_style": DECODER_STYLES, "decoder_init_state": INIT_STATE_STYLES,
                 "lrn_layer_norm_style": LAYER_NORM_STYLES})
    check_lrn_cell_args(args)
    if args.decoder_style == "parallel" and args.decoder_init_state != "tanh_linear":
        raise ValueError("--decoder-init-state zero needs --decoder-style conditional (the parallel "
                         "decoder has tanh_linear only)")
    if args.decoder_style == "conditional" and args.decoder_input_feeding:
        raise ValueError("--decoder-input-feeding is for --decoder-style parallel: the conditional "
                         "decoder carries the context in its state already")
    shares_output = args.share_decoder_input_output_embed or args.share_all_embeddings
    if shares_output and args.decoder_out_embed_dim != args.decoder_embed_dim:
        raise ValueError("--share-decoder-input-output-embed needs --decoder-out-embed-dim "
                         f"({args.decoder_out_embed_dim}) == --decoder-embed-dim ({args.decoder_embed_dim})")
    if args.share_all_embeddings and args.encoder_embed_dim != args.decoder_embed_dim:
        raise ValueError(f"--share-all-embeddings needs --encoder-embed-dim ({args.encoder_embed_dim}) "
                         f"== --decoder-embed-dim ({args.decoder_embed_dim})")
    if args.share_all_embeddings and (args.encoder_embed_path or "") != (args.decoder_embed_path or ""):
        raise ValueError("--share-all-embeddings needs --encoder-embed-path == --decoder-embed-path")


@register_model("lrn")
class LRNModel(ChecksDictionarySizes, FairseqEncoderDecoderModel):
    """LRN encoder-decoder with attention (Zhang & Sennrich, 2019)."""

    MODEL_NAME = "LRN"
    TRAINING_MACHINE_ARGS = TRAINING_MACHINE_ARGS

    @staticmethod
    def add_args(parser):
        add = parser.add_argument
        add("--dropout", type=float, metavar="D", help="dropout probability")
        add("--encoder-embed-dim", type=int, metavar="N", help="encoder embedding dimension")
        add("--encoder-embed-path", type=str, metavar="STR", help="path to pre-trained encoder embedding")
        add("--encoder-freeze-embed", action="store_true", help="freeze encoder embeddings")
        add("--encoder-hidden-size", type=int, metavar="N",
            help="encoder hidden size (per direction; every encoder layer outputs this size)")
        add("--encoder-layers", type=int, metavar="N", help="number of encoder layers")
        add("--encoder-bidirectional", action="store_true",
            help="make the first encoder layer bidirectional (upper layers are unidirectional)")
        add("--no-encoder-bidirectional", dest="encoder_bidirectional", action="store_false",
            help="make every encoder layer unidirectional")
        add("--encoder-dropout-in", type=float, metavar="D", help="dropout on encoder embeddings")
        add("--encoder-dropout-out", type=float, metavar="D", help="dropout after each encoder layer")
        add("--decoder-embed-dim", type=int, metavar="N", help="decoder embedding dimension")
        add("--decoder-embed-path", type=str, metavar="STR", help="path to pre-trained decoder embedding")
        add("--decoder-freeze-embed", action="store_true", help="freeze decoder embeddings")
        add("--decoder-hidden-size", type=int, metavar="N", help="decoder hidden size")
        add("--decoder-layers", type=int, metavar="N",
            help="number of decoder layers (the first is the conditional attention layer)")
        add("--decoder-out-embed-dim", type=int, metavar="N", help="decoder output embedding dimension")
        add("--decoder-attention", type=str, metavar="TYPE",
            help=f"attention type: {', '.join(ATTENTION_TYPES)} (True means additive, as in lstm)")
        add("--decoder-attention-dim", type=int, metavar="N",
            help="attention (query/key projection) dimension; ignored by dot")
        add("--decoder-attention-heads", type=int, metavar="N", help="number of attention heads")
        add("--decoder-input-feeding", action="store_true",
            help="feed the previous context to the lower decoder cell (serialises training)")
        add("--decoder-style", choices=DECODER_STYLES,
            help="parallel (default): the first layer's two LRN cells run as two chains, attention "
                 "over all target positions at once; conditional: the authors' decoder (zero's "
                 "cond_rnn), one state chain through both cells with the attention between them "
                 "(serial over target steps in training)")
        add("--decoder-init-state", choices=INIT_STATE_STYLES,
            help="decoder initial states from the encoder's final state: tanh_linear (default, "
                 "tanh(W h + b)) or zero (the authors': W h + b, layer-normalised with --layer-norm, "
                 "no tanh; one per layer; needs --decoder-style conditional)")
        add("--lrn-layer-norm-style", choices=LAYER_NORM_STYLES,
            help="with --layer-norm: per_gate (default) normalises each gate's projection on its "
                 "own; whole normalises all gates' projection together (the authors' placement; in "
                 "the conditional decoder also the attention's query/key and the output layer)")
        add("--decoder-dropout-in", type=float, metavar="D", help="dropout on decoder embeddings")
        add("--decoder-dropout-out", type=float, metavar="D",
            help="dropout after each decoder layer and before the output softmax")
        add("--share-decoder-input-output-embed", action="store_true",
            help="share decoder input and output embeddings")
        add("--share-all-embeddings", action="store_true",
            help="share encoder, decoder and output embeddings (needs a joined dictionary)")
        add_lrn_cell_args(add, layer_norm_help="layer-normalise each gate's projection xW (before the "
                                               "bias) and each layer's output")

    @classmethod
    def build_model(cls, args, task):
        base_architecture(args)
        args.decoder_attention = parse_attention_type(args.decoder_attention)
        check_args(args)
        src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
        if args.share_all_embeddings and src_dict != tgt_dict:
            raise ValueError("--share-all-embeddings needs a joined dictionary "
                             "(fairseq-preprocess --joined-dictionary)")

        def build_embedding(dictionary, dim, path, freeze):
            emb = Embedding(len(dictionary), dim, dictionary.pad())
            if path:
                utils.load_embedding(utils.parse_embedding(path), dictionary, emb)
            emb.weight.requires_grad = not freeze
            return emb

        encoder_embed = build_embedding(src_dict, args.encoder_embed_dim, args.encoder_embed_path,
                                        args.encoder_freeze_embed)
        if args.share_all_embeddings:
            decoder_embed = encoder_embed
        else:
            decoder_embed = build_embedding(tgt_dict, args.decoder_embed_dim, args.decoder_embed_path,
                                            args.decoder_freeze_embed)
        cell = dict(activation=args.lrn_activation, layer_norm=args.layer_norm, impl=args.lrn_impl,
                    output_gate=args.lrn_output_gate, layer_norm_style=args.lrn_layer_norm_style)
        encoder = LRNEncoder(
            src_dict, encoder_embed, hidden_size=args.encoder_hidden_size,
            num_layers=args.encoder_layers, bidirectional=args.encoder_bidirectional,
            dropout_in=args.encoder_dropout_in, dropout_out=args.encoder_dropout_out, **cell,
            max_source_positions=args.max_source_positions)
        decoder_args = dict(
            hidden_size=args.decoder_hidden_size,
            out_embed_dim=args.decoder_out_embed_dim, num_layers=args.decoder_layers,
            encoder_output_size=encoder.output_size, encoder_state_size=encoder.final_state_size,
            attention_type=args.decoder_attention, attention_dim=args.decoder_attention_dim,
            attention_heads=args.decoder_attention_heads,
            dropout_in=args.decoder_dropout_in, dropout_out=args.decoder_dropout_out, **cell,
            share_input_output_embed=args.share_decoder_input_output_embed or args.share_all_embeddings,
            max_target_positions=args.max_target_positions)
        if args.decoder_style == "conditional":
            decoder = LRNConditionalDecoder(tgt_dict, decoder_embed, init_state=args.decoder_init_state,
                                            **decoder_args)
        else:
            decoder = LRNDecoder(tgt_dict, decoder_embed, input_feeding=args.decoder_input_feeding,
                                 **decoder_args)
        return cls(encoder, decoder)


@register_model_architecture("lrn", "lrn")
def base_architecture(args):
    """Defaults of the base model: 2+2 layers of 512, first encoder layer bidirectional,
    additive attention, identity activation and layer norm (the authors' MT settings), this
    project's parallel decoder with tanh initial states and per-gate layer norm (checkpoints
    saved before these options existed load as such)."""
    args.dropout = getattr(args, "dropout", 0.1)
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 512)
    args.encoder_embed_path = getattr(args, "encoder_embed_path", None)
    args.encoder_freeze_embed = getattr(args, "encoder_freeze_embed", False)
    args.encoder_hidden_size = getattr(args, "encoder_hidden_size", 512)
    args.encoder_layers = getattr(args, "encoder_layers", 2)
    args.encoder_bidirectional = getattr(args, "encoder_bidirectional", True)
    args.encoder_dropout_in = getattr(args, "encoder_dropout_in", args.dropout)
    args.encoder_dropout_out = getattr(args, "encoder_dropout_out", args.dropout)
    args.decoder_embed_dim = getattr(args, "decoder_embed_dim", 512)
    args.decoder_embed_path = getattr(args, "decoder_embed_path", None)
    args.decoder_freeze_embed = getattr(args, "decoder_freeze_embed", False)
    args.decoder_hidden_size = getattr(args, "decoder_hidden_size", 512)
    args.decoder_layers = getattr(args, "decoder_layers", 2)
    args.decoder_out_embed_dim = getattr(args, "decoder_out_embed_dim", 512)
    args.decoder_attention = getattr(args, "decoder_attention", "additive")
    args.decoder_attention_dim = getattr(args, "decoder_attention_dim", args.decoder_hidden_size)
    args.decoder_attention_heads = getattr(args, "decoder_attention_heads", 1)
    args.decoder_input_feeding = getattr(args, "decoder_input_feeding", False)
    args.decoder_style = getattr(args, "decoder_style", "parallel")
    args.decoder_init_state = getattr(args, "decoder_init_state", "tanh_linear")
    args.lrn_layer_norm_style = getattr(args, "lrn_layer_norm_style", "per_gate")
    args.decoder_dropout_in = getattr(args, "decoder_dropout_in", args.dropout)
    args.decoder_dropout_out = getattr(args, "decoder_dropout_out", args.dropout)
    args.share_decoder_input_output_embed = getattr(args, "share_decoder_input_output_embed", False)
    args.share_all_embeddings = getattr(args, "share_all_embeddings", False)
    lrn_cell_defaults(args, activation="identity")
    args.max_source_positions = getattr(args, "max_source_positions", DEFAULT_MAX_POSITIONS)
    args.max_target_positions = getattr(args, "max_target_positions", DEFAULT_MAX_POSITIONS)


@register_model_architecture("lrn", "lrn_iwslt_de_en")
def lrn_iwslt_de_en(args):
    """Small model for IWSLT-sized data (inferred, not from the paper): 256-dim embeddings,
    hidden 512, 2+2 layers, dropout 0.2, tied decoder embeddings."""
    args.dropout = getattr(args, "dropout", 0.2)
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 256)
    args.decoder_embed_dim = getattr(args, "decoder_embed_dim", 256)
    args.decoder_out_embed_dim = getattr(args, "decoder_out_embed_dim", 256)
    args.share_decoder_input_output_embed = getattr(args, "share_decoder_input_output_embed", True)
    base_architecture(args)


@register_model_architecture("lrn", "lrn_wmt_en_de")
def lrn_wmt_en_de(args):
    """The paper-scale WMT14 model: 6+6 layers, hidden 1024, embeddings 512, layer norm,
    identity activation, all embeddings tied (needs a joined dictionary)."""
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 512)
    args.encoder_hidden_size = getattr(args, "encoder_hidden_size", 1024)
    args.encoder_layers = getattr(args, "encoder_layers", 6)
    args.decoder_embed_dim = getattr(args, "decoder_embed_dim", 512)
    args.decoder_hidden_size = getattr(args, "decoder_hidden_size", 1024)
    args.decoder_layers = getattr(args, "decoder_layers", 6)
    args.decoder_out_embed_dim = getattr(args, "decoder_out_embed_dim", 512)
    args.share_all_embeddings = getattr(args, "share_all_embeddings", True)
    base_architecture(args)


@register_model_architecture("lrn", "lrn_wmt_en_de_paper")
def lrn_wmt_en_de_paper(args):
    """The authors' WMT14 En-De model as closely as their code shows.

    Structure from the ``lrn`` repository's ``mt/deepnmt.py`` (the file its MT README names;
    zero's later ``models/deepnmt.py`` differs only in projecting each layer's output to the
    embedding size and in an option to drop the output layer) with zero's ``rnns/rnn.py``
    ``cond_rnn``, ``rnns/lrn.py``, ``rnns/cell.py`` and ``func.py``: the conditional decoder, the
    cell's own initial state (``--decoder-init-state zero``), layer norm over the whole projection
    (``--lrn-layer-norm-style whole``), identity activation, additive attention. Sizes from zero's
    ``docs/usage/README.md`` WMT14 En-De command (hidden_size=1024, embed_size=512, dropout=0.1,
    label_smooth=0.1, layer_norm=True); 6+6 layers, ``num_heads=8`` and a softmax
    tied to the target embeddings (``shared_target_softmax_embedding=True``, source and target
    embeddings apart) are ``run.py``'s defaults. Pass ``--decoder-attention-heads 1`` for one head.
    Not reproduced: see the README ("The authors' decoder")."""
    args.decoder_attention_heads = getattr(args, "decoder_attention_heads", 8)
    args.share_decoder_input_output_embed = getattr(args, "share_decoder_input_output_embed", True)
    args.share_all_embeddings = getattr(args, "share_all_embeddings", False)
    args.decoder_style = getattr(args, "decoder_style", "conditional")
    args.decoder_init_state = getattr(args, "decoder_init_state", "zero")
    args.lrn_layer_norm_style = getattr(args, "lrn_layer_norm_style", "whole")
    lrn_wmt_en_de(args)  # 6+6 layers, hidden 1024, embeddings 512, dropout 0.1, layer norm, identity g
