"""The LRN cell's flags, shared by every model of the plugin (``lrn``, ``transformer_lrn``,
``lrn_lm``): ``--lrn-activation``, ``--layer-norm`` / ``--no-layer-norm``, ``--lrn-impl``,
``--lrn-output-gate``; their defaults and their checks."""

from ..ops import ACTIVATIONS, IMPLS
from .model_checks import check_option_ranges

IMPL_HELP = ("recurrence implementation: auto (fused Triton kernel on CUDA, else the fast CPU path), "
             "fused, cpu or reference")
#: The cell flags that describe the machine a model runs on, not the model: a model loaded from a
#: checkpoint (fairseq-generate, the hub, ...) gets these values, whatever the training machine
#: used (``fairseq_lrn.fairseq_compat.training_machine_args``).
TRAINING_MACHINE_ARGS = {"lrn_impl": "auto"}
OUTPUT_GATE_HELP = ("oLRN (the authors' best MT unit): a 4th gate s in every LRN's projection (a third "
                    "more projection weights); each step outputs h = sigmoid(s - c) * c, c the LRN cell")


def add_lrn_cell_args(add, *, layer_norm_help: str, no_layer_norm_help: str = "no layer normalisation") -> None:
    """Add the cell's flags with ``add`` (a parser's or group's ``add_argument``); each model
    says what ``--layer-norm`` normalises in it."""
    add("--lrn-activation", choices=ACTIVATIONS, help="g in c = g(i*r + f*h_prev) of every LRN")
    add("--layer-norm", action="store_true", help=layer_norm_help)
    add("--no-layer-norm", dest="layer_norm", action="store_false", help=no_layer_norm_help)
    add("--lrn-impl", choices=IMPLS, help=IMPL_HELP)
    add("--lrn-output-gate", action="store_true", help=OUTPUT_GATE_HELP)


def check_lrn_cell_args(args) -> None:
    """Raise ValueError naming ``--lrn-activation`` or ``--lrn-impl`` when its value is unknown."""
    check_option_ranges(args, choices={"lrn_activation": ACTIVATIONS, "lrn_impl": IMPLS})


def lrn_cell_defaults(args, *, activation: str) -> None:
    """Fill the cell's flags a command line left unset: ``activation`` (each model has its
    own), layer-normalised projections, ``--lrn-impl auto``, no output gate."""
    args.lrn_activation = getattr(args, "lrn_activation", activation)
    args.layer_norm = getattr(args, "layer_norm", True)
    args.lrn_impl = getattr(args, "lrn_impl", "auto")
    args.lrn_output_gate = getattr(args, "lrn_output_gate", False)
