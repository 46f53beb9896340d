"""The Python API of fast translation: :class:`Translator`.

::

    from fairseq_lrn.translate import Translator

    translator = Translator.from_checkpoint("checkpoints/checkpoint_best.pt", "data-bin",
                                            quantize="auto", threads=2)
    translator.translate(["ein kleiner Test ."], beam=5, batch_size=32)  # -> one str per line

Each call encodes the lines (optional tokenizer and BPE, then the source dictionary, as
fairseq-interactive does), sorts them by length into batches, runs
:func:`~fairseq_lrn.translate.search.beam_search` on each batch and returns the translations in
input order (target dictionary -> ``--remove-bpe`` -> BPE decoding -> detokenization).
"""

import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..fairseq_compat.interactive_input import apply_too_long_policy, too_long_message
from .quantize import DEFAULT_QUANTIZE

#: The modes of ``--step``: ``traced`` runs the decoder step as a TorchScript trace
#: (:mod:`~fairseq_lrn.translate.traced_step`), ``eager`` as Python; ``auto``: traced on the CPU
#: where the model allows it (same translations: tested), eager otherwise.
STEP_MODES = ("auto", "traced", "eager")
#: The modes of ``--native``, the compiled steps of the search (candidate selection and
#: bookkeeping) and int8 kernel (:mod:`~fairseq_lrn.translate.native`): ``yes`` (or an error where
#: they cannot be built), ``no`` (PyTorch's operations), ``auto`` (compiled on the CPU where they build).
NATIVE_MODES = ("auto", "yes", "no")

logger = logging.getLogger(__name__)

#: Sentences per batch when neither ``batch_size`` nor ``max_tokens`` is given.
DEFAULT_BATCH_SIZE = 32
#: What ``translate(too_long=...)`` accepts: raise ValueError, no output (""), or the first tokens.
TOO_LONG_POLICIES = ("error", "skip", "truncate")


@dataclass
class TranslationStats:
    """What a run translated: sentences, generated target tokens (with the final ``</s>`` of
    each, as fairseq-generate counts them) and seconds spent translating."""

    sentences: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def add(self, other: "TranslationStats") -> None:
        self.sentences += other.sentences
        self.tokens += other.tokens
        self.seconds += other.seconds


