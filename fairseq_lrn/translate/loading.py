"""Load a trained ``lrn`` / ``transformer_lrn`` checkpoint for translation, and refuse others.

The checkpoint goes through fairseq's ``checkpoint_utils.load_checkpoint_to_cpu`` after
``import fairseq_lrn.models``, i.e. through the plugin's safe loader (weights-only unpickling with
fairseq's types allowed: nothing in the file can run code). The dictionaries come from the data
folder given, as for fairseq-interactive (``DATA``, ``--source-lang``, ``--target-lang``).
"""

from typing import Any, Dict, Optional, Tuple

from ..errors import CheckpointError

REFUSAL_HINT = "translate it with fairseq-generate / fairseq-interactive, or convert it for CTranslate2"


def config_value(state: Dict[str, Any], name: str) -> Optional[Any]:
    """The model option ``name`` of a checkpoint's state (fairseq's ``cfg.model`` or old-style
    ``args``), or None."""
    for config in (state.get("args"), (state.get("cfg") or {}).get("model")):
        if config is None:
            continue
        value = config.get(name) if hasattr(config, "get") else getattr(config, name, None)
        if value is not None:
            return value
    return None


def architecture_of(state: Dict[str, Any]) -> Optional[str]:
    """The ``--arch`` of a checkpoint's state."""
    arch = config_value(state, "arch") or config_value(state, "_name")
    return None if arch is None else str(arch)


def refusal(state: Dict[str, Any], path: str) -> Optional[str]:
    """Why this command cannot translate with the checkpoint whose state is ``state``, or None
    when it can (an ``lrn`` or ``transformer_lrn`` translation model, oLRN and the authors'
    ``--decoder-style conditional`` decoder included)."""
    from fairseq.models import ARCH_MODEL_REGISTRY

    from ..models import LRNLanguageModel, LRNModel, TransformerLRNModel

    arch = architecture_of(state)
    model_class = ARCH_MODEL_REGISTRY.get(arch)
    if model_class is not None and issubclass(model_class, LRNLanguageModel):
        return (f"{path!r} is a language model (--arch {arch}), not a translation model; "
                f"sample from it with fairseq-interactive / fairseq-generate")
    if model_class is None or not issubclass(model_class, (LRNModel, TransformerLRNModel)):
        return (f"fairseq-lrn-translate runs lrn and transformer_lrn models (and their oLRN "
                f"variants); {path!r} is --arch {arch or 'unknown'}: {REFUSAL_HINT}")
    return None


def check_supported(state: Dict[str, Any], path: str) -> None:
    """Raise CheckpointError with :func:`refusal`'s reason unless this command can translate
    with the checkpoint."""
    reason = refusal(state, path)
    if reason:
        raise CheckpointError(reason)


def can_translate(path: str) -> bool:
    """Whether this command can translate with the checkpoint ``path`` (read through the
    plugin's safe loader)."""
    import fairseq_lrn.models  # noqa: F401  (registers the models and the safe loader)
    from fairseq import checkpoint_utils

    return refusal(checkpoint_utils.load_checkpoint_to_cpu(path), path) is None


def load_model(path: str, data: str, *, source_lang: Optional[str] = None,
               target_lang: Optional[str] = None,
               max_source_positions: Optional[int] = None) -> Tuple[Any, Any]:
    """Load the checkpoint ``path`` with the dictionaries of ``data``: ``(model, task)``, the model
    in eval mode on the CPU. Raises CheckpointError for a file that is not a checkpoint of a
    supported model (naming the file and the reason)."""
    import fairseq_lrn.models  # noqa: F401  (registers the models and the safe loader)
    from fairseq import checkpoint_utils

    overrides = {"data": data}
    for key, value in (("source_lang", source_lang), ("target_lang", target_lang),
                       ("max_source_positions", max_source_positions)):
        if value is not None:
            overrides[key] = value
    state = checkpoint_utils.load_checkpoint_to_cpu(path, arg_overrides=overrides)
    check_supported(state, path)
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=overrides,
                                                                   state=state)
    model = models[0]
    model.eval()
    return model, task
