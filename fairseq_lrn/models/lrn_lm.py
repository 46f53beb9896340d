"""The LRN language model for fairseq: ``--task language_modeling --arch lrn_lm | lrn_lm_wiki103``.

A stack of :class:`~fairseq_lrn.modules.LRNBlock` layers without attention (the MT model's
layer: LRN -> linear -> dropout -> + residual -> layer norm) over the token embeddings, then
an optional projection to ``--decoder-out-embed-dim``, dropout, and a softmax over the
vocabulary (a linear layer, the tied input embeddings, or an adaptive softmax). fairseq's
``lstm_lm`` is the anchor: flags that mean the same carry its names, so ``--arch lstm_lm`` ->
``--arch lrn_lm`` keeps a command valid (``--max-target-positions`` is the task's flag, as for
``lstm_lm``; ``--residuals`` and ``--decoder-attention`` do not exist here: blocks always add
their input when the sizes match, and a language model has nothing to attend to).

Recurrent state across samples (zero state per sample, in every fairseq LM run):

* Training on ``--sample-break-mode none`` blocks (truncated BPTT of ``--tokens-per-sample``
  tokens): every block starts from a zero state. fairseq's ``language_modeling`` task cuts the
  token stream into independent blocks, shuffles them and batches them in any order (and any
  row), so the block that follows a block in the text is in general not the next row of the
  next batch: there is no state to carry. The same holds for ``lstm_lm`` and ``transformer_lm``
  (whose context is also limited to the block). Carrying state would need a task that keeps
  text order per batch row (fairseq's ``examples/truncated_bptt``), not a model change.
* ``fairseq-eval-lm --context-window C``: fairseq's ``LMContextWindowDataset`` feeds each
  window as a fresh sample with the previous ``C`` tokens prepended and scores only the new
  tokens (``start_indices``); the model sees no state from the previous batch. So the state is
  *rebuilt* from the ``C`` context tokens (from zero), not carried across windows: perplexity
  with a context window is what the model predicts with ``C`` tokens of history.
* Generation (``fairseq-generate``/``fairseq-interactive`` on a LM, the hub's ``sample()``)
  is incremental: the cache holds one state tensor ``(L, B, H)`` (``reorder_incremental_state``
  selects beams), and a step is one cell update per layer.
"""

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.models import (FairseqIncrementalDecoder, FairseqLanguageModel, register_model,
                            register_model_architecture)
from fairseq.modules import AdaptiveSoftmax
from torch import Tensor, nn

from ..literals import NotALiteralError, literal_value
from ..modules import LRNBlock
from .lrn import DEFAULT_MAX_POSITIONS, Embedding
from .lrn_cell_options import TRAINING_MACHINE_ARGS, add_lrn_cell_args, check_lrn_cell_args, lrn_cell_defaults
from .model_checks import ChecksDictionarySizes, check_option_ranges

CACHE_KEY = "lrn_lm_state"