def make_batches(lengths: Sequence[int], *, batch_size: Optional[int], max_tokens: Optional[int]) -> List[List[int]]:
    """Indices of ``lengths`` grouped into batches, longest sentences first: at most
    ``batch_size`` sentences and ``max_tokens`` padded source tokens per batch (a sentence
    longer than ``max_tokens`` gets a batch of its own)."""
    if batch_size is None and max_tokens is None:
        batch_size = DEFAULT_BATCH_SIZE
    for name, value in (("batch_size", batch_size), ("max_tokens", max_tokens)):
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, current = [], []
    for i in order:
        full = current and ((batch_size is not None and len(current) >= batch_size) or
                            (max_tokens is not None and (len(current) + 1) * lengths[current[0]] > max_tokens))
        if full:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class Translator:
    """A loaded model ready to translate (see the module docstring); build it with
    :meth:`from_checkpoint`."""

    def __init__(self, runner, task, *, device: str = "cpu", encode_fn: Callable[[str], str] = None,
                 decode_fn: Callable[[str], str] = None, remove_bpe: Optional[str] = None,
                 max_source_positions: Optional[int] = None, quantize: str = "none", shortlist=None,
                 workers: int = 1, step: str = "eager", native: str = "no"):
        from fairseq import utils

        from .native import use_native
        from .workers import check_workers

        check_workers(workers, device)

        self.runner = runner
        self.quantize = quantize  # the --quantize mode the runner was built with (none or int8)
        self.shortlist = shortlist  # a translate.shortlist.Shortlist, or None: the whole vocabulary
        self.workers = workers  # batches translated at once (one-thread worker processes when > 1)
        self.step = step  # the --step mode the runner runs (traced or eager)
        # whether each search step's candidate selection and bookkeeping run compiled (native/)
        self.native = "yes" if use_native(native, device) else "no"
        self.task = task
        self.device = device
        self.src_dict, self.tgt_dict = task.source_dictionary, task.target_dictionary
        self.encode_fn = encode_fn or (lambda line: line)
        self.decode_fn = decode_fn or (lambda line: line)
        self.remove_bpe = remove_bpe
        limits = utils.resolve_max_positions(task.max_positions(), runner.model.max_positions())
        limit = limits[0] if isinstance(limits, (tuple, list)) else limits
        if max_source_positions is not None:
            limit = min(limit, max_source_positions) if limit is not None else max_source_positions
        self.max_source_positions = limit
        self.left_pad_source = bool(getattr(task.cfg, "left_pad_source", True))
        if step == "traced":
            self.warm_up()

    @classmethod
    def from_checkpoint(cls, path: str, data: str, *, source_lang: Optional[str] = None,
                        target_lang: Optional[str] = None, quantize: str = DEFAULT_QUANTIZE,
                        threads: Optional[int] = None, device: str = "cpu", tokenizer: Optional[str] = None,
                        bpe: Optional[str] = None, bpe_codes: Optional[str] = None,
                        sentencepiece_model: Optional[str] = None, remove_bpe: Optional[str] = None,
                        max_source_positions: Optional[int] = None,
                        shortlist: Optional[str] = None, workers: int = 1,
                        step: str = "auto", native: str = "auto") -> "Translator":
        """Load an ``lrn`` / ``transformer_lrn`` checkpoint ``path`` with the dictionaries of the
        data folder ``data`` (see :mod:`~fairseq_lrn.translate.loading`).

        ``quantize``: ``"auto"``, ``"none"`` or ``"int8"`` (:mod:`~fairseq_lrn.translate.quantize`;
        ``auto``: int8 where it was measured to keep BLEU; the mode used is ``self.quantize``);
        ``threads``: CPU threads for torch (``torch.set_num_threads``; None leaves torch's
        setting); ``device``: ``"cpu"`` or ``"cuda"``; ``tokenizer`` (``"moses"``) and ``bpe``
        (``"subword_nmt"`` with ``bpe_codes``, ``"sentencepiece"`` with ``sentencepiece_model``)
        for raw text in and out, through fairseq's own encoders; ``remove_bpe``: as
        fairseq's ``--remove-bpe`` (e.g. ``"subword_nmt"``, ``"sentencepiece"``, ``"@@ "``);
        ``shortlist``: a shortlist file (:mod:`~fairseq_lrn.translate.shortlist`; ShortlistError
        if it does not fit the dictionaries): each batch's output layer scores only its words;
        ``workers``: batches translated at once, each in a one-thread worker process
        (:mod:`~fairseq_lrn.translate.workers`; ``threads`` must then be None or 1); ``step``:
        one of :data:`STEP_MODES` (the mode used is ``self.step``); ``native``: ``"auto"``,
        ``"yes"`` or ``"no"``, the compiled candidate selection and bookkeeping of each search step
        (:mod:`~fairseq_lrn.translate.native`; built on first use with the system's C++
        compiler; auto: on the CPU where they build; the mode used is ``self.native``)."""
        import torch

        from .loading import load_model
        from .model_runner import runner_for
        from .native import use_native
        from .quantize import quantize_runner, resolve_mode
        from .text_codecs import build_codecs
        from .workers import check_workers

        if threads is not None and threads < 1:
            raise ValueError(f"--threads must be >= 1, got {threads}")
        check_workers(workers, device, threads)
        for flag, value, modes in (("--step", step, STEP_MODES), ("--native", native, NATIVE_MODES)):
            if value not in modes:
                raise ValueError(f"{flag} must be one of {modes}, got {value!r}")
        if workers > 1:
            threads = 1  # this process only loads the model and collects translations
        if threads is not None:
            torch.set_num_threads(threads)
        model, task = load_model(path, data, source_lang=source_lang, target_lang=target_lang,
                                 max_source_positions=max_source_positions)
        runner = runner_for(model)
        mode = resolve_mode(quantize, runner, device)
        native = "yes" if use_native(native, device) else "no"
        quantize_runner(runner, mode, compiled=native == "yes")
        runner.to(device)
        encode_fn, decode_fn = build_codecs(tokenizer=tokenizer, bpe=bpe, bpe_codes=bpe_codes,
                                            sentencepiece_model=sentencepiece_model,
                                            source_lang=task.cfg.source_lang, target_lang=task.cfg.target_lang)
        logger.info(f"--quantize {quantize}: {mode}" if quantize == "auto" else f"--quantize {mode}")
        if step == "traced" and not runner.traceable:
            raise ValueError("--step traced: this decoder reads the step number from the target length "
                             "(positional embeddings), which a trace would freeze; use --step eager")
        traced = step == "traced" or (step == "auto" and device == "cpu" and runner.traceable)
        if traced:
            runner.trace_steps()
        lexical = None
        if shortlist is not None:
            from .shortlist import load_shortlist

            lexical = load_shortlist(shortlist, task.source_dictionary, task.target_dictionary)
        return cls(runner, task, device=device, encode_fn=encode_fn, decode_fn=decode_fn,
                   remove_bpe=remove_bpe, max_source_positions=max_source_positions, quantize=mode,
                   shortlist=lexical, workers=workers, step="traced" if traced else "eager", native=native)

    def warm_up(self) -> None:
        """Translate two made-up two- and three-token sources (beam 2, at most 2 tokens): this
        records the traced step and runs every operation once, so that neither the first batch nor
        worker processes forked later pay for it (about 0.3 s for ``transformer_lrn`` 3+3 here).
        The constructor calls it when the step is traced: it is part of loading."""
        import torch

        from .search import SearchOptions

        word, eos = min(self.src_dict.nspecial, len(self.src_dict) - 1), self.src_dict.eos()
        self._translate_batch([torch.tensor([word, eos]), torch.tensor([word, word, eos])],
                              SearchOptions(beam=2, max_len_b=2))

    def translate(self, lines: Iterable[str], beam: int = 5, *, batch_size: Optional[int] = None,
                  max_tokens: Optional[int] = None, max_len_a: float = 0, max_len_b: int = 200,
                  min_len: int = 1, lenpen: float = 1, unkpen: float = 0, too_long: str = "error") -> List[str]:
        """One translation per line, in order. The options mean what fairseq-generate's flags
        of the same names mean. A line with more tokens than the model accepts raises ValueError
        (``too_long="error"``), becomes ``""`` (``"skip"``) or is cut to the limit (``"truncate"``).
        An empty line is translated as fairseq translates it (a source of ``</s>`` alone)."""
        if too_long not in TOO_LONG_POLICIES:
            raise ValueError(f"too_long must be one of {TOO_LONG_POLICIES}, got {too_long!r}")
        outputs, _ = self.translate_with_stats(list(lines), beam=beam, batch_size=batch_size,
                                               max_tokens=max_tokens, max_len_a=max_len_a,
                                               max_len_b=max_len_b, min_len=min_len, lenpen=lenpen,
                                               unkpen=unkpen, too_long=too_long)
        return outputs

    def encode(self, lines: Sequence[str], *, first_line: int = 1, too_long: str = "error") -> list:
        """Source token tensors (``</s>`` appended) of ``lines``, or None for a line skipped as
        too long. ``first_line``: the input line number of ``lines[0]`` (for messages).
        ``too_long``: one of :data:`TOO_LONG_POLICIES`, or ``"refuse"`` (the command's default:
        fairseq-interactive's message and exit code 1)."""
        encoded = []
        for i, line in enumerate(lines):
            text = self.encode_fn(line)
            tokens = self._binarize(text)
            limit = self.max_source_positions
            if limit is not None and tokens.numel() > limit:
                where = dict(line_number=first_line + i, length=tokens.numel(), limit=limit)
                if too_long == "error":
                    raise ValueError(too_long_message(**where) + "; pass too_long='skip' or 'truncate'")
                text = apply_too_long_policy(text, **where, truncate=too_long == "truncate",
                                             skip=too_long == "skip")
                tokens = None if text is None else self._binarize(text)
            encoded.append(tokens)
        return encoded

    def _binarize(self, text: str):
        return self.src_dict.encode_line(text, add_if_not_exist=False).long()

    def translate_with_stats(self, lines: Sequence[str], *, first_line: int = 1, too_long: str = "error",
                             progress=None, beam: int = 5, batch_size: Optional[int] = None,
                             max_tokens: Optional[int] = None, **search) -> Tuple[List[str], TranslationStats]:
        """:meth:`translate` that also returns its :class:`TranslationStats` (the seconds from
        encoding the lines to the last string), numbering lines from ``first_line`` in messages
        and advancing ``progress`` (a tqdm bar, or None) by each batch's sentences."""
        from .search import SearchOptions

        options = SearchOptions(beam=beam, **search)
        start = time.perf_counter()
        sources = self.encode(lines, first_line=first_line, too_long=too_long)
        kept = [i for i, tokens in enumerate(sources) if tokens is not None]
        outputs = [""] * len(lines)
        stats = TranslationStats(sentences=len(kept))
        batches = [[kept[j] for j in batch] for batch in
                   make_batches([sources[i].numel() for i in kept], batch_size=batch_size, max_tokens=max_tokens)]
        for indices, (hypotheses, tokens) in zip(batches, self._translate_batches(
                [[sources[i] for i in indices] for indices in batches], options,
                describe=lambda b: f"the batch of input line {first_line + min(batches[b])}")):
            for i, hypothesis in zip(indices, hypotheses):
                outputs[i] = hypothesis
            stats.tokens += tokens
            if progress is not None:
                progress.update(len(indices))
        stats.seconds = time.perf_counter() - start
        return outputs, stats

    def _translate_batches(self, batches: List[list], options, describe) -> Iterator[Tuple[List[str], int]]:
        """:meth:`_translate_batch` of each batch, in order: here, or in ``self.workers`` worker
        processes (``describe(i)`` names batch ``i`` if its worker dies)."""
        if self.workers == 1 or not batches:
            yield from (self._translate_batch(sources, options) for sources in batches)
            return
        from .workers import map_in_workers

        # a task is a batch's index: the workers inherit `batches` (and the traced step, recorded
        # while loading) when they are forked, so no tensor is sent to them (torch would move each
        # into shared memory)
        yield from map_in_workers(lambda b: self._translate_batch(batches[b], options), range(len(batches)),
                                  workers=self.workers, describe=describe)

    def _translate_batch(self, sources: list, options) -> Tuple[List[str], int]:
        """Translate source tensors (one batch); returns the strings and the generated tokens."""
        import torch
        from fairseq.data import data_utils

        from .search import beam_search

        src_tokens = data_utils.collate_tokens(sources, self.src_dict.pad(), self.src_dict.eos(),
                                               left_pad=self.left_pad_source).to(self.device)
        src_lengths = torch.tensor([s.numel() for s in sources], device=self.device)
        vocabulary = None if self.shortlist is None else self.shortlist.vocabulary(src_tokens)
        hypotheses = beam_search(self.runner, src_tokens, src_lengths, options, vocabulary=vocabulary,
                                 native=self.native == "yes")
        token_lists = hypotheses.as_lists()
        strings = [self.decode_fn(self.tgt_dict.string(tokens, self.remove_bpe,
                                                       extra_symbols_to_ignore={self.tgt_dict.eos()}))
                   for tokens in token_lists]
        return [s.replace("\n", " ") for s in strings], sum(len(t) + 1 for t in token_lists)
