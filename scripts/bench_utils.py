"""Building blocks of ``scripts/benchmark_models.py``: data-bins, fairseq systems built
in-process, timed training steps, timed generation, BLEU, peak memory.

Everything goes through fairseq's own machinery (options -> omegaconf config -> task ->
model / criterion -> :class:`fairseq.trainer.Trainer`, :class:`SequenceGenerator`), so a
"training step" here is exactly what ``fairseq-train`` runs per update.

Run as a script, this module is the memory probe: a fresh process that builds one system,
runs its training steps and prints its peak memory as JSON (see :func:`memory_probe`).
"""

import gc
import json
import logging
import math
import os
import platform
import resource
import statistics
import sys
import time
import warnings
from typing import Dict, List, Optional, Sequence

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)
USER_DIR = os.path.join(REPO, "fairseq_lrn")

# fairseq logs every step and option at INFO, and importing it sets the root logger to DEBUG;
# a benchmark's output should be its tables.
logging.getLogger("fairseq").setLevel(logging.WARNING)
import fairseq  # noqa: E402,F401

logging.getLogger().setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*pin_memory.*")
warnings.filterwarnings("ignore", category=FutureWarning, module="fairseq")
warnings.filterwarnings("ignore", category=UserWarning, module="hydra")
warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema")
warnings.filterwarnings("ignore", message=".*mismatched key_padding_mask.*")

SRC, TGT = "src", "tgt"


# ----------------------------------------------------------------------------- data-bins

def _write_split(dest: str, split: str, lang: str, sentences: Sequence[Sequence[int]],
                 vocab_size: int, eos: int) -> None:
    """Binarize id lists (eos appended) as fairseq-preprocess does: mmap indexed dataset."""
    from fairseq.data import indexed_dataset

    prefix = os.path.join(dest, f"{split}.{SRC}-{TGT}.{lang}")
    builder = indexed_dataset.make_builder(indexed_dataset.data_file_path(prefix), "mmap",
                                           vocab_size=vocab_size)
    for ids in sentences:
        builder.add_item(torch.IntTensor(list(ids) + [eos]))
    builder.finalize(indexed_dataset.index_file_path(prefix))


def make_synthetic_bin(dest: str, vocab: int, sizes: Dict[str, int], median_len: float,
                       seed: int = 0) -> str:
    """A data-bin of random sentences for speed measurements (not for quality).

    Tokens follow a Zipf-Mandelbrot law over ``vocab`` types (like BPE units); source lengths
    are log-normal around ``median_len`` (sigma 0.5, clipped to [2, 4 * median]) and each
    target is 0.8-1.2x its source. Source and target share one dictionary (written as both
    ``dict.src.txt`` and ``dict.tgt.txt``), so every system may tie all embeddings.
    """
    import numpy as np
    from fairseq.data import Dictionary

    if os.path.exists(os.path.join(dest, "done")):
        return dest
    os.makedirs(dest, exist_ok=True)
    rng = np.random.default_rng(seed)
    dictionary = Dictionary()
    n_types = max(vocab - dictionary.nspecial, 1)
    weights = 1.0 / (np.arange(n_types) + 2.7)
    probs = weights / weights.sum()
    for k in range(n_types):  # counts only order the dictionary; they are not used otherwise
        dictionary.add_symbol(f"w{k}", n=int(1e6 * probs[k]) + 1)
    first = dictionary.nspecial
    max_len = int(4 * median_len)
    for split, n in sizes.items():
        src_len = np.clip(np.round(rng.lognormal(math.log(median_len), 0.5, n)), 2, max_len).astype(int)
        tgt_len = np.clip(np.round(src_len * rng.uniform(0.8, 1.2, n)), 2, max_len).astype(int)
        for lang, lengths in ((SRC, src_len), (TGT, tgt_len)):
            sentences = [first + rng.choice(n_types, size=L, p=probs) for L in lengths]
            _write_split(dest, split, lang, sentences, len(dictionary), dictionary.eos())
    for lang in (SRC, TGT):
        dictionary.save(os.path.join(dest, f"dict.{lang}.txt"))
    open(os.path.join(dest, "done"), "w").close()
    return dest


