"""``--quantize``: int8 weights for the linear layers (PyTorch dynamic quantization).

``int8`` replaces ``nn.Linear`` layers by ``torch.ao.nn.quantized.dynamic.Linear``: the weights
are stored as int8 (one scale per output row), the activations are quantized on the fly per call,
and the product runs in int8 with int32 accumulation (fbgemm / oneDNN on x86). It covers the
decoder's layers (LRN projections, attention, feed-forward, output layers), the encoder's
feed-forward and LRN layers, and the output projection over the vocabulary, the largest matrix
of a step. A tied output projection (the decoder's embedding matrix) is quantized as a copy, so
the embedding lookup keeps its float weights.

Not quantized: embeddings, layer norms, the recurrences (elementwise), and the self-attention
projections of fairseq's Transformer encoder (its fast path reads their float weights directly;
the encoder runs once per batch).

PyTorch >= 2.13 marks the quantized tensor types this uses as deprecated (``torch.ao``
quantization's successor is the separate ``torchao`` package); its warning at quantization time
is silenced here, and int8 stops working in the PyTorch release that removes them.

Quantization changes the numbers, so the translations can differ from fp32 ones. The default,
``auto``, is int8 on the CPU for the model families whose int8 translations were measured within
0.3 BLEU of fp32 on real text (:data:`INT8_MEASURED`; BENCHMARKS.md, 2026-12-06, gettext En-Fr:
``transformer_lrn`` 3+3 and 6+2, beam 5 and greedy, int8 +0.02 to +0.08 BLEU; ``lrn`` 2+2, beam 5,
-0.24 with the default decoder and -0.04 with the authors' conditional one), and ``none`` on CUDA.
"""

import warnings
from typing import Set

import torch
from torch import nn

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
    """The qualified names (in ``runner``) of the ``nn.Linear`` layers int8 mode replaces."""
    return {name for name, module in runner.named_modules()
            if type(module) is nn.Linear and ".self_attn." not in f".{name}."}


def quantize_runner(runner: nn.Module, mode: str) -> nn.Module:
    """Apply ``mode`` (``none`` or ``int8``; ``auto`` is resolved by :func:`resolve_mode` first)
    to a model runner in place; returns it."""
    if mode not in QUANTIZE_MODES or mode == "auto":
        raise ValueError(f"--quantize must be none or int8 here, got {mode!r} (resolve_mode() resolves auto)")
    if mode == "none":
        return runner
    if next(runner.parameters()).device.type != "cpu":
        raise ValueError("--quantize int8 runs on the CPU (PyTorch's dynamic quantization); "
                         "use --quantize none with --device cuda")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor.* are deprecated",
                                category=UserWarning)
        torch.ao.quantization.quantize_dynamic(runner, quantizable_linears(runner), dtype=torch.qint8,
                                               inplace=True)
    return runner
