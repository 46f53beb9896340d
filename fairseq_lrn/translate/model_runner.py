"""What the beam search needs from a model, and the runner for each supported model family.

A :class:`ModelRunner` wraps a trained fairseq model (its modules and weights, not copies) for
:func:`~fairseq_lrn.translate.search.beam_search`:

* :meth:`~ModelRunner.encode` runs the encoder once per batch and precomputes, once per
  sentence, everything the decoder's attention reads (keys, values, padding mask);
* :meth:`~ModelRunner.start` / :meth:`~ModelRunner.step` / :meth:`~ModelRunner.reorder` run the
  decoder one token at a time over ``N = B * beam`` rows (``B`` rows at the first step, where
  a sentence's beams are one hypothesis; a step reads the rows per sentence from the shapes,
  ``N / B``). A step is the runner's
  :meth:`~ModelRunner.step_features` (traced once, with :meth:`~ModelRunner.trace_steps`:
  :mod:`~fairseq_lrn.translate.traced_step`) and then the output layer, eagerly (a shortlist
  changes it per batch). The per-row state is only the LRN
  states (and, with input feeding, the previous context); the beams of a sentence share its
  encoder memory (its attention is computed with the beams as a batch of queries against
  the sentence's keys), so nothing of size ``source length`` is copied per beam or reordered.

The step computes what the model's own incremental ``forward`` computes, with the model's modules.
"""

from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError
from .int8_linear import Int8Linear

State = Tuple[Tensor, ...]


