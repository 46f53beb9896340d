"""A loaded model is built for this machine: the checkpoint's paths to pretrained embeddings are
not opened, and its choice of implementation (``--lrn-impl``) is not used.

What fairseq does wrong: fairseq 0.12.x (0.12.2 and the ``fairseq-fixed`` 0.12.3.x builds)
builds a model loaded from a checkpoint (``fairseq/checkpoint_utils.py``
``load_model_ensemble_and_task``, used by ``fairseq-generate``, ``-interactive``, ``-eval-lm``,
``-validate`` and the hub's ``from_pretrained``) with the checkpoint's args, as if they were
this run's command line. ``build_model`` of the transformer, LSTM, lightconv, fconv,
multilingual transformer and ``lrn`` / ``lrn_lm`` models then opens and parses the files their
``encoder_embed_path`` / ``decoder_embed_path`` (``encoder.embed_path`` /
``decoder.embed_path``) name, and speech-to-text models load the checkpoints
``load_pretrained_encoder_from`` / ``load_pretrained_decoder_from`` name: files of the
machine the model was trained on, which are at best missing here. A path that a checkpoint's
author chose, such as a FIFO or ``/dev/zero``, hangs the process or fills its memory. Those files
only initialise a model before training; the trained values are in the checkpoint's weights.
Likewise ``--lrn-impl`` says which implementation of the recurrence the training machine ran
(``fused``: Triton on a GPU); read back from the checkpoint, a GPU-trained ``fused`` model
failed to decode on a CPU.

The fix wraps ``fairseq.models.build_model`` (fairseq's function runs unchanged): when it builds
from a checkpoint (``from_checkpoint=True``), the model configuration's
:data:`INITIALISATION_PATHS` (and any other ``*_embed_path``) are set to None first, with an
info message naming the field, and the fields the plugin's models declare in
``TRAINING_MACHINE_ARGS`` (``lrn_impl``) get this machine's value (``auto``). Paths a model needs
to be built at all (:data:`NEEDED_PATHS`: fconv_self_att's ``pretrained_checkpoint``,
wav2vec2's / HuBERT's ``w2v_path``) are still used, but one that is not a regular file (a FIFO,
a device) is refused with a :class:`~fairseq_lrn.errors.CheckpointError` naming the field.

Training is not affected: ``fairseq-train`` builds its model from its own command line
(``from_checkpoint`` is False there, also with ``--restore-file``), so ``--encoder-embed-path``
and ``--lrn-impl`` work as before.
"""

import functools
import logging
import os
import stat
from typing import Dict, Tuple

from ..errors import CheckpointError
from .config_fields import config_fields, set_field

logger = logging.getLogger(__name__)

SUMMARY = ("a model loaded from a checkpoint does not open the checkpoint's embedding paths and does not "
           "take --lrn-impl from it")
#: The fairseq versions (prefixes of ``fairseq.__version__``) this fix was written for.
FAIRSEQ_VERSIONS = ("0.12.",)

#: Fields naming files that only initialise a model before training (every name ending in
#: ``embed_path`` counts too).
INITIALISATION_PATHS = ("encoder_embed_path", "decoder_embed_path", "embed_path",
                        "load_pretrained_encoder_from", "load_pretrained_decoder_from")
#: Fields naming files a model needs to be built (another checkpoint): used only if a regular file.
NEEDED_PATHS = ("pretrained_checkpoint", "w2v_path")

#: field -> the value a loaded model gets, collected from the ``TRAINING_MACHINE_ARGS`` of the
#: model classes given to :func:`install`.
MACHINE_VALUES: Dict[str, object] = {}


def _is_initialisation_path(key: str) -> bool:
    return key in INITIALISATION_PATHS or key.endswith("embed_path")


def for_this_machine(cfg) -> None:
    """Set, in place, what a model configuration read from a checkpoint says about the machine
    it was trained on (see the module docstring); refuse a needed path that is not a regular file."""
    for container, key, name, value in list(config_fields(cfg)):
        if not isinstance(key, str):
            continue
        if _is_initialisation_path(key) and value:
            logger.info(f"not opening {name}={value!r} of the checkpoint: it initialised the model before "
                        f"training; the trained values are in the checkpoint's weights")
            set_field(container, key, None)
        elif key in NEEDED_PATHS and isinstance(value, str) and value:
            try:
                mode = os.stat(value).st_mode
            except OSError:
                continue  # missing: fairseq says so (or does not need it)
            if not stat.S_ISREG(mode):
                raise CheckpointError(f"refused to load the checkpoint: its model field {name} names "
                                      f"{value!r}, which is not a regular file (a FIFO or a device would hang "
                                      f"or fill memory)")
        elif key in MACHINE_VALUES and value != MACHINE_VALUES[key]:
            logger.info(f"the checkpoint's {name}={value!r} was the training machine's choice; using "
                        f"{MACHINE_VALUES[key]!r} here")
            set_field(container, key, MACHINE_VALUES[key])


def _building_for_this_machine(build_model):
    """Wrap fairseq's ``models.build_model(cfg, task, from_checkpoint=False)``."""

    @functools.wraps(build_model)
    def wrapper(cfg, task, from_checkpoint=False, *args, **kwargs):
        if from_checkpoint:
            for_this_machine(cfg)
        return build_model(cfg, task, from_checkpoint, *args, **kwargs)

    wrapper.lrn_training_machine_args = True
    return wrapper


def install(models: Tuple[type, ...] = ()) -> bool:
    """Wrap ``fairseq.models.build_model`` (idempotent) and take the ``TRAINING_MACHINE_ARGS`` of
    ``models``. Returns True."""
    from fairseq import models as fairseq_models

    for model in models:
        MACHINE_VALUES.update(getattr(model, "TRAINING_MACHINE_ARGS", {}))
    if not getattr(fairseq_models.build_model, "lrn_training_machine_args", False):
        fairseq_models.build_model = _building_for_this_machine(fairseq_models.build_model)
    return True