def binarize_corpus(corpus: str, dest: str, splits: Sequence[str] = ("train", "valid", "test"),
                    joined: bool = False) -> str:
    """``{split}.src`` / ``{split}.tgt`` text files -> a data-bin (what fairseq-preprocess
    writes, without its subprocess): dictionaries from the training split, mmap datasets."""
    from fairseq.data import Dictionary

    if os.path.exists(os.path.join(dest, "done")):
        return dest
    os.makedirs(dest, exist_ok=True)

    def read(split, lang):
        with open(os.path.join(corpus, f"{split}.{lang}"), encoding="utf-8") as f:
            return [line.strip() for line in f]

    dicts = {}
    for lang in (SRC, TGT):
        d = Dictionary()
        for other in ((SRC, TGT) if joined else (lang,)):
            for line in read("train", other):
                for word in line.split():
                    d.add_symbol(word)
        d.finalize(padding_factor=8)
        dicts[lang] = d
    for lang in (SRC, TGT):
        d = dicts[lang]
        d.save(os.path.join(dest, f"dict.{lang}.txt"))
        for split in splits:
            ids = [d.encode_line(line, add_if_not_exist=False, append_eos=False).tolist()
                   for line in read(split, lang)]
            _write_split(dest, split, lang, ids, len(d), d.eos())
    open(os.path.join(dest, "done"), "w").close()
    return dest


def make_toy_bin(work: str, train_size: int = 6000, test_size: int = 200, seed: int = 0,
                 joined: bool = False) -> str:
    """The demo's toy reordering task (``fairseq_lrn.toy_data``) as a data-bin."""
    from fairseq_lrn.toy_data import write_corpus

    corpus = os.path.join(work, "toy-corpus")
    write_corpus(corpus, "reordering", {"train": train_size, "valid": 200, "test": test_size}, seed=seed)
    return binarize_corpus(corpus, os.path.join(work, "toy-bin" + ("-joined" if joined else "")),
                           joined=joined)


def dictionaries_joined(data_bin: str, src: str = SRC, tgt: str = TGT) -> bool:
    """True when the data-bin's source and target dictionaries are identical."""
    def read(lang):
        with open(os.path.join(data_bin, f"dict.{lang}.txt"), encoding="utf-8") as f:
            return [line.split()[0] for line in f if line.strip()]
    try:
        return read(src) == read(tgt)
    except OSError:
        return False


# ----------------------------------------------------------------------------- systems

def parse_fairseq_args(argv: List[str]):
    """fairseq-train's parser on ``argv`` -> (argparse Namespace, omegaconf config)."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import fairseq_lrn.models  # noqa: F401  registers the lrn architectures (see note below)

    # Note: fairseq's --user-dir import skips fairseq_lrn.models when the package was already
    # imported (as this script does), hence the explicit import above.
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, input_args=argv)
    return args, convert_namespace_to_omegaconf(args)


def setup_task(argv: List[str], splits: Sequence[str] = ("train", "test")):
    """The translation task of ``argv`` with ``splits`` loaded."""
    from fairseq import tasks

    _, cfg = parse_fairseq_args(argv)
    task = tasks.setup_task(cfg.task)
    for split in splits:
        task.load_dataset(split, combine=False, epoch=1)
    return task, cfg


def count_params(model: torch.nn.Module) -> int:
    """Distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


