"""``fairseq-lrn-translate`` (= ``python -m fairseq_lrn.translate``): translate a file fast with a
trained ``lrn`` or ``transformer_lrn`` checkpoint.

    fairseq-lrn-translate DATA --path CKPT [--source-lang S --target-lang T] [--beam 5]
        [--batch-size N] [--max-tokens N] [--max-len-a A] [--max-len-b B] [--min-len N]
        [--lenpen X] [--unkpen X] [--remove-bpe [SYMBOL]] [--threads N] [--workers N]
        [--quantize {auto,none,int8}] [--step {auto,traced,eager}] [--native {auto,yes,no}]
        [--shortlist FILE]
        [--input FILE] [--tokenizer moses] [--bpe subword_nmt|sentencepiece] [--bpe-codes F]
        [--sentencepiece-model F] [--cpu | --device cpu|cuda] < source.txt > translations.txt

The flags mean what they mean in fairseq-interactive. Exactly one line goes to stdout per input
line, in input order. Bad input is handled as this project's fairseq-interactive handles it
(:mod:`fairseq_lrn.fairseq_compat.interactive_input`, same messages): bytes that are not UTF-8
become U+FFFD with a warning; a line longer than the model accepts is refused (exit code 1,
before anything of its buffer is written), or with ``--skip-invalid-size-inputs-valid-test``
gives an empty output line, or with ``--truncate-source`` is cut; an empty line is translated
as fairseq translates it. The last line on stderr is the summary::

    fairseq-lrn-translate: 1266 sentences, 23456 tokens in 12.34 s (102.6 sentences/s)

(tokens: generated target tokens, each sentence's ``</s>`` included as fairseq-generate counts
them; seconds: translating, without loading the model or waiting for input).
"""

import argparse
import gc
import io
import logging
import sys
from typing import Iterator, List, Optional, TextIO

from .quantize import DEFAULT_QUANTIZE, QUANTIZE_MODES
from .translator import NATIVE_MODES, STEP_MODES
from .text_codecs import BPES, TOKENIZERS

PROG = "fairseq-lrn-translate"
#: Input lines read, sorted and translated at a time (and checked before any of them is written).
DEFAULT_BUFFER_SIZE = 100_000
#: Inputs of at least this many lines get a progress bar on stderr (unless --no-progress-bar).
PROGRESS_MIN_LINES = 1000

