"""The runtimes of the decoding benchmark (:mod:`.decoding_speed`). Each decodes the test set's
BPE'd source lines with one checkpoint and one search (a :class:`Cell`) and returns the
hypotheses (BPE removed, still Moses-tokenized) and the decoding seconds without model loading:

* CTranslate2, through its Python API on the float32 model ``ct2-fairseq-converter`` made of the
  checkpoint (converted once; int8 quantized at loading; the timer runs around ``translate_batch``
  only; the Translator is loaded and warmed before); with a shortlist, CTranslate2's own form of
  it: the same lists as its vocabulary map (``vmap.txt``, ``translate_batch(use_vmap=True)``);
* ``fairseq-generate`` on the data-bin's test split: its own "Translated N sentences ... in X s";
* ``fairseq-lrn-translate`` (``python -m fairseq_lrn.translate``): its summary line.

CTranslate2 is imported inside the functions (an optional extra: ``pip install .[bench]``).
"""

import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

from ..errors import GenerateOutputError
from ..tools import user_dir
from ..tools.generate_output import decoding_seconds, hypotheses_in_order, parse_generate_output
from ..tools.run import run_fairseq
from ..tools.scoring import remove_subwords

#: fairseq-lrn-translate's summary, the last line on its stderr.
FAST_SUMMARY = re.compile(r"^fairseq-lrn-translate: (\d+) sentences, (\d+) tokens in ([\d.]+) s")
#: fairseq's default maximum output length (``--max-len-a 0 --max-len-b 200``), given to CTranslate2 too.
MAX_LEN = 200


class DecodeError(RuntimeError):
    """A runtime failed or returned other than one hypothesis per input line."""


@dataclass(frozen=True)
class Cell:
    """One search setting: beam (1 = greedy), sentences per batch, CPU threads, and ``length``:
    None for the test set decoded freely (BLEU is scored), else every hypothesis forced to
    exactly ``length`` tokens (min = max decoding length; speed alone). ``workers`` > 1: that many
    batches at once, each on ``threads`` threads (CTranslate2's ``inter_threads`` x
    ``intra_threads``; the fast command's ``--workers``; fairseq-generate, which runs one batch
    at a time, gets ``workers x threads`` threads)."""

    beam: int
    batch_size: int
    threads: int
    length: Optional[int] = None
    workers: int = 1

    @property
    def key(self) -> str:
        search = "greedy" if self.beam == 1 else f"beam{self.beam}"
        cores = f"t{self.threads}" + (f"_w{self.workers}" if self.workers > 1 else "")
        return f"{search}_b{self.batch_size}_{cores}_" + ("test" if self.length is None else f"L{self.length}")


@dataclass
class TestSet:
    """The test set every runtime decodes: a data-bin (dictionaries and the binarized ``test``
    split, for fairseq-generate), its languages, and the same sentences as BPE'd text lines."""

    data_bin: str
    source_lang: str
    target_lang: str
    source_file: str
    lines: List[str]


@dataclass
class Decoded:
    hypotheses: List[str]
    seconds: float


def _threads_env(threads: int) -> Dict[str, str]:
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def _length_flags(cell: Cell) -> List[str]:
    """fairseq's flags of the cell's output length (forced: ``--min-len L --max-len-a 0 --max-len-b L``)."""
    if cell.length is None:
        return ["--max-len-a", "0", "--max-len-b", str(MAX_LEN)]
    return ["--min-len", str(cell.length), "--max-len-a", "0", "--max-len-b", str(cell.length)]


def _checked(hyps: List[str], test: TestSet, what: str) -> List[str]:
    if len(hyps) != len(test.lines):
        raise DecodeError(f"{what} returned {len(hyps)} hypotheses for {len(test.lines)} lines of {test.source_file}")
    return hyps


# ----------------------------------------------------------------------------- fairseq-generate