class System:
    """One fairseq model with its criterion and Trainer (optimizer built on the first step)."""

    def __init__(self, name: str, argv: List[str], note: str = ""):
        from fairseq import tasks, utils
        from fairseq.trainer import Trainer

        self.name, self.argv, self.note = name, argv, note
        _, self.cfg = parse_fairseq_args(argv)
        utils.set_torch_seed(self.cfg.common.seed)
        self.task = tasks.setup_task(self.cfg.task)
        self.model = self.task.build_model(self.cfg.model)
        self.criterion = self.task.build_criterion(self.cfg.criterion)
        self.params = count_params(self.model)
        self.trainer = Trainer(self.cfg, self.task, self.model, self.criterion)
        self.device = next(self.model.parameters()).device
        self.generators = {}

    def load_splits(self, splits: Sequence[str] = ("train", "test")):
        """The system's task with ``splits`` loaded (batches are drawn from it)."""
        for split in splits:
            if split not in self.task.datasets:
                self.task.load_dataset(split, combine=False, epoch=1)
        return self.task

    # -- training
    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def train_steps(self, batches: Sequence[dict]) -> List[float]:
        """One full fairseq update per batch (forward, backward, clip, Adam); seconds each."""
        times = []
        for sample in batches:
            self.sync()
            start = time.perf_counter()
            self.trainer.train_step([sample])
            self.sync()
            times.append(time.perf_counter() - start)
        return times

    # -- generation
    def generator(self, beam: int):
        """fairseq's SequenceGenerator (beam ``beam``; 1 = greedy), cached per beam."""
        if beam not in self.generators:
            from fairseq.sequence_generator import SequenceGenerator

            self.generators[beam] = SequenceGenerator([self.model], self.task.target_dictionary,
                                                      beam_size=beam)
        return self.generators[beam]

    def generate(self, batches: Sequence[dict], beam: int, forced_lengths: Optional[Sequence[int]] = None,
                 max_len_a: float = 1.5, max_len_b: int = 10) -> List[List[dict]]:
        """Run the generator over ``batches`` in eval mode under no_grad; returns the hypotheses.

        With ``forced_lengths`` every hypothesis of batch k is made exactly that many tokens
        long (min_len = max_len = L, then EOS): the same decoding work for every system,
        trained or not. Otherwise lengths are the model's own (max_len_a * src + max_len_b)."""
        from fairseq import utils

        gen = self.generator(beam)
        self.model.eval()
        outputs = []
        try:
            with torch.no_grad():
                for k, sample in enumerate(batches):
                    if forced_lengths is not None:
                        gen.max_len_a, gen.max_len_b, gen.min_len = 0, forced_lengths[k], forced_lengths[k]
                    else:
                        gen.max_len_a, gen.max_len_b, gen.min_len = max_len_a, max_len_b, 1
                    if self.device.type == "cuda":
                        sample = utils.move_to_cuda(sample)
                    outputs.append(gen.generate([self.model], sample))
        finally:
            self.model.train()
        self.sync()
        return outputs

    def time_generation(self, batches: Sequence[dict], beam: int, forced_lengths: Sequence[int]) -> float:
        """Sentences per second over ``batches`` (forced lengths; see :meth:`generate`)."""
        n = sum(int(b["nsentences"]) for b in batches)
        self.sync()
        start = time.perf_counter()
        self.generate(batches, beam, forced_lengths)
        return n / (time.perf_counter() - start)

    def close(self) -> None:
        del self.trainer, self.model, self.criterion, self.generators
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


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


def bleu_on_split(system: System, task, batch_size: int = 64, beam: int = 5,
                  max_sentences: Optional[int] = None, split: str = "test") -> float:
    """sacreBLEU of the system's beam search on ``split`` (BPE '@@ ' removed)."""
    import sacrebleu
    from fairseq import utils

    dataset = task.dataset(split)
    n = len(dataset) if max_sentences is None else min(max_sentences, len(dataset))
    ids = sorted(range(n), key=lambda i: int(dataset.src_sizes[i]))
    tgt_dict = task.target_dictionary
    hyps, refs = [], []
    for k in range(0, n, batch_size):
        sample = dataset.collater([dataset[i] for i in ids[k:k + batch_size]])
        for hypos, target in zip(system.generate([sample], beam)[0], sample["target"]):
            hyps.append(tgt_dict.string(hypos[0]["tokens"].int().cpu(), "subword_nmt"))
            refs.append(tgt_dict.string(utils.strip_pad(target, tgt_dict.pad()).int().cpu(),
                                        "subword_nmt", escape_unk=True))
    return sacrebleu.corpus_bleu(hyps, [refs]).score


# ----------------------------------------------------------------------------- statistics and report helpers

