"""fairseq reads configuration strings with ``eval``: a checkpoint's args run as code.

What fairseq does wrong: fairseq 0.12.x (0.12.2 and the ``fairseq-fixed`` 0.12.3.x builds)
calls Python's ``eval`` on the text of some options, and when a model is loaded those options
come from the checkpoint (its ``args`` Namespace or ``cfg``), which the weights-only unpickler
lets through as plain strings. Setting ``cfg["model"].adaptive_softmax_cutoff`` of a
``transformer_lrn`` checkpoint to ``"__import__('os').system('touch PWNED') and None"`` made
``fairseq-generate --path evil.pt`` run the command. The ``eval`` calls
(:data:`EVALUATING_MODULES`):

* ``fairseq/utils.py`` ``eval_str_list``, ``eval_str_dict``, ``eval_bool`` (also reached as
  ``fairseq.options.*``): ``adaptive_softmax_cutoff`` (transformer, LSTM and transformer LMs,
  ``lrn_lm`` before this fix), ``xformers_att_config`` (``MultiheadAttention``), the LSTM's
  ``decoder_attention``, lightconv's kernel lists, list-typed options (``--lr 0.1,0.2``), ...;
* ``eval(args.x)`` in models: ``fconv`` / ``fconv_lm`` / ``fconv_self_att`` (layer and attention
  specs, ``pretrained``), ``transformer_lm`` / ``lightconv_lm`` (``character_filters``),
  wav2vec, wav2vec2, HuBERT, ``s2t_wav_transformer`` (``conv_feature_layers``);
* optimizers (``adam_betas``, ``adamax_betas``, ``lamb_betas``, ``adafactor_eps``), the CTC
  criterion (``wer_args``), ``RawAudioDataset`` (``feature_encoder_spec``).

The fix, in one place: the ``eval`` name of each of those modules becomes
:func:`fairseq_lrn.literals.literal_value` (it shadows the builtin there only), which returns
what ``eval`` returns for every value fairseq's own flags and architecture defaults take
(``10000,50000``, ``"[(512, 3)] * 9 + [(1024, 3)] * 4"``, ``"(0.9, 0.98)"``, ``"{'name':
'scaled_dot_product'}"``, ``True``) and refuses anything else (names, calls, attributes, ...)
with :class:`~fairseq_lrn.literals.NotALiteralError` before anything runs. fairseq's functions
are not copied. ``fairseq.models.build_model`` and ``fairseq.tasks.setup_task`` are wrapped
only to name the field in that error: when the configuration came from a checkpoint
(``from_checkpoint=True``) it becomes a :class:`~fairseq_lrn.errors.CheckpointError` naming the
field; on the command line the error names the flag's field.

Not covered: code that calls ``eval`` outside :data:`EVALUATING_MODULES` (fairseq's
``examples/``, other plugins); ``fairseq/data/codedataset.py`` evaluates the lines of a data
manifest (data, not options) and is left alone.
"""

import functools
import importlib
import logging
from typing import Iterator, Tuple

from ..errors import CheckpointError
from ..literals import NotALiteralError, literal_value
from .config_fields import config_fields

logger = logging.getLogger(__name__)

SUMMARY = "option strings fairseq eval()s (also from a checkpoint's args) are read as literals, never run"
#: The fairseq versions (prefixes of ``fairseq.__version__``) this fix was written for.
FAIRSEQ_VERSIONS = ("0.12.",)

#: The fairseq modules that call ``eval`` on option strings (fairseq 0.12.x; ``examples/`` aside).
EVALUATING_MODULES = (
    "fairseq.utils",  # eval_str_list, eval_str_dict, eval_bool
    "fairseq.models.fconv",
    "fairseq.models.fconv_lm",
    "fairseq.models.fconv_self_att",
    "fairseq.models.lightconv_lm",
    "fairseq.models.transformer_lm",
    "fairseq.models.hubert.hubert",
    "fairseq.models.wav2vec.wav2vec",
    "fairseq.models.wav2vec.wav2vec2",
    "fairseq.models.speech_to_text.s2t_wav_transformer",
    "fairseq.optim.adam",
    "fairseq.optim.cpu_adam",
    "fairseq.optim.adamax",
    "fairseq.optim.adafactor",
    "fairseq.optim.fused_lamb",
    "fairseq.criterions.ctc",
    "fairseq.data.audio.raw_audio_dataset",
)


def fields_holding(cfg, text: str) -> Iterator[str]:
    """The dotted names of the fields of ``cfg`` (a Namespace, an omegaconf DictConfig or a dict,
    and the configurations nested in it) whose value is the string ``text``."""
    return (name for _, _, name, value in config_fields(cfg, depth=4) if value == text)


def _naming_the_field(build, what: str):
    """Wrap ``build(cfg, ..., from_checkpoint=False)`` (``models.build_model``,
    ``tasks.setup_task``) so that a :class:`NotALiteralError` names the field of ``cfg`` it came
    from, as a :class:`CheckpointError` when ``cfg`` came from a checkpoint."""

    @functools.wraps(build)
    def wrapper(cfg, *args, **kwargs):
        try:
            return build(cfg, *args, **kwargs)
        except NotALiteralError as error:
            from_checkpoint = kwargs.get("from_checkpoint", args[1] if len(args) > 1 else False)
            fields = list(fields_holding(cfg, error.text)) if error.field is None else [error.field]
            named = error.naming(" / ".join(fields)) if fields else error
            if not from_checkpoint:
                raise named from None
            field_text = f"its {what} field {' / '.join(fields)}" if fields else f"a field of its {what}"
            raise CheckpointError(
                f"refused to load the checkpoint: {field_text} holds {error.text!r}, which fairseq would run "
                f"as Python code (eval); it is not a literal ({error.reason}). A checkpoint's options are "
                f"data: numbers, strings, True/False/None and tuples, lists, dicts of them.") from None

    wrapper.lrn_literal_args = True
    return wrapper


def install(models: Tuple[type, ...] = ()) -> bool:
    """Give each module of :data:`EVALUATING_MODULES` an ``eval`` that reads literals only, and
    name the field in its errors (idempotent). A module that does not import here (an optional
    dependency missing) is skipped: it cannot run. Returns True."""
    from fairseq import models as fairseq_models
    from fairseq import tasks

    for name in EVALUATING_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            logger.debug(f"literal_args: {name} does not import here ({error}); nothing to patch")
            continue
        module.eval = literal_value
    if not getattr(fairseq_models.build_model, "lrn_literal_args", False):
        fairseq_models.build_model = _naming_the_field(fairseq_models.build_model, "model configuration")
    if not getattr(tasks.setup_task, "lrn_literal_args", False):
        tasks.setup_task = _naming_the_field(tasks.setup_task, "task configuration")
    return True