def fairseq_generate(checkpoint: str, test: TestSet, cell: Cell) -> Decoded:
    """``fairseq-generate`` on the data-bin's test split (``--remove-bpe``, CPU, the cell's
    threads x workers through OMP/MKL: it runs one batch at a time); seconds from its
    "Translated ... in X s" line."""
    argv = [test.data_bin, "--user-dir", user_dir(), "--path", checkpoint, "--gen-subset", "test",
            "--source-lang", test.source_lang, "--target-lang", test.target_lang, "--cpu", "--remove-bpe",
            "--beam", cell.beam, "--nbest", 1, "--batch-size", cell.batch_size, *_length_flags(cell)]
    proc = run_fairseq("generate", *argv, capture=True, check=False, env=_threads_env(cell.threads * cell.workers))
    if proc.returncode != 0:
        raise DecodeError(f"fairseq-generate exited with {proc.returncode}:\n{proc.stderr[-2000:]}")
    seconds = decoding_seconds(proc.stdout + proc.stderr)
    if seconds is None:
        raise DecodeError("fairseq-generate printed no 'Translated N sentences ... in X s' line")
    try:
        hyps, _ = hypotheses_in_order(parse_generate_output(proc.stdout), what="fairseq-generate's output")
    except GenerateOutputError as exc:
        raise DecodeError(str(exc)) from None
    return Decoded(_checked(hyps, test, "fairseq-generate"), seconds)


# ----------------------------------------------------------------------------- fairseq-lrn-translate

def fast_command_missing() -> Optional[str]:
    """None when ``python -m fairseq_lrn.translate`` can run here, else why not."""
    if importlib.util.find_spec("fairseq_lrn.translate") is None:
        return ("fairseq_lrn.translate (the fast translation command, fairseq-lrn-translate) is not "
                "importable in this checkout")
    return None


def fast_translate(checkpoint: str, test: TestSet, cell: Cell, quantize: str,
                   shortlist: Optional[str] = None, step: str = "auto", native: str = "auto") -> Decoded:
    """``python -m fairseq_lrn.translate`` on the BPE'd source file (``--remove-bpe``, CPU,
    ``--threads``, ``--workers``, ``--quantize``, ``--step``, ``--native``, ``--shortlist`` when given); seconds
    from its summary line (decoding without loading)."""
    cmd = [sys.executable, "-m", "fairseq_lrn.translate", test.data_bin, "--path", checkpoint,
           "--source-lang", test.source_lang, "--target-lang", test.target_lang, "--input", test.source_file,
           "--beam", str(cell.beam), "--batch-size", str(cell.batch_size), "--threads", str(cell.threads),
           "--workers", str(cell.workers), "--quantize", quantize, "--step", step, "--native", native, "--remove-bpe", "--cpu",
           *_length_flags(cell),
           *(["--shortlist", shortlist] if shortlist else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **_threads_env(cell.threads)})
    if proc.returncode != 0:
        raise DecodeError(f"fairseq-lrn-translate exited with {proc.returncode}:\n{proc.stderr[-2000:]}")
    last = proc.stderr.strip().splitlines()[-1:] or [""]
    m = FAST_SUMMARY.match(last[0])
    if m is None:
        raise DecodeError(f"fairseq-lrn-translate's last stderr line is not its summary: {last[0]!r}")
    hyps = proc.stdout.split("\n")[:-1] if proc.stdout.endswith("\n") else proc.stdout.split("\n")
    return Decoded(_checked(hyps, test, "fairseq-lrn-translate"), float(m[3]))


# ----------------------------------------------------------------------------- CTranslate2

def ctranslate2_missing() -> Optional[str]:
    """None when CTranslate2 is installed, else why not."""
    if importlib.util.find_spec("ctranslate2") is None:
        return "CTranslate2 is not installed (pip install ctranslate2, or fairseq-lrn[bench])"
    return None


