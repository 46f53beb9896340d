"""``hub.translate(sentences, skip_invalid_size_inputs=True)`` keeps outputs aligned with inputs.

What fairseq does wrong: ``fairseq/hub_utils.py`` ``GeneratorHubInterface.generate`` (fairseq
0.12.x: 0.12.2 and the ``fairseq-fixed`` 0.12.3.x builds), under
``skip_invalid_size_inputs=True``, leaves the too-long sentences out of its batches and returns
one output per *remaining* sentence: ``translate`` / ``sample`` then return fewer outputs than
inputs, each one after a skipped sentence in the wrong place (the output of sentence 2 at
index 1, ...), with no sign of which were skipped.

The fix wraps ``GeneratorHubInterface.sample`` (which ``translate`` calls): the sentences longer
than the model's source limit get ``None`` at their own index (and a warning naming the index);
fairseq's own ``sample`` translates the others. No fairseq function is copied.
"""

import logging
from typing import Tuple

from .max_positions import source_limit

logger = logging.getLogger(__name__)

SUMMARY = "hub translate/sample with skip_invalid_size_inputs=True: None in place of a skipped sentence"
#: The fairseq versions (prefixes of ``fairseq.__version__``) this fix was written for.
FAIRSEQ_VERSIONS = ("0.12.",)


def install(models: Tuple[type, ...] = ()) -> bool:
    """Wrap ``GeneratorHubInterface.sample`` (idempotent). Returns True."""
    from fairseq.hub_utils import GeneratorHubInterface

    original = GeneratorHubInterface.sample
    if getattr(original, "lrn_skip_alignment", False):
        return True

    def sample(self, sentences, beam: int = 1, verbose: bool = False, **kwargs):
        if isinstance(sentences, str) or not kwargs.get("skip_invalid_size_inputs", False):
            return original(self, sentences, beam, verbose, **kwargs)
        limit = source_limit(self.max_positions)
        fits = [limit is None or self.encode(s).numel() <= limit for s in sentences]
        for index in (i for i, ok in enumerate(fits) if not ok):
            logger.warning(f"sentence {index} is longer than the model accepts ({limit} tokens with "
                           f"</s>): skipped, its output is None")
        kept = [s for s, ok in zip(sentences, fits) if ok]
        outputs = iter(original(self, kept, beam, verbose, **kwargs) if kept else [])
        return [next(outputs) if ok else None for ok in fits]

    sample.lrn_skip_alignment = True
    sample.__doc__ = original.__doc__
    sample.__wrapped__ = original
    GeneratorHubInterface.sample = sample
    return True