def summary(values: List[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": values}


def paired_ratio(results: Dict[str, List[dict]], a: str, b: str, key: str) -> Optional[dict]:
    """Per-repeat ratio a/b of ``key`` (both measured in the same repeat), summarised."""
    if a not in results or b not in results:
        return None
    if any(key not in r for r in results[a] + results[b]):
        return None
    return summary([ra[key] / rb[key] for ra, rb in zip(results[a], results[b])])


def fmt(x: Optional[float], digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def fmt_spread(s: dict, digits: int = 0) -> str:
    return f"{fmt(s['median'], digits)} ({fmt(s['min'], digits)}-{fmt(s['max'], digits)})"


def machine_info(args) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    try:
        info["fairseq"] = fairseq.__version__
    except Exception:  # pragma: no cover
        pass
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        try:
            import triton

            info["triton"] = triton.__version__
        except ImportError:
            pass
    return info


def infer_langs(data_bin: str):
    """(source, target) of a data-bin's ``train.{src}-{tgt}.{lang}.idx`` files, or (None, None)."""
    import glob
    import re

    for path in sorted(glob.glob(os.path.join(data_bin, "train.*-*.*.idx"))):
        m = re.match(r"train\.([^.-]+)-([^.-]+)\.([^.]+)\.idx$", os.path.basename(path))
        if m and m.group(3) == m.group(1):
            return m.group(1), m.group(2)
    return None, None


# ----------------------------------------------------------------------------- memory

def _proc_status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# Arguments appended to a system's argv to make a throw-away miniature of it (same code paths).
MINIATURE = {
    "rnn": ["--encoder-embed-dim", "8", "--decoder-embed-dim", "8", "--decoder-out-embed-dim", "8",
            "--encoder-hidden-size", "8", "--decoder-hidden-size", "8"],
    "transformer": ["--encoder-embed-dim", "8", "--decoder-embed-dim", "8", "--encoder-ffn-embed-dim", "8",
                    "--decoder-ffn-embed-dim", "8", "--encoder-attention-heads", "2",
                    "--decoder-attention-heads", "2"],
}


def miniature_argv(argv: List[str]) -> List[str]:
    arch = argv[argv.index("--arch") + 1]
    return argv + MINIATURE["transformer" if arch.startswith("transformer") else "rnn"]


def memory_probe(spec_path: str) -> dict:
    """In a fresh process: build one system, run its training steps and return its peak
    memory in MiB. A miniature of the system runs first, so that what the first step imports
    and initialises lazily (about 190 MB of RSS on CPU) is not counted.

    CUDA: ``torch.cuda.max_memory_allocated`` (nothing else is on the GPU in this process).
    CPU: peak RSS while building and training (VmHWM after reset through /proc/self/clear_refs,
    else ru_maxrss) minus the RSS just before the model was built. Both count parameters,
    gradients, Adam state and activations."""
    with open(spec_path) as f:
        spec = json.load(f)
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    batches = torch.load(spec["batches"], weights_only=True)
    cuda = spec["device"] == "cuda"
    mini = System("miniature", miniature_argv(spec["argv"]))
    mini.train_steps(batches[:1])
    mini.close()
    del mini
    gc.collect()
    method = "torch.cuda.max_memory_allocated"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base_kb = torch.cuda.memory_allocated() // 1024
    else:
        reset = reset_peak_rss()
        base_kb = _proc_status_kb("VmRSS") or 0
        method = "peak RSS delta (" + ("VmHWM after clear_refs" if reset else "ru_maxrss") + ")"
    system = System(spec["name"], spec["argv"])
    system.train_steps(batches)
    if cuda:
        peak_kb = torch.cuda.max_memory_allocated() // 1024
    else:
        peak_kb = _proc_status_kb("VmHWM") if reset else None
        if peak_kb is None:
            peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_mib": (peak_kb - base_kb) / 1024, "method": method}


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "memory-probe":
        sys.exit("usage: bench_utils.py memory-probe SPEC.json")
    print("MEMORY_PROBE " + json.dumps(memory_probe(sys.argv[2])))


def finish_report(report: dict, args, *, t_start: float, load_start, print_report, plot) -> dict:
    """The end of a benchmark run: record the load averages and wall time in ``report``, print
    it (``print_report``), write ``args.json`` and the ``args.plot`` PNG (``plot``); returns it."""
    if load_start:
        report["machine"]["loadavg_start"] = load_start
        report["machine"]["loadavg_end"] = os.getloadavg()
    report["wall_seconds"] = time.time() - t_start
    print_report(report)
    print(f"\n(total {report['wall_seconds']:.0f} s; load average at start "
          f"{report['machine'].get('loadavg_start')}, at end {report['machine'].get('loadavg_end')})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        plot(report, args.plot)
        print(f"wrote {args.plot}")
    return report
