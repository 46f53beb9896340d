"""Data for the benchmarks: data-bins (all built by ``fairseq-preprocess`` through
:func:`fairseq_lrn.tools.data_bin.build_data_bin`, reused when already built) and the fixed
batches every system is timed on."""

import math
import os
from typing import Dict, List

import torch

from fairseq_lrn.tools.data_bin import build_data_bin, corpus_prefixes

SRC, TGT = "src", "tgt"


# ----------------------------------------------------------------------------- data-bins

def write_synthetic_corpus(folder: str, vocab: int, sizes: Dict[str, int], median_len: float,
                           seed: int = 0) -> str:
    """Random sentences for speed measurements (not for quality), as text files
    ``{split}.src`` / ``{split}.tgt`` of tokens ``w{k}``, and their dictionary ``dict.txt``.

    Tokens follow a Zipf-Mandelbrot law over ``vocab`` types (like BPE units); source lengths
    are log-normal around ``median_len`` (sigma 0.5, clipped to [2, 4 * median]) and each
    target is 0.8-1.2x its source. The dictionary lists all ``vocab`` types (fairseq's 4
    specials included), ``w{k}`` at id 4 + k whether or not the sample draws it; its counts only
    order it. Returns the dictionary's path."""
    import numpy as np

    nspecial = 4  # fairseq Dictionary: <s> <pad> </s> <unk>
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_types = max(vocab - nspecial, 1)
    weights = 1.0 / (np.arange(n_types) + 2.7)
    probs = weights / weights.sum()
    words = np.array([f"w{k}" for k in range(n_types)])
    dict_path = os.path.join(folder, "dict.txt")
    with open(dict_path, "w", encoding="utf-8") as f:
        f.writelines(f"{w} {int(1e6 * p) + 1}\n" for w, p in zip(words, probs))
    max_len = int(4 * median_len)
    for split, n in sizes.items():
        src_len = np.clip(np.round(rng.lognormal(math.log(median_len), 0.5, n)), 2, max_len).astype(int)
        tgt_len = np.clip(np.round(src_len * rng.uniform(0.8, 1.2, n)), 2, max_len).astype(int)
        for lang, lengths in ((SRC, src_len), (TGT, tgt_len)):
            with open(os.path.join(folder, f"{split}.{lang}"), "w", encoding="utf-8") as f:
                f.writelines(" ".join(words[rng.choice(n_types, size=L, p=probs)]) + "\n" for L in lengths)
    return dict_path


def synthetic_bin(work: str, vocab: int, sizes: Dict[str, int], median_len: float, seed: int = 0) -> str:
    """:func:`write_synthetic_corpus` binarized into ``work`` with one dictionary for source and
    target (every system may tie all embeddings). Named by its statistics, so every size with the
    same ones (``tiny`` and ``transformer-tiny``) shares one data-bin in a ``--work-dir``."""
    name = f"synthetic-v{vocab}-m{median_len:g}-" + "-".join(f"{k}{n}" for k, n in sizes.items()) + f"-s{seed}"
    dest = os.path.join(work, name)
    if os.path.isdir(dest):
        return dest
    corpus = dest + "-text"
    dict_path = write_synthetic_corpus(corpus, vocab, sizes, median_len, seed=seed)
    return build_data_bin(dest, **corpus_prefixes(corpus, list(sizes)), joined_dictionary=True,
                          extra_args=["--srcdict", dict_path], reuse=True, in_process=True)


def toy_bin(work: str, train_size: int = 6000, test_size: int = 200, seed: int = 0,
            joined: bool = False) -> str:
    """The demo's toy reordering task (``fairseq_lrn.toy_data``) as a data-bin in ``work``."""
    from fairseq_lrn.toy_data import write_corpus

    dest = os.path.join(work, f"toy-reordering-n{train_size}-{test_size}-s{seed}" + ("-joined" if joined else ""))
    if os.path.isdir(dest):
        return dest
    corpus = os.path.join(work, f"toy-corpus-n{train_size}-{test_size}-s{seed}")
    write_corpus(corpus, "reordering", {"train": train_size, "valid": 200, "test": test_size}, seed=seed)
    return build_data_bin(dest, **corpus_prefixes(corpus), joined_dictionary=joined, reuse=True, in_process=True)


def dictionaries_joined(data_bin: str, src: str = SRC, tgt: str = TGT) -> bool:
    """True when the data-bin's source and target dictionaries are identical."""
    def read(lang):
        with open(os.path.join(data_bin, f"dict.{lang}.txt"), encoding="utf-8") as f:
            return [line.split()[0] for line in f if line.strip()]
    try:
        return read(src) == read(tgt)
    except OSError:
        return False


def infer_langs(data_bin: str, split: str = "train"):
    """(source, target) of a data-bin's ``{split}.{src}-{tgt}.{lang}.idx`` files, or (None, None)."""
    import glob
    import re

    for path in sorted(glob.glob(os.path.join(data_bin, f"{split}.*-*.*.idx"))):
        m = re.match(rf"{split}\.([^.-]+)-([^.-]+)\.([^.]+)\.idx$", os.path.basename(path))
        if m and m.group(3) == m.group(1):
            return m.group(1), m.group(2)
    return None, None


# ----------------------------------------------------------------------------- batches

def training_batches(task, max_tokens: int, count: int, seed: int = 1, split: str = "train") -> List[dict]:
    """The first ``count`` batches (max_tokens each, fairseq's length bucketing, shuffled
    with ``seed``) of ``split``: collected once, reused for every system."""
    itr = task.get_batch_iterator(dataset=task.dataset(split), max_tokens=max_tokens,
                                  max_positions=None, ignore_invalid_inputs=True, seed=seed,
                                  num_workers=0, epoch=1).next_epoch_itr(shuffle=True)
    batches = []
    for sample in itr:
        batches.append(sample)
        if len(batches) == count:
            break
    if len(batches) < count:
        batches = [batches[k % len(batches)] for k in range(count)]
    return batches


def generation_batches(task, n_sentences: int, batch_size: int, seed: int = 0,
                       split: str = "test"):
    """Fixed test sentences for timing generation, and each batch's forced output length
    (its longest reference, without EOS).

    Batch size 1: ``n_sentences`` drawn at random (seeded). Larger batches: the
    ``n_sentences`` of typical length, i.e. the middle of the split sorted by source length,
    cut into batches of ``batch_size``, as fairseq-generate's length-sorted batches are."""
    dataset = task.dataset(split)
    n = min(n_sentences, len(dataset))
    if batch_size == 1:
        g = torch.Generator().manual_seed(seed)
        ids = torch.randperm(len(dataset), generator=g)[:n].tolist()
    else:
        order = sorted(range(len(dataset)), key=lambda i: (int(dataset.src_sizes[i]), i))
        start = (len(order) - n) // 2
        ids = order[start:start + n]
    ids.sort(key=lambda i: (int(dataset.src_sizes[i]), i))
    batches, lengths = [], []
    for k in range(0, n, batch_size):
        chunk = ids[k:k + batch_size]
        batches.append(dataset.collater([dataset[i] for i in chunk]))
        lengths.append(max(int(dataset.tgt_sizes[i]) - 1 for i in chunk))  # sizes include EOS
    return batches, lengths