class LRNLMDecoder(FairseqIncrementalDecoder):
    """LRN decoder without attention (see the module docstring).

    forward: prev_output_tokens ``(B, T)`` -> ``(logits (B, T, V), None)`` (``features
    (B, T, out_embed_dim)`` with ``features_only``; with an adaptive softmax the "logits" are the
    features, as in fairseq). The incremental cache holds ``state (L, B, H)``.
    """

    def __init__(self, dictionary, embed_tokens: nn.Embedding, *, hidden_size: int, out_embed_dim: int,
                 num_layers: int, dropout_in: float, dropout_out: float, activation: str,
                 layer_norm: bool, impl: str, output_gate: bool, share_input_output_embed: bool,
                 adaptive_softmax_cutoff: Optional[list], adaptive_softmax_dropout: float,
                 max_target_positions: int):
        super().__init__(dictionary)
        embed_dim = embed_tokens.embedding_dim
        self.embed_tokens = embed_tokens
        self.padding_idx = dictionary.pad()
        self.hidden_size = hidden_size
        self.dropout_in, self.dropout_out = dropout_in, dropout_out
        self.max_target_positions = max_target_positions
        self.blocks = nn.ModuleList(
            LRNBlock(embed_dim if k == 0 else hidden_size, hidden_size, hidden_size, dropout=dropout_out,
                     activation=activation, layer_norm=layer_norm, impl=impl, output_gate=output_gate)
            for k in range(num_layers))
        self.out_proj = nn.Linear(hidden_size, out_embed_dim) if hidden_size != out_embed_dim else None
        self.output_projection = None
        if adaptive_softmax_cutoff is not None:
            self.adaptive_softmax = AdaptiveSoftmax(len(dictionary), out_embed_dim, adaptive_softmax_cutoff,
                                                    dropout=adaptive_softmax_dropout)
        elif not share_input_output_embed:
            self.output_projection = nn.Linear(out_embed_dim, len(dictionary), bias=False)
            nn.init.normal_(self.output_projection.weight, 0, out_embed_dim ** -0.5)

    def forward(self, prev_output_tokens: Tensor, encoder_out=None,
                incremental_state: Optional[Dict[str, Dict[str, Optional[Tensor]]]] = None,
                features_only: bool = False, **unused) -> Tuple[Tensor, None]:
        """prev_output_tokens ``(B, T)`` (only the last column is read when incremental)."""
        x, _ = self.extract_features(prev_output_tokens, incremental_state=incremental_state)
        return (x if features_only else self.output_layer(x)), None

    def extract_features(self, prev_output_tokens: Tensor, encoder_out=None,
                         incremental_state=None, **unused) -> Tuple[Tensor, None]:
        """Features ``(B, T, out_embed_dim)`` of tokens ``(B, T)``, from the cached state when
        incremental (then only the last token is read), else from a zero state."""
        state = None
        if incremental_state is not None:
            prev_output_tokens = prev_output_tokens[:, -1:]
            state = self.get_incremental_state(incremental_state, CACHE_KEY)
            state = None if state is None else state["state"]
        tokens = prev_output_tokens.t()  # (T, B)
        x = F.dropout(self.embed_tokens(tokens), self.dropout_in, self.training)  # (T, B, E)
        if incremental_state is not None:  # one new token (T == 1): each block runs one cell step
            x, new_state = self._step(x[0], state)
            self.set_incremental_state(incremental_state, CACHE_KEY, {"state": new_state})
            x = x.unsqueeze(0)
        else:
            padding_mask = tokens.eq(self.padding_idx)
            x = self._sequence(x, padding_mask if padding_mask.any() else None)  # None: the faster path
        x = x.transpose(0, 1)
        if self.out_proj is not None:
            x = self.out_proj(x)
        return F.dropout(x, self.dropout_out, self.training), None

    def _residual(self, x: Tensor) -> Optional[Tensor]:
        """A block's residual: its input x when the sizes match (not the embeddings' if
        ``embed_dim != hidden_size``), else None."""
        return x if x.size(-1) == self.hidden_size else None

    def _sequence(self, x: Tensor, padding_mask: Optional[Tensor]) -> Tensor:
        """The blocks' recurrences over embeddings x ``(T, B, E)`` from a zero state;
        padding_mask ``(T, B)`` or None. Returns ``(T, B, H)``."""
        for block in self.blocks:
            x, _ = block(x, residual=self._residual(x), padding_mask=padding_mask)
        return x

    def _step(self, x: Tensor, state: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """One token through the blocks' cell steps: embeddings x ``(B, E)``, the cached state
        ``(L, B, H)`` (zeros if None) -> ``(B, H)`` and the new state ``(L, B, H)``."""
        finals = []
        for k, block in enumerate(self.blocks):
            x, h = block.step(x, residual=self._residual(x), h_prev=None if state is None else state[k])
            finals.append(h)
        return x, torch.stack(finals, 0)

    def output_layer(self, features: Tensor) -> Tensor:
        """features ``(B, T, out_embed_dim)`` -> logits ``(B, T, V)`` (unchanged features with
        an adaptive softmax, which fairseq's criterion and ``get_normalized_probs`` apply)."""
        if self.adaptive_softmax is not None:
            return features
        if self.output_projection is None:
            return F.linear(features, self.embed_tokens.weight)
        return self.output_projection(features)

    def reorder_incremental_state(self, incremental_state, new_order: Tensor) -> None:
        """Select batch entries ``new_order`` of the cached state (beam search)."""
        cache = self.get_incremental_state(incremental_state, CACHE_KEY)
        if cache is not None:
            self.set_incremental_state(incremental_state, CACHE_KEY,
                                       {"state": cache["state"].index_select(1, new_order)})

    def max_positions(self) -> int:
        return self.max_target_positions


def parse_cutoff(args, vocab_size: int) -> Optional[list]:
    """``--adaptive-softmax-cutoff`` as a list of ints when ``--criterion adaptive_loss`` (else
    None, as in ``lstm_lm``); ValueError unless it increases and stays below the vocabulary size.
    The text is read as a literal (:func:`~fairseq_lrn.literals.literal_value`), never run: it
    may come from a checkpoint."""
    if getattr(args, "criterion", None) != "adaptive_loss":
        return None
    value = args.adaptive_softmax_cutoff
    try:
        value = literal_value(value) if isinstance(value, str) else value
        cutoff = [int(c) for c in (value if isinstance(value, (list, tuple)) else [value])]
    except NotALiteralError as error:
        raise error.naming("adaptive_softmax_cutoff") from None
    except (TypeError, ValueError):
        raise ValueError(f"--adaptive-softmax-cutoff must be comma-separated integers, got "
                         f"{args.adaptive_softmax_cutoff!r}") from None
    if not cutoff or cutoff[0] < 1 or any(b <= a for a, b in zip(cutoff, cutoff[1:])) or \
            cutoff[-1] > vocab_size:
        raise ValueError(f"--adaptive-softmax-cutoff must be increasing positive integers up to the "
                         f"vocabulary size ({vocab_size}), got {args.adaptive_softmax_cutoff!r}")
    return cutoff


def check_args(args, task) -> None:
    """Raise ValueError naming the first option whose value cannot build a model."""
    check_option_ranges(
        args, positive=("decoder_embed_dim", "decoder_hidden_size", "decoder_layers", "decoder_out_embed_dim"),
        probabilities=("dropout", "decoder_dropout_in", "decoder_dropout_out", "adaptive_softmax_dropout"))
    check_lrn_cell_args(args)
    if args.share_decoder_input_output_embed:
        if args.decoder_out_embed_dim != args.decoder_embed_dim:
            raise ValueError("--share-decoder-input-output-embed needs --decoder-out-embed-dim "
                             f"({args.decoder_out_embed_dim}) == --decoder-embed-dim ({args.decoder_embed_dim})")
        if task.source_dictionary != task.target_dictionary:
            raise ValueError("--share-decoder-input-output-embed needs the same input and output "
                             "dictionary (no --output-dictionary-size)")
        if getattr(args, "criterion", None) == "adaptive_loss":
            raise ValueError("--share-decoder-input-output-embed cannot be combined with an adaptive "
                             "softmax (--criterion adaptive_loss)")


@register_model("lrn_lm")
class LRNLanguageModel(ChecksDictionarySizes, FairseqLanguageModel):
    """LRN language model (Zhang & Sennrich, 2019): an :class:`LRNLMDecoder`."""

    MODEL_NAME = "lrn_lm"
    DICTIONARY_SIDES = (("target", "decoder.embed_tokens.weight", "decoder", "dict.txt"),)
    TRAINING_MACHINE_ARGS = TRAINING_MACHINE_ARGS

    @staticmethod
    def add_args(parser):
        add = parser.add_argument
        add("--dropout", type=float, metavar="D", help="dropout probability")
        add("--decoder-embed-dim", type=int, metavar="N", help="decoder embedding dimension")
        add("--decoder-embed-path", type=str, metavar="STR", help="path to pre-trained decoder embedding")
        add("--decoder-hidden-size", type=int, metavar="N", help="decoder hidden size")
        add("--decoder-layers", type=int, metavar="N", help="number of decoder layers")
        add("--decoder-out-embed-dim", type=int, metavar="N", help="decoder output embedding dimension")
        add("--adaptive-softmax-cutoff", metavar="EXPR",
            help="comma separated list of adaptive softmax cutoff points. "
                 "Must be used with adaptive_loss criterion")
        add("--adaptive-softmax-dropout", type=float, metavar="D",
            help="dropout inside the adaptive softmax's tail projections")
        add("--decoder-dropout-in", type=float, metavar="D", help="dropout on decoder embeddings")
        add("--decoder-dropout-out", type=float, metavar="D",
            help="dropout after each decoder layer and before the output softmax")
        add("--share-decoder-input-output-embed", action="store_true",
            help="share decoder input and output embeddings")
        add_lrn_cell_args(add, layer_norm_help="layer-normalise each gate's projection xW (before the "
                                               "bias) and each layer's output")

    @classmethod
    def build_model(cls, args, task):
        base_architecture(args)
        check_args(args, task)
        dictionary = task.target_dictionary
        cutoff = parse_cutoff(args, len(dictionary))
        embed = Embedding(len(dictionary), args.decoder_embed_dim, dictionary.pad())
        if args.decoder_embed_path:
            utils.load_embedding(utils.parse_embedding(args.decoder_embed_path), dictionary, embed)
        max_target_positions = args.max_target_positions or DEFAULT_MAX_POSITIONS  # no limit of its own
        decoder = LRNLMDecoder(
            dictionary, embed, hidden_size=args.decoder_hidden_size,
            out_embed_dim=args.decoder_out_embed_dim, num_layers=args.decoder_layers,
            dropout_in=args.decoder_dropout_in, dropout_out=args.decoder_dropout_out,
            activation=args.lrn_activation, layer_norm=args.layer_norm, impl=args.lrn_impl,
            output_gate=args.lrn_output_gate,
            share_input_output_embed=args.share_decoder_input_output_embed,
            adaptive_softmax_cutoff=cutoff, adaptive_softmax_dropout=args.adaptive_softmax_dropout,
            max_target_positions=max_target_positions)
        return cls(decoder)


@register_model_architecture("lrn_lm", "lrn_lm")
def base_architecture(args):
    """The small model: 2 layers of 512 (embeddings, hidden and output 512), dropout 0.1,
    layer norm and residuals (the MT model's block), tanh activation (the authors' LM code),
    ``lstm_lm``'s adaptive-softmax cutoffs (used only with ``--criterion adaptive_loss``)."""
    args.dropout = getattr(args, "dropout", 0.1)
    args.decoder_embed_dim = getattr(args, "decoder_embed_dim", 512)
    args.decoder_embed_path = getattr(args, "decoder_embed_path", None)
    args.decoder_hidden_size = getattr(args, "decoder_hidden_size", args.decoder_embed_dim)
    args.decoder_layers = getattr(args, "decoder_layers", 2)
    args.decoder_out_embed_dim = getattr(args, "decoder_out_embed_dim", args.decoder_embed_dim)
    args.decoder_dropout_in = getattr(args, "decoder_dropout_in", args.dropout)
    args.decoder_dropout_out = getattr(args, "decoder_dropout_out", args.dropout)
    args.share_decoder_input_output_embed = getattr(args, "share_decoder_input_output_embed", False)
    args.adaptive_softmax_cutoff = getattr(args, "adaptive_softmax_cutoff", "10000,50000,200000")
    args.adaptive_softmax_dropout = getattr(args, "adaptive_softmax_dropout", 0.0)
    lrn_cell_defaults(args, activation="tanh")
    args.max_target_positions = getattr(args, "max_target_positions", None)


@register_model_architecture("lrn_lm", "lrn_lm_wiki103")
def lrn_lm_wiki103(args):
    """A large model for WikiText-103-sized data. Every value is inferred (the paper has no
    WikiText-103 model): 4 layers, embeddings and output 1024, hidden 2048, dropout 0.2, and
    ``transformer_lm_wiki103``'s adaptive softmax (cutoffs 20000,60000, dropout 0.2; use
    ``--criterion adaptive_loss``)."""
    args.dropout = getattr(args, "dropout", 0.2)
    args.decoder_embed_dim = getattr(args, "decoder_embed_dim", 1024)
    args.decoder_hidden_size = getattr(args, "decoder_hidden_size", 2048)
    args.decoder_layers = getattr(args, "decoder_layers", 4)
    args.decoder_out_embed_dim = getattr(args, "decoder_out_embed_dim", 1024)
    args.adaptive_softmax_cutoff = getattr(args, "adaptive_softmax_cutoff", "20000,60000")
    args.adaptive_softmax_dropout = getattr(args, "adaptive_softmax_dropout", 0.2)
    base_architecture(args)