logger = logging.getLogger(PROG)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Translate with a trained lrn / transformer_lrn checkpoint: batched beam "
                               "search on the CPU (or CUDA), same translations as fairseq-generate in fp32.")
    add = parser.add_argument
    add("data", metavar="DATA", help="the data folder with the dictionaries (dict.SRC.txt, dict.TGT.txt)")
    add("--path", required=True, help="the checkpoint (.pt) of an lrn or transformer_lrn model")
    add("-s", "--source-lang", help="source language (default: inferred from DATA)")
    add("-t", "--target-lang", help="target language (default: inferred from DATA)")
    add("--input", default="-", help="file to translate, one sentence a line (default: - = stdin)")
    search = parser.add_argument_group("search (as in fairseq-generate)")
    search.add_argument("--beam", type=int, default=5, help="beam size (1: greedy)")
    search.add_argument("--batch-size", type=int,
                        help="sentences per batch (default 32 when --max-tokens is not given either)")
    search.add_argument("--max-tokens", type=int, help="padded source tokens per batch")
    search.add_argument("--max-len-a", type=float, default=0,
                        help="maximum output length a*x+b, x = source length (with </s>)")
    search.add_argument("--max-len-b", type=int, default=200, help="see --max-len-a")
    search.add_argument("--min-len", type=int, default=1, help="minimum output length (</s> not counted)")
    search.add_argument("--lenpen", type=float, default=1, help="length penalty: score / length**lenpen")
    search.add_argument("--unkpen", type=float, default=0, help="subtracted from <unk>'s log-probability")
    text = parser.add_argument_group("text in and out")
    text.add_argument("--remove-bpe", "--post-process", nargs="?", const="subword_nmt", default=None,
                      metavar="SYMBOL", help="remove BPE from the output (as fairseq: subword_nmt when "
                                             "given alone, sentencepiece, or a separator like '@@ ')")
    text.add_argument("--tokenizer", choices=TOKENIZERS, help="tokenize the input / detokenize the output")
    text.add_argument("--bpe", choices=BPES, help="apply BPE to the input / undo it on the output")
    text.add_argument("--bpe-codes", help="subword_nmt codes file (with --bpe subword_nmt)")
    text.add_argument("--sentencepiece-model", help="sentencepiece model (with --bpe sentencepiece)")
    length = parser.add_argument_group("too-long lines (as in fairseq-interactive; default: refuse)")
    length.add_argument("--max-source-positions", type=int,
                        help="the longest source accepted, in tokens with </s> (default: the model's)")
    length.add_argument("--skip-invalid-size-inputs-valid-test", action="store_true",
                        help="an empty output line for a too-long input line, with a warning")
    length.add_argument("--truncate-source", action="store_true",
                        help="translate the first tokens of a too-long line, with a warning")
    speed = parser.add_argument_group("speed")
    speed.add_argument("--threads", type=int,
                       help="CPU threads (torch.set_num_threads; default: torch's; 1 with --workers)")
    speed.add_argument("--workers", type=int, default=1,
                       help="batches translated at once, each in a one-thread worker process (CPU, Linux; as "
                            "CTranslate2's inter_threads with intra_threads 1): on N cores, --workers N is usually "
                            "the fastest (default: 1)")
    speed.add_argument("--quantize", choices=QUANTIZE_MODES, default=DEFAULT_QUANTIZE,
                       help=f"int8: dynamic int8 quantization of the linear layers and the output "
                            f"projection (CPU only); auto: int8 on the CPU for the model families whose int8 "
                            f"BLEU was measured within 0.3 of fp32 (transformer_lrn, lrn), none otherwise "
                            f"(default: {DEFAULT_QUANTIZE})")
    speed.add_argument("--step", choices=STEP_MODES, default="auto",
                       help="traced: run the decoder step as a TorchScript trace (the same operations without "
                            "the Python between them; the same translations); eager: as Python; auto: traced on "
                            "the CPU unless the decoder has positional embeddings (default: auto)")
    speed.add_argument("--native", choices=NATIVE_MODES, default="auto",
                       help="yes: run each search step's candidate selection (log-softmax, masks and top-k in one "
                            "pass over the logits) and bookkeeping, and int8 mode's linear layers, as compiled C++ "
                            "(built with the system's compiler at the first run, then cached); the same translations "
                            "up to float rounding; no: as PyTorch operations; auto: compiled on the CPU where it "
                            "builds (default: auto)")
    speed.add_argument("--shortlist", metavar="FILE",
                       help="a lexical shortlist (scripts/build_shortlist.py): each batch's output layer scores "
                            "only the target words its source words list (plus the frequent ones); faster, "
                            "translations may differ (its BLEU cost is in BENCHMARKS.md)")
    device = speed.add_mutually_exclusive_group()
    device.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run (default: cpu)")
    device.add_argument("--cpu", dest="device", action="store_const", const="cpu", help="same as --device cpu")
    speed.add_argument("--buffer-size", type=int, default=DEFAULT_BUFFER_SIZE,
                       help="input lines read, sorted by length and translated at a time")
    parser.add_argument("--no-progress-bar", action="store_true", help="no progress bar on stderr")
    return parser


def open_input(path: str) -> TextIO:
    """The input as text: UTF-8, bytes that are not UTF-8 kept as lone surrogates (replaced,
    with a warning naming the line, by :func:`read_chunks`); universal newlines, as fairseq."""
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape")
    return open(path, encoding="utf-8", errors="surrogateescape")


