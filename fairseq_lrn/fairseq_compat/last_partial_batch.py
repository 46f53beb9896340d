"""Keep the last sentences of every split that is read for inference, which fairseq 0.12's
batching drops; leave training batches exactly as fairseq makes them.

What fairseq does wrong: ``fairseq/data/data_utils.py`` ``batch_by_size`` (fairseq 0.12.x:
0.12.2 and the ``fairseq-fixed`` 0.12.3.x builds; fairseq issue #5036, open) drops the last
batch when its size is not a multiple of ``--required-batch-size-multiple`` (default 8), after
the compiled batcher has split the tail off into it. So ``fairseq-generate`` on a test set of
1,518 sentences translates 1,512 (BLEU is then computed on a subset, with no warning), and
validation loss skips the same sentences.

The fix wraps ``batch_by_size``: the sentences it left out come back as one last, smaller batch
(a subset of the batch fairseq built, so within its limits). fairseq's own ``batch_by_size``
still builds every batch (``__wrapped__`` is fairseq's function). This holds for every batch
iterator except the training set's: ``fairseq-generate``, ``fairseq-interactive``,
``fairseq-eval-lm``, validation during training and the hub all see every sentence.

Training batches are fairseq's own (decided, not a side effect): while
``Trainer.get_train_iterator`` builds the training set's batches (and, for tasks that rebuild them
every epoch, whenever its iterator does) ``batch_by_size`` returns exactly what fairseq returns.
So loading the plugin, or opting out of this fix (``FAIRSEQ_LRN_SKIP_FIXES=last_partial_batch``),
does not change a training run: the batches and their shuffle at a seed are plain fairseq's, and a
checkpoint saved mid-epoch resumes at the same batch whether or not the fix was applied when it was
written (the iterator's state is a batch count into that epoch's batches). Training, like plain
fairseq, does not see up to ``--required-batch-size-multiple - 1`` of its longest pairs (the same
ones each epoch: batches are built once, ``--required-batch-size-multiple 1`` keeps them all).

Applied only to fairseq 0.12.x and only when a probe shows the loss.
"""

import contextvars
import functools
from typing import Tuple

SUMMARY = "the last batch of an inference split (up to 7 sentences) is kept instead of dropped"
#: The fairseq versions (prefixes of ``fairseq.__version__``) this fix was written for.
FAIRSEQ_VERSIONS = ("0.12.",)

#: True while fairseq builds training batches: ``batch_by_size`` then returns fairseq's batches.
_BUILDING_TRAIN_BATCHES = contextvars.ContextVar("building_train_batches", default=False)


def _loses_sentences(batch_by_size) -> bool:
    """True when ``batch_by_size`` batches fewer sentences than it is given (probed on nine
    one-token sentences, at most 8 a batch, batch sizes a multiple of 8)."""
    import numpy

    batches = batch_by_size(numpy.arange(9, dtype=numpy.int64), num_tokens_fn=lambda index: 1,
                            max_sentences=8, required_batch_size_multiple=8)
    return sum(len(batch) for batch in batches) != 9


def _keep_every_sentence(original):
    """Wrap fairseq's ``data_utils.batch_by_size`` so that the sentences it left out come back
    as one last batch (except while training batches are built)."""
    import numpy

    @functools.wraps(original)
    def batch_by_size(indices, *args, **kwargs):
        batches = original(indices, *args, **kwargs)
        if _BUILDING_TRAIN_BATCHES.get():
            return batches
        if not isinstance(indices, numpy.ndarray):
            indices = numpy.fromiter(indices, dtype=numpy.int64, count=-1)
        batched = numpy.concatenate(batches) if len(batches) else indices[:0]
        if len(batched) < len(indices):
            batches = list(batches) + [indices[~numpy.isin(indices, batched)]]
        return batches

    batch_by_size.keeps_every_sentence = True
    return batch_by_size


def _as_fairseq_makes_them(build):
    """``build`` (a function that makes training batches) run with fairseq's own batching."""
    @functools.wraps(build)
    def build_train_batches(*args, **kwargs):
        token = _BUILDING_TRAIN_BATCHES.set(True)
        try:
            return build(*args, **kwargs)
        finally:
            _BUILDING_TRAIN_BATCHES.reset(token)

    build_train_batches.builds_fairseq_batches = True
    return build_train_batches


def _train_batches_as_fairseq_makes_them(get_train_iterator):
    """Wrap ``Trainer.get_train_iterator`` so that the training set's batches are fairseq's own,
    also when its iterator rebuilds them each epoch (a callable ``batch_sampler``)."""
    @functools.wraps(get_train_iterator)
    def wrapper(*args, **kwargs):
        iterator = _as_fairseq_makes_them(get_train_iterator)(*args, **kwargs)
        sampler = getattr(iterator, "batch_sampler", None)
        if callable(sampler) and not getattr(sampler, "builds_fairseq_batches", False):
            iterator.batch_sampler = _as_fairseq_makes_them(sampler)
        return iterator

    wrapper.builds_fairseq_batches = True
    return wrapper


def install(models: Tuple[type, ...] = ()) -> bool:
    """Wrap ``fairseq.data.data_utils.batch_by_size`` and ``Trainer.get_train_iterator``
    (idempotent). Returns True when batch_by_size is (now) wrapped, False when fairseq's does not
    lose sentences."""
    from fairseq import trainer
    from fairseq.data import data_utils

    if not getattr(data_utils.batch_by_size, "keeps_every_sentence", False):
        if not _loses_sentences(data_utils.batch_by_size):
            return False
        data_utils.batch_by_size = _keep_every_sentence(data_utils.batch_by_size)
    if not getattr(trainer.Trainer.get_train_iterator, "builds_fairseq_batches", False):
        trainer.Trainer.get_train_iterator = _train_batches_as_fairseq_makes_them(
            trainer.Trainer.get_train_iterator)
    return True
