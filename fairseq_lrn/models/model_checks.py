"""Checks every model of the plugin (``lrn``, ``transformer_lrn``, ``lrn_lm``) makes the same
way: option ranges at build time, and the dictionary sizes of a checkpoint at load time."""

from typing import Iterable, List, Mapping, Sequence, Tuple

from ..errors import CheckpointError


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def check_option_ranges(args, *, positive: Iterable[str] = (), probabilities: Iterable[str] = (),
                        choices: Mapping[str, Sequence[str]] = None) -> None:
    """Raise ValueError naming the first option of ``positive`` below 1, of ``probabilities``
    (dropouts) outside [0, 1), or of ``choices`` (option -> its allowed values) not allowed."""
    for name in positive:
        if getattr(args, name) < 1:
            raise ValueError(f"{_flag(name)} must be >= 1, got {getattr(args, name)}")
    for name in probabilities:
        if not 0.0 <= getattr(args, name) < 1.0:
            raise ValueError(f"{_flag(name)} must be in [0, 1), got {getattr(args, name)}")
    for name, allowed in (choices or {}).items():
        if getattr(args, name) not in allowed:
            raise ValueError(f"{_flag(name)} must be one of {allowed}, got {getattr(args, name)!r}")


#: (side, embedding key in the state dict, the decoder/encoder attribute, the dictionary file)
SOURCE = ("source", "encoder.embed_tokens.weight", "encoder", "dict.<source-lang>.txt")
TARGET = ("target", "decoder.embed_tokens.weight", "decoder", "dict.<target-lang>.txt")


def dictionary_mismatches(model, state_dict, sides: Sequence[Tuple[str, str, str, str]] = (SOURCE, TARGET)) -> List[str]:
    """Describe each side whose embedding in ``state_dict`` has another number of rows than
    the model's dictionary (empty list: the sizes agree)."""
    problems = []
    for side, key, part, file_hint in sides:
        dictionary = getattr(model, part).dictionary
        weight = state_dict.get(key)
        if weight is not None and weight.dim() == 2 and weight.size(0) != len(dictionary):
            problems.append(f"the checkpoint's {side} embedding has {weight.size(0)} rows, but the "
                            f"{side} dictionary ({file_hint} of the data folder) has {len(dictionary)} "
                            f"entries")
    return problems


class ChecksDictionarySizes:
    """Mixin for a fairseq model: its ``load_state_dict`` refuses weights trained with
    dictionaries of another size with a :class:`~fairseq_lrn.errors.CheckpointError` that says
    so (fairseq would raise a size mismatch deep in torch). ``MODEL_NAME`` names the model in the
    message; ``DICTIONARY_SIDES`` lists the embeddings to compare."""

    MODEL_NAME = "model"
    DICTIONARY_SIDES: Sequence[Tuple[str, str, str, str]] = (SOURCE, TARGET)

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        problems = dictionary_mismatches(self, state_dict, self.DICTIONARY_SIDES)
        if problems:
            raise CheckpointError(
                f"this {self.MODEL_NAME} checkpoint was trained with other dictionaries than the ones "
                "loaded now: " + "; ".join(problems) + ". A model works only with the dictionaries it "
                "was trained with: point fairseq at the data folder (or dict.*.txt files) of its "
                "training run, e.g. binarize new data with fairseq-preprocess --srcdict/--tgtdict "
                "from that run.")
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)
