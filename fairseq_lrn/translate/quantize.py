"""``--quantize``: int8 weights for the linear layers.

``int8`` replaces ``nn.Linear`` layers by :class:`~fairseq_lrn.translate.int8_linear.Int8Linear`:
the weights are stored as int8 (one scale per output feature), each input row is quantized to 7
bits on the fly (its own scale and zero point), and the products are summed exactly in integers
(the compiled kernel, or the same numbers with PyTorch operations; see that module). It covers the
decoder's layers (LRN projections, attention, feed-forward, output layers), the encoder's
feed-forward and LRN layers, and the output projection over the vocabulary, the largest matrix
of a step. A tied output projection (the decoder's embedding matrix) is quantized as a copy, so
the embedding lookup keeps its float weights.

The self-attention of fairseq's Transformer encoder layers (whose fast path reads the float
weights of its projections itself) is replaced as a whole by
:class:`~fairseq_lrn.translate.int8_self_attention.Int8SelfAttention`, the same computation with
int8 projections, where it is of the plain form that class computes (else it stays float).

Not quantized: embeddings, layer norms, the recurrences (elementwise) and the attentions' softmax.

Quantization changes the numbers, so the translations can differ from fp32 ones. The default,
``auto``, is int8 on the CPU for the model families whose int8 translations were measured within
0.3 BLEU of fp32 on real text (:data:`INT8_MEASURED`; BENCHMARKS.md, 2026-12-07, runs V, X and V4,
gettext En-Fr: ``transformer_lrn`` 3+3 and 6+2, beam 5 and greedy, -0.09 to +0.08 BLEU; with the
encoder's self-attention in int8, 3+3 -0.08 and 6+2 +0.24; ``lrn`` 2+2,
beam 5, -0.06 with the default decoder, -0.20 (greedy -0.11) with the authors' conditional one), and
``none`` on CUDA.
"""

from typing import Set

from torch import nn

from .int8_linear import Int8Linear
from .int8_self_attention import Int8SelfAttention, replaceable
from .lrn_runner import LRNRunner
from .transformer_lrn_runner import TransformerLRNRunner

#: The modes of ``--quantize``.
QUANTIZE_MODES = ("auto", "none", "int8")
#: The default mode: the fastest one measured to keep quality (see the module docstring).
DEFAULT_QUANTIZE = "auto"
#: The runners (model families) whose int8 BLEU on real text was measured within 0.3 of fp32.
INT8_MEASURED = (TransformerLRNRunner, LRNRunner)  # LRNRunner: the conditional decoder's runner included


def resolve_mode(mode: str, runner: nn.Module, device: str) -> str:
    """The mode ``mode`` means for ``runner`` on ``device``: ``auto`` is ``int8`` on the CPU for
    the families of :data:`INT8_MEASURED`, else ``none``; ``none`` and ``int8`` are themselves."""
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"--quantize must be one of {QUANTIZE_MODES}, got {mode!r}")
    if mode != "auto":
        return mode
    return "int8" if device == "cpu" and isinstance(runner, INT8_MEASURED) else "none"


def quantizable_linears(runner: nn.Module) -> Set[str]:
    """The qualified names (in ``runner``) of the ``nn.Linear`` layers int8 mode replaces, those of
    self-attentions excepted (:func:`quantizable_self_attentions`)."""
    return {name for name, module in runner.named_modules()
            if type(module) is nn.Linear and ".self_attn." not in f".{name}."}


def quantizable_self_attentions(runner: nn.Module) -> Set[str]:
    """The qualified names (in ``runner``) of the self-attentions int8 mode replaces by
    :class:`~fairseq_lrn.translate.int8_self_attention.Int8SelfAttention`."""
    return {name for name, module in runner.named_modules() if name.endswith("self_attn") and replaceable(module)}


def quantize_runner(runner: nn.Module, mode: str, *, compiled: bool) -> nn.Module:
    """Apply ``mode`` (``none`` or ``int8``; ``auto`` is resolved by :func:`resolve_mode` first)
    to a model runner in place; returns it. ``compiled``: int8 layers run the compiled kernel (the
    C++ operators must be loaded), else PyTorch operations computing the same numbers; compiled, the
    steps also run the fused operations of :mod:`~fairseq_lrn.translate.fused_ops` (the runner's ``fused_ops``)."""
    if mode not in QUANTIZE_MODES or mode == "auto":
        raise ValueError(f"--quantize must be none or int8 here, got {mode!r} (resolve_mode() resolves auto)")
    if mode == "none":
        return runner
    if next(runner.parameters()).device.type != "cpu":
        raise ValueError("--quantize int8 runs on the CPU; use --quantize none with --device cuda")
    for names, int8_module in ((quantizable_linears(runner), Int8Linear.from_linear),
                               (quantizable_self_attentions(runner), Int8SelfAttention.from_attention)):
        for name in names:
            parent_name, _, child = name.rpartition(".")
            parent = runner.get_submodule(parent_name) if parent_name else runner
            setattr(parent, child, int8_module(getattr(parent, child), compiled))
    runner.fused_ops = compiled
    return runner