class ModelRunner(nn.Module):
    """Base of the per-family runners (see the module docstring). The output projection is
    ``model.decoder.output_projection``, or, for a decoder that computes it from its embedding
    matrix, ``tied_output`` (a Linear sharing that weight), so that
    :mod:`~fairseq_lrn.translate.quantize` can quantize it as a layer of its own."""

    def __init__(self, model: nn.Module, tied_output: Optional[nn.Linear] = None):
        super().__init__()
        self.model = model
        self.tied_output = tied_output
        dictionary = model.decoder.dictionary
        self.vocab_size = len(dictionary)
        self.eos, self.pad, self.unk = dictionary.eos(), dictionary.pad(), dictionary.unk()
        output = self.output_layer()
        # the float weights of the output projection (a tuple: not registered, never quantized), for
        # restrict_output; int8 mode replaces the layer itself
        self._float_output = (output.weight, output.bias)
        self._restricted: Optional[Callable[[Tensor], Tensor]] = None
        self._traced = None  # a traced_step.TracedSteps once trace_steps() was called
        #: whether the steps run the fused compiled operations of :mod:`~fairseq_lrn.translate.fused_ops`
        #: (compiled int8 mode: :func:`~fairseq_lrn.translate.quantize.quantize_runner`)
        self.fused_ops = False

    @property
    def traceable(self) -> bool:
        """Whether :meth:`step_features` is the same computation for every step, so that a trace
        of it (recorded operations) is exact."""
        return True

    def trace_steps(self) -> bool:
        """Run :meth:`step_features` as TorchScript traces from now on (one per state layout,
        recorded at first use; :mod:`~fairseq_lrn.translate.traced_step`). Returns
        False, and changes nothing, for a runner that is not :attr:`traceable`."""
        from .traced_step import TracedSteps

        if not self.traceable:
            return False
        self._traced = TracedSteps(self.step_features, owner=self.model.decoder)
        return True

    @property
    def trace_recorded(self) -> bool:
        """Whether the steps run as a trace that was already recorded (a traced ``Translator``
        records it while loading, so that worker processes forked later inherit it)."""
        return self._traced is not None and bool(self._traced.traces)

    def padding_mask_for_step(self, padding_mask: Optional[Tensor], tokens: Tensor) -> Optional[Tensor]:
        """The encoder padding mask the steps read: with traced steps, an all-False ``(B, S)``
        mask for a batch without padding (``tokens (B, S)``), so that batches with and without
        padding replay one trace; otherwise ``padding_mask`` as it is (None: no masking)."""
        if padding_mask is None and self._traced is not None:
            return torch.zeros(tokens.shape, dtype=torch.bool, device=tokens.device)
        return padding_mask

    def max_decoder_positions(self) -> int:
        return self.model.max_decoder_positions()

    def output_layer(self) -> nn.Module:
        """The output projection over the target vocabulary (float or int8)."""
        return self.tied_output if self.tied_output is not None else self.model.decoder.output_projection

    def restrict_output(self, vocabulary: Optional[Tensor]) -> None:
        """Make :meth:`step` score the target ids ``vocabulary (K,)`` only (a shortlist,
        :mod:`~fairseq_lrn.translate.shortlist`; the softmax is over them), or the whole
        vocabulary again (None). The rows are taken from the projection's float weights, or, when it
        is int8, from its int8 weights as they are
        (:meth:`~fairseq_lrn.translate.int8_linear.Int8Linear.select_outputs`)."""
        if vocabulary is None:
            self._restricted = None
            return
        output = self.output_layer()
        if isinstance(output, Int8Linear):
            self._restricted = output.select_outputs(vocabulary.to(output.weight_int8.device))
            return
        weight, bias = (None if t is None else t.detach() for t in self._float_output)
        index = vocabulary.to(weight.device)
        rows = weight.index_select(0, index)
        bias = None if bias is None else bias.index_select(0, index)
        self._restricted = lambda features: F.linear(features, rows, bias)

    def reorder(self, state: State, order: Tensor) -> State:
        """Select rows ``order (N,)`` of every per-row state tensor (dimension 0)."""
        return tuple(None if s is None else s.index_select(0, order) for s in state)

    def encode(self, src_tokens: Tensor, src_lengths: Tensor):
        """The encoder memory of a batch ``src_tokens (B, S)``, per sentence."""
        raise NotImplementedError

    def start(self, memory, beam: int) -> State:
        """The decoder's initial per-row state, ``N = B * beam`` rows (row ``b * beam + j``)."""
        raise NotImplementedError

    def select_sentences(self, memory, keep: Tensor):
        """The encoder memory of sentences ``keep`` only (when finished sentences are dropped)."""
        raise NotImplementedError

    def step(self, tokens: Tensor, state: State, memory) -> Tuple[Tensor, State]:
        """tokens ``(N, t + 1)`` (the hypotheses so far, starting with EOS; the last column is
        the input of this step) -> log-probabilities ``(N, V)`` (``(N, K)`` after
        :meth:`restrict_output`) and the new state."""
        logits, state = self.step_logits(tokens, state, memory)
        return F.log_softmax(logits, dim=-1, dtype=torch.float32), state

    def step_logits(self, tokens: Tensor, state: State, memory) -> Tuple[Tensor, State]:
        """:meth:`step` before the softmax: the output layer's scores ``(N, V)`` (or ``(N, K)``)."""
        if self._traced is not None:
            features, state = self._traced(tokens[:, -1:], state, memory)
        else:
            features, state = self.step_features(tokens, state, memory)
        output = self._restricted if self._restricted is not None else self.output_layer()
        return output(features), state

    def step_features(self, tokens: Tensor, state: State, memory) -> Tuple[Tensor, State]:
        """:meth:`step` up to the output layer: the decoder's output features ``(N, out_dim)``
        and the new state. Reads only the last column of ``tokens`` when :attr:`traceable`."""
        raise NotImplementedError


def linear_sharing(weight: nn.Parameter) -> nn.Linear:
    """An ``nn.Linear`` without bias whose weight *is* ``weight`` (no copy): the output
    projection of a decoder that reuses its embedding matrix."""
    out_features, in_features = weight.shape
    linear = nn.Linear(in_features, out_features, bias=False, device="meta")
    linear.weight = weight
    return linear


def runner_for(model: nn.Module) -> ModelRunner:
    """The runner of a loaded ``lrn`` or ``transformer_lrn`` model (eval mode)."""
    from ..models import LRNModel, TransformerLRNModel
    from ..models.lrn_conditional_decoder import LRNConditionalDecoder
    from .lrn_runner import LRNConditionalRunner, LRNRunner
    from .transformer_lrn_runner import TransformerLRNRunner

    if isinstance(model, TransformerLRNModel):
        return TransformerLRNRunner(model)
    if isinstance(model, LRNModel):
        return LRNConditionalRunner(model) if isinstance(model.decoder, LRNConditionalDecoder) else LRNRunner(model)
    raise CheckpointError(f"fairseq-lrn-translate runs lrn and transformer_lrn models, not "
                          f"{type(model).__name__}; use fairseq-generate or CTranslate2")
