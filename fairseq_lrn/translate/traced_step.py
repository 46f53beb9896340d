"""A decoder step run as a TorchScript trace: the same operations, without the Python that issues them.

At the sizes ``fairseq-lrn-translate`` runs (a few hypotheses, d = 256-512), a step is over a
hundred small PyTorch operations, and the Python interpreter between them (module calls, attribute
lookups, the quantized layers' wrappers) costs about as much as the operations: at beam 5 and batch
1, running the step as a trace gave 1.8x the sentences per second for ``transformer_lrn`` and 1.5x
for ``lrn``; at batch 32, where the operations dominate, between -13% and +12% (BENCHMARKS.md,
2026-12-07).

A trace records the operations of one call and replays them on new tensors. It is exact here
because a runner's :meth:`~fairseq_lrn.translate.model_runner.ModelRunner.step_features` (when
``traceable``) has no control flow that depends on tensor values or on the step number: shapes
are read from the tensors (so another batch size, source length or number of live sentences
replays the same trace: the beams per sentence are the rows per sentence, ``N / B``, so the
first step's one row per sentence replays it too), and what differs between calls in structure
(which entries of the state and memory are ``None``) is the trace's key; runners give traced
steps a padding mask even for a batch without padding, so there is one. The output layer is
not traced (a shortlist changes it per batch). The state and the encoder memory are passed as
flat lists of tensors, ``None`` entries included in the structure (flattened here rather than by
``torch.utils._pytree``, whose general flattening, which checks every node against its registry,
took 149 us against these functions' 11 us per flatten and unflatten of a ``transformer_lrn``
step's arguments: BENCHMARKS.md, 2026-12-07, second session).

A trace is recorded at first use of each key, with gradients off and outside inference mode
(traces cannot record inference tensors), as a module that owns the decoder only (recording
turns every owned submodule into a TorchScript module: with the whole model, encoder included,
recording took twice as long, 0.4 s for ``transformer_lrn`` 3+3), and replayed without
TorchScript's optimizing executor:
that executor profiles the first runs and specializes the graph to their shapes, which here change
with every batch; replaying as recorded was faster from the first batch on (BENCHMARKS.md).
"""

import warnings
from typing import Callable, Dict, Iterator, List, Tuple

import torch
from torch import Tensor, nn

StepFeatures = Callable[..., Tuple[Tensor, tuple]]


def _flatten(tree) -> Tuple[List[Tensor], tuple, object]:
    """The tensors of ``tree`` (tuples, lists and NamedTuples of tensors and ``None``; its ``None``
    leaves left out), which leaves are tensors, and its structure."""
    leaves: list = []
    spec = _structure(tree, leaves)
    return [t for t in leaves if t is not None], tuple(t is not None for t in leaves), spec


def _structure(node, leaves: list):
    """``node``'s structure (None for a leaf, else its type and its children's structures); its
    leaves appended to ``leaves``."""
    if isinstance(node, (tuple, list)):
        return type(node), tuple(_structure(child, leaves) for child in node)
    leaves.append(node)
    return None


def _unflatten(tensors: List[Tensor], present: tuple, spec):
    it = iter(tensors)
    return _build(spec, iter([next(it) if p else None for p in present]))


def _build(spec, leaves: Iterator):
    if spec is None:
        return next(leaves)
    kind, children = spec
    values = [_build(child, leaves) for child in children]
    if kind is list:
        return values
    return tuple(values) if kind is tuple else kind(*values)  # a NamedTuple


class _FlatStep(nn.Module):
    """``step_features`` with flat tensor arguments and results, for ``torch.jit.trace``."""

    def __init__(self, step_features: StepFeatures, owner: nn.Module, present: tuple, spec):
        super().__init__()
        self.owner = owner  # registers the step's parameters and quantized layers with the trace
        self.step_features, self.present, self.spec = step_features, present, spec
        self.out_layout = None

    def forward(self, tokens: Tensor, *tensors: Tensor):
        state, memory = _unflatten(list(tensors), self.present, self.spec)
        features, new_state = self.step_features(tokens, state, memory)
        flat, present, spec = _flatten(new_state)
        self.out_layout = (present, spec)
        return (features, *flat)


class TracedSteps:
    """``traced(tokens, state, memory)`` = ``step_features(tokens, state, memory)`` of one runner,
    traced once per set of ``None`` entries of the state and memory (a runner's structure is
    otherwise fixed). ``owner``: the module whose submodules the step calls (the decoder).
    ``tokens``: the last column only."""

    def __init__(self, step_features: StepFeatures, owner: nn.Module):
        self.step_features, self.owner = step_features, owner
        self.traces: Dict[tuple, tuple] = {}

    def __call__(self, tokens: Tensor, state, memory):
        tensors, present, spec = _flatten((state, memory))
        if present not in self.traces:
            self.traces[present] = self._trace(tokens, tensors, present, spec)
        traced, out_present, out_spec = self.traces[present]
        with torch.jit.optimized_execution(False):  # replay the recorded operations as they are
            features, *flat = traced(tokens, *tensors)
        return features, _unflatten(flat, out_present, out_spec)

    def _trace(self, tokens: Tensor, tensors: List[Tensor], present: tuple, spec) -> tuple:
        flat_step = _FlatStep(self.step_features, self.owner, present, spec)
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.10 marks TorchScript deprecated
            example = tuple(t.clone() for t in (tokens, *tensors))
            traced = torch.jit.trace(flat_step, example, check_trace=False)
            # weights as constants and submodule calls inlined: 6-9% faster at batch 1 for
            # transformer_lrn; no pass that may change the numbers (optimize_numerics)
            frozen = torch.jit.freeze(traced.eval(), optimize_numerics=False)
        return (frozen, *flat_step.out_layout)
