"""Keep the last sentences of every split, which fairseq 0.12's batching drops.

What fairseq does wrong: ``fairseq/data/data_utils.py`` ``batch_by_size`` (fairseq 0.12.x:
0.12.2 and the ``fairseq-fixed`` 0.12.3.x builds; fairseq issue #5036, open) drops the last
batch when its size is not a multiple of ``--required-batch-size-multiple`` (default 8), after
the compiled batcher has split the tail off into it. So ``fairseq-generate`` on a test set of
1,518 sentences translates 1,512 (BLEU is then computed on a subset, with no warning),
validation loss skips the same sentences, and every training epoch skips up to 7 pairs.

The fix wraps ``batch_by_size``: the sentences it left out come back as one last, smaller batch
(a subset of the batch fairseq built, so within its limits). fairseq's own ``batch_by_size``
still builds every batch (``__wrapped__`` is fairseq's function). Applied only to fairseq 0.12.x
and only when a probe shows the loss.
"""

import functools
from typing import Tuple

SUMMARY = "the last batch of a split (up to 7 sentences) is kept instead of dropped"
#: The fairseq versions (prefixes of ``fairseq.__version__``) this fix was written for.
FAIRSEQ_VERSIONS = ("0.12.",)


def _loses_sentences(batch_by_size) -> bool:
    """True when ``batch_by_size`` batches fewer sentences than it is given (probed on nine
    one-token sentences, at most 8 a batch, batch sizes a multiple of 8)."""
    import numpy

    batches = batch_by_size(numpy.arange(9, dtype=numpy.int64), num_tokens_fn=lambda index: 1,
                            max_sentences=8, required_batch_size_multiple=8)
    return sum(len(batch) for batch in batches) != 9


def _keep_every_sentence(original):
    """Wrap fairseq's ``data_utils.batch_by_size`` so that the sentences it left out come back
    as one last batch."""
    import numpy

    @functools.wraps(original)
    def batch_by_size(indices, *args, **kwargs):
        batches = original(indices, *args, **kwargs)
        if not isinstance(indices, numpy.ndarray):
            indices = numpy.fromiter(indices, dtype=numpy.int64, count=-1)
        batched = numpy.concatenate(batches) if len(batches) else indices[:0]
        if len(batched) < len(indices):
            batches = list(batches) + [indices[~numpy.isin(indices, batched)]]
        return batches

    batch_by_size.keeps_every_sentence = True
    return batch_by_size


def install(models: Tuple[type, ...] = ()) -> bool:
    """Wrap ``fairseq.data.data_utils.batch_by_size`` (idempotent). Returns True when it is
    (now) wrapped, False when fairseq's does not lose sentences."""
    from fairseq.data import data_utils

    if getattr(data_utils.batch_by_size, "keeps_every_sentence", False):
        return True
    if not _loses_sentences(data_utils.batch_by_size):
        return False
    data_utils.batch_by_size = _keep_every_sentence(data_utils.batch_by_size)
    return True