def ct2_convert(checkpoint: str, test: TestSet, work: str) -> str:
    """The float32 CTranslate2 model of ``checkpoint`` (every compute type loads it), made once in
    ``work`` (named by the checkpoint's path, size and time) by ``ct2-fairseq-converter
    --quantization float32 --unsafe_deserialization`` in a subprocess: the converter unpickles the
    checkpoint, so only checkpoints the user trained or trusts may be given."""
    st = os.stat(checkpoint)
    key = hashlib.sha1(repr((os.path.abspath(checkpoint), st.st_size, st.st_mtime_ns)).encode()).hexdigest()[:12]
    out = os.path.join(work, f"ct2-float32-{key}")
    if os.path.isfile(os.path.join(out, "model.bin")):
        return out
    argv = ["ct2-fairseq-converter", "--model_path", checkpoint, "--data_dir", test.data_bin,
            "--source_lang", test.source_lang, "--target_lang", test.target_lang, "--user_dir", user_dir(),
            "--output_dir", out + ".tmp", "--quantization", "float32", "--unsafe_deserialization", "--force"]
    proc = subprocess.run([sys.executable, "-c", "import sys; from ctranslate2.converters.fairseq import main; "
                           "sys.argv = sys.argv[1:]; main()", *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        raise DecodeError(f"ct2-fairseq-converter failed on {checkpoint}:\n{proc.stderr[-2000:]}")
    os.replace(out + ".tmp", out)
    return out


def ct2_vocabulary_map(model_dir: str, shortlist: str, test: TestSet) -> str:
    """CTranslate2's model ``model_dir`` with the fairseq-lrn ``shortlist`` file as its vocabulary
    map, made once beside it: a directory of links to the model's files and ``vmap.txt``, the
    same lists in CTranslate2's format (``SOURCE<TAB>TARGETS`` per source word; the words every
    batch gets under the empty source, as ``frequent`` in the shortlist). The shortlist is read
    against the data-bin's dictionaries first (an error names a word of another data-bin)."""
    from fairseq.data import Dictionary

    from ..translate.shortlist import load_shortlist

    st = os.stat(shortlist)
    key = hashlib.sha1(repr((os.path.abspath(shortlist), st.st_size, st.st_mtime_ns)).encode()).hexdigest()[:12]
    out = f"{model_dir}-vmap-{key}"
    if os.path.isfile(os.path.join(out, "vmap.txt")):
        return out
    dicts = [Dictionary.load(os.path.join(test.data_bin, f"dict.{lang}.txt"))
             for lang in (test.source_lang, test.target_lang)]
    lists = load_shortlist(shortlist, *dicts)
    os.makedirs(out + ".tmp", exist_ok=True)
    for name in os.listdir(model_dir):
        link = os.path.join(out + ".tmp", name)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(os.path.join(model_dir, name)), link)
    with open(os.path.join(out + ".tmp", "vmap.txt"), "w", encoding="utf-8") as f:
        f.write(vocabulary_map_text(lists, *dicts))
    os.replace(out + ".tmp", out)
    return out


def vocabulary_map_text(shortlist, src_dict, tgt_dict) -> str:
    """A :class:`~fairseq_lrn.translate.shortlist.Shortlist`'s lists in CTranslate2's vocabulary
    map format: ``<TAB>WORDS`` (the words every batch gets), then ``SOURCE<TAB>TARGETS`` for each
    source word with a list."""
    always, lists = shortlist.word_lists(src_dict, tgt_dict)
    lines = ["\t" + " ".join(always), *(f"{source}\t{' '.join(words)}" for source, words in lists)]
    return "\n".join(lines) + "\n"


class CT2Translators:
    """``ctranslate2.Translator`` per (model, cell's threads and workers), loaded with
    ``compute_type`` (int8: the float32 model's weights quantized at loading, as
    ``--quantization int8`` would store them) and warmed (one sentence decoded) before any timing:
    ``inter_threads`` = the cell's workers, ``intra_threads`` = its threads."""

    def __init__(self, compute_type: str = "default"):
        self.compute_type, self.loaded = compute_type, {}

    def get(self, model_dir: str, cell: Cell, first_line: str):
        key = (model_dir, cell.threads, cell.workers)
        if key not in self.loaded:
            import ctranslate2

            translator = ctranslate2.Translator(model_dir, device="cpu", compute_type=self.compute_type,
                                                inter_threads=cell.workers, intra_threads=cell.threads)
            translator.translate_batch([first_line.split()] * cell.workers, beam_size=1, max_decoding_length=8,
                                       max_batch_size=1)
            self.loaded[key] = translator
        return self.loaded[key]


def ct2_translate(translators: CT2Translators, model_dir: str, test: TestSet, cell: Cell,
                  use_vmap: bool = False) -> Decoded:
    """``translate_batch`` over the BPE'd tokens (sorted by length and cut into batches of the
    cell's size by CTranslate2 itself, run ``inter_threads`` at a time), timed alone; the first
    hypothesis of each line, BPE removed. ``use_vmap``: with the model's vocabulary map
    (:func:`ct2_vocabulary_map`)."""
    translator = translators.get(model_dir, cell, test.lines[0])
    tokens = [line.split() for line in test.lines]
    lengths = dict(min_decoding_length=0, max_decoding_length=MAX_LEN) if cell.length is None else \
        dict(min_decoding_length=cell.length, max_decoding_length=cell.length)
    start = time.perf_counter()
    results = translator.translate_batch(tokens, beam_size=cell.beam, max_batch_size=cell.batch_size,
                                         length_penalty=1.0, use_vmap=use_vmap, **lengths)
    seconds = time.perf_counter() - start
    hyps = [remove_subwords(" ".join(r.hypotheses[0]), "subword_nmt") for r in results]
    return Decoded(_checked(hyps, test, "CTranslate2"), seconds)