def read_chunks(stream: TextIO, size: int) -> Iterator[List[str]]:
    """Lists of at most ``size`` input lines, stripped as fairseq-interactive strips them, with
    bytes that were not UTF-8 replaced by U+FFFD (fairseq-lrn's warning, naming the line)."""
    from ..fairseq_compat.interactive_input import replace_undecodable

    chunk: List[str] = []
    number = 0
    for line in stream:
        number += 1
        chunk.append(replace_undecodable(line.strip(), number))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def summary_line(sentences: int, tokens: int, seconds: float) -> str:
    """The last line on stderr (see the module docstring)."""
    rate = sentences / seconds if seconds > 0 else 0.0
    return f"{PROG}: {sentences} sentences, {tokens} tokens in {seconds:.2f} s ({rate:.1f} sentences/s)"


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
                        level=logging.INFO, stream=sys.stderr)
    if args.buffer_size < 1:
        build_parser().error(f"--buffer-size must be >= 1, got {args.buffer_size}")
    if args.skip_invalid_size_inputs_valid_test and args.truncate_source:
        build_parser().error("--skip-invalid-size-inputs-valid-test and --truncate-source exclude each other")
    from ..errors import CheckpointError
    from .translator import Translator

    try:
        translator = Translator.from_checkpoint(
            args.path, args.data, source_lang=args.source_lang, target_lang=args.target_lang,
            quantize=args.quantize, threads=args.threads, device=args.device, tokenizer=args.tokenizer,
            bpe=args.bpe, bpe_codes=args.bpe_codes, sentencepiece_model=args.sentencepiece_model,
            remove_bpe=args.remove_bpe, max_source_positions=args.max_source_positions,
            shortlist=args.shortlist, workers=args.workers, step=args.step, native=args.native)
    except (CheckpointError, ValueError, OSError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    # What is loaded now (fairseq, torch, the model) lives until the end: out of the cycle
    # collector's generations, it is no longer walked by each full collection (2-4% fewer CPU
    # seconds for transformer_lrn at beam 5, BENCHMARKS.md), nor touched (and so copied) by the
    # collections of forked workers.
    gc.freeze()
    try:
        return _translate_input(translator, args)
    finally:
        gc.unfreeze()  # main() may be called in a longer-lived process


def _translate_input(translator, args) -> int:
    """Translate ``args.input`` (or stdin) to stdout with ``translator``: main()'s exit code."""
    from .translator import TranslationStats
    from .workers import WorkerDied

    policy = ("truncate" if args.truncate_source else "skip" if args.skip_invalid_size_inputs_valid_test
              else "refuse")
    search = dict(beam=args.beam, batch_size=args.batch_size, max_tokens=args.max_tokens,
                  max_len_a=args.max_len_a, max_len_b=args.max_len_b, min_len=args.min_len,
                  lenpen=args.lenpen, unkpen=args.unkpen)
    stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", errors="replace", newline="\n",
                              line_buffering=False)
    total = TranslationStats()
    progress = None
    first_line = 1
    try:
        with open_input(args.input) as stream:
            for chunk in read_chunks(stream, args.buffer_size):
                if progress is None and not args.no_progress_bar and len(chunk) >= PROGRESS_MIN_LINES:
                    from tqdm import tqdm

                    progress = tqdm(unit=" sentences", file=sys.stderr, mininterval=1.0, desc=PROG)
                outputs, stats = translator.translate_with_stats(chunk, first_line=first_line, too_long=policy,
                                                                 progress=progress, **search)
                stdout.write("".join(line + "\n" for line in outputs))
                stdout.flush()
                total.add(stats)
                first_line += len(chunk)
    except (ValueError, OSError, WorkerDied) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    except SystemExit as refused:  # a too-long line, refused with fairseq-interactive's message
        return refused.code
    finally:
        if progress is not None:
            progress.close()
        stdout.detach()
    print(summary_line(total.sentences, total.tokens, total.seconds), file=sys.stderr, flush=True)
    return 0
