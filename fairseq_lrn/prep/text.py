"""Text steps of a corpus preparation (the WMT14 one, the quality race's, the LM benchmark's): Moses
normalisation and tokenization, cleaning, subwords (subword-nmt BPE, sentencepiece)."""

import multiprocessing
from itertools import islice
from pathlib import Path

from ..atomic_files import atomic_outputs

from .io import PrepError, open_text, read_lines, write_lines


class MosesPreprocessor:
    """The Moses pipeline in Python: normalize-punctuation, remove-non-printing-char, tokenizer -a."""

    def __init__(self, lang):
        import regex
        from sacremoses import MosesPunctNormalizer, MosesTokenizer

        self._non_printing, self._spaces = regex.compile(r"\p{C}"), regex.compile(r"\s+")

        self.normalizer = MosesPunctNormalizer(lang=lang)
        self.tokenizer = MosesTokenizer(lang=lang)

    def __call__(self, line):
        line = self._non_printing.sub(" ", self.normalizer.normalize(line))
        # Any other line or paragraph separator would split the line in later tools.
        line = self._spaces.sub(" ", line).strip()
        return self.tokenizer.tokenize(line, aggressive_dash_splits=True, return_str=True, escape=True)


class BpeSegmenter:
    """Applies subword-nmt BPE codes ("@@ " continuation marks)."""

    def __init__(self, codes_path):
        from subword_nmt.apply_bpe import BPE

        with open(codes_path, encoding="utf-8") as f:
            self.bpe = BPE(f)

    def __call__(self, line):
        return self.bpe.segment(line)


class SpmSegmenter:
    """Applies a sentencepiece model, pieces separated by spaces."""

    def __init__(self, model_path):
        import sentencepiece

        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(model_path))

    def __call__(self, line):
        return " ".join(self.sp.encode(line, out_type=str))


_worker_fn = None


def _init_worker(fn):
    global _worker_fn
    _worker_fn = fn


def _call_worker(line):
    return _worker_fn(line)


def parallel_map(fn, lines, workers, total, desc):
    """Yield fn(line) for each line, in order, on `workers` processes, with a progress bar."""
    from tqdm import tqdm

    lines = iter(lines)
    with tqdm(total=total, unit=" lines", desc=desc, mininterval=2) as bar:
        if workers <= 1:
            for line in lines:
                yield fn(line)
                bar.update()
            return
        # Blocks bound the memory: Pool.imap would read the whole input ahead.
        with multiprocessing.Pool(workers, initializer=_init_worker, initargs=(fn,)) as pool:
            while block := list(islice(lines, workers * 10000)):
                yield from pool.map(_call_worker, block, chunksize=1000)
                bar.update(len(block))


def transform_file(fn, inputs, output, workers, total, desc):
    """Write fn(line) for every line of `inputs` (concatenated) to `output`, atomically."""
    with atomic_outputs(output) as [tmp]:
        write_lines(tmp, parallel_map(fn, read_lines(*inputs), workers, total, desc))


def clean_corpus(src_in, tgt_in, src_out, tgt_out, min_len=1, max_len=250, ratio=1.5):
    """Keep the pairs whose sides have min_len..max_len tokens and a length ratio <= ratio.

    The rules of Moses' clean-corpus-n.perl. Returns (kept, dropped).
    """
    kept = dropped = 0
    with atomic_outputs(src_out, tgt_out) as [src_tmp, tgt_tmp], \
            open_text(src_tmp, "w") as fs, open_text(tgt_tmp, "w") as ft:
        for src, tgt in zip(read_lines(src_in), read_lines(tgt_in), strict=True):
            n_src, n_tgt = len(src.split()), len(tgt.split())
            if (min_len <= n_src <= max_len and min_len <= n_tgt <= max_len
                    and n_src <= ratio * n_tgt and n_tgt <= ratio * n_src):
                fs.write(src + "\n")
                ft.write(tgt + "\n")
                kept += 1
            else:
                dropped += 1
    return kept, dropped


def learn_bpe(inputs, codes_path, merges):
    """Learn joint BPE codes with subword-nmt over all `inputs`."""
    from subword_nmt.learn_bpe import learn_bpe as subword_nmt_learn

    with atomic_outputs(codes_path) as [tmp], open(tmp, "w", encoding="utf-8") as out:
        subword_nmt_learn(read_lines(*inputs), out, merges)


def learn_spm(inputs, model_path, vocab_path, vocab_size, workers):
    """Train a joint sentencepiece (unigram) model over all `inputs`."""
    import sentencepiece

    with atomic_outputs(model_path, vocab_path) as [model_tmp, vocab_tmp]:
        prefix = model_path.with_name(model_path.stem + ".training")
        try:
            sentencepiece.SentencePieceTrainer.train(
                input=",".join(map(str, inputs)), model_prefix=str(prefix), vocab_size=vocab_size,
                character_coverage=1.0, num_threads=max(1, workers), minloglevel=1)
        except RuntimeError as exc:
            raise PrepError(f"sentencepiece training on {', '.join(map(str, inputs))} failed: {exc}") from exc
        Path(f"{prefix}.model").replace(model_tmp)
        Path(f"{prefix}.vocab").replace(vocab_tmp)
