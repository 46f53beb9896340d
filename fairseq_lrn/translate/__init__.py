"""Fast translation with trained ``lrn`` and ``transformer_lrn`` models: the command
``fairseq-lrn-translate`` (:mod:`~fairseq_lrn.translate.cli`) and the Python API
:class:`~fairseq_lrn.translate.translator.Translator`.

Modules: ``search`` (batched beam search with fairseq's semantics), ``candidates`` (a step's
candidates from the logits: PyTorch's, or compiled from ``native/candidates.cpp``), ``model_runner`` /
``lrn_runner`` / ``transformer_lrn_runner`` (one decoder step per model family), ``loading``
(safe checkpoint loading, refusing other architectures), ``quantize`` (``--quantize int8``),
``text_codecs`` (``--tokenizer`` / ``--bpe``), ``translator`` (the API), ``cli`` (the command).

Importing this package is cheap (no torch, no fairseq): ``Translator`` is imported on first use.
"""

__all__ = ["Translator"]


def __getattr__(name):
    if name == "Translator":
        from .translator import Translator

        return Translator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
