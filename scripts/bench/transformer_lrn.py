"""``benchmark_models.py --size transformer-*``: ``transformer_lrn`` vs fairseq's ``transformer``
at the same dimensions, in one run, interleaved (``for repeat: for system:``).

Systems (``--systems`` picks a subset):

* ``transformer``          fairseq's transformer, E+D layers (6+6 at transformer-base-256)
* ``transformer-lrn``      ``--arch transformer_lrn``, the same flags: LRN instead of decoder self-attention
* ``transformer-dec2``     fairseq's transformer with a 2-layer decoder (same encoder)
* ``transformer-lrn-dec2`` transformer_lrn with a 2-layer decoder
* ``transformer-lrn-wide`` transformer_lrn with ``--decoder-ffn-embed-dim`` raised until its parameter
                           count matches the transformer's (training only)

Measured: CPU/GPU decoding sentences/s through fairseq's SequenceGenerator (beam 5 / greedy, batch
1 / 64, hypotheses forced to each of ``--forced-lengths``), time per output token vs L
(``--sweep-lengths`` at ``--sweep-cell``), the generator's incremental-state bytes per sentence at
the longest L (grows-with-output / constant / encoder-attention static), training tokens/s.
"""

import argparse
import datetime
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import torch

import bench_utils as bu
from bench import decoding

SYSTEMS = ("transformer", "transformer-lrn", "transformer-dec2", "transformer-lrn-dec2", "transformer-lrn-wide")
DECODE_SYSTEMS = SYSTEMS[:4]
TRAIN_SYSTEMS = ("transformer", "transformer-lrn", "transformer-lrn-wide")
BASELINE = "transformer"
PAIRS = (("transformer-lrn", BASELINE), ("transformer-lrn-dec2", BASELINE), ("transformer-dec2", BASELINE),
         ("transformer-lrn-dec2", "transformer-dec2"), ("transformer-lrn-wide", BASELINE))
GEN_CONFIGS = (("beam5_b1", 5, 1), ("beam5_b64", 5, 64), ("greedy_b1", 1, 1), ("greedy_b64", 1, 64))


@dataclass(frozen=True)
class Target:
    """``numerator / denominator >= ratio`` for ``metric`` ("sent/s" at forced length ``length``,
    every generation config; None: every length) or "train tok/s"."""
    numerator: str
    denominator: str
    metric: str
    ratio: float
    length: Optional[int] = None


# The targets (benchmarks, not tests).
TARGETS = (
    Target("transformer-lrn", BASELINE, "sent/s", 1.1, length=30),
    Target("transformer-lrn", BASELINE, "sent/s", 1.3, length=150),
    Target("transformer-lrn-dec2", BASELINE, "sent/s", 1.9),
    Target("transformer-lrn", BASELINE, "train tok/s", 1.0),
)


@dataclass
class TPreset:
    embed: int
    ffn: int
    heads: int
    encoder_layers: int
    decoder_layers: int
    shallow_decoder_layers: int
    vocab: int                  # synthetic data
    median_len: float           # synthetic data: median source length
    max_tokens: int
    train_steps: int
    gen_b1: int                 # sentences timed at batch 1 (per length, per beam)
    gen_b64: int                # sentences timed at batch 64
    forced_lengths: Tuple[int, ...] = (30, 150)
    sweep_lengths: Tuple[int, ...] = (10, 30, 60, 100, 150)
    dropout: float = 0.1
    lr: float = 5e-4
    train_sentences: int = 4000
    test_sentences: int = 512
    state_sentences: int = 4    # sentences decoded for the state-memory measurement


PRESETS = {
    # d=256, FFN 1024, 4 heads, 6-layer encoder, 6- (and 2-) layer decoder, all embeddings shared.
    "transformer-base-256": TPreset(256, 1024, 4, 6, 6, 2, vocab=10000, median_len=12, max_tokens=2048,
                                    train_steps=3, gen_b1=3, gen_b64=64),
    # smoke tests: same code paths, seconds.
    "transformer-tiny": TPreset(32, 64, 2, 2, 4, 2, vocab=256, median_len=8, max_tokens=384,
                                train_steps=2, gen_b1=2, gen_b64=64, forced_lengths=(10, 60),
                                sweep_lengths=(5, 10, 60), train_sentences=600, test_sentences=128),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument_group("transformer-* sizes (transformer_lrn vs transformer)").add_argument
    add("--sweep-lengths", nargs="*", type=int, metavar="L",
        help="forced lengths of the time-per-output-token sweep (default: per size; none: no sweep)")
    add("--sweep-cell", nargs=2, type=int, default=(5, 64), metavar=("BEAM", "BATCH"),
        help="beam and batch size of the sweep (default: 5 64; a cell of the main grid is reused)")
    add("--sweep-repeats", type=int, default=1, metavar="N",
        help="repeats (the first N) that time the sweep's lengths outside the main grid (default: 1; the "
             "grid's own cells are timed in every repeat)")
    add("--state-length", type=int, help="forced length of the state-memory measurement "
        "(default: the longest --forced-lengths)")
    add("--transformer-lrn-arch", default="transformer_lrn", metavar="ARCH",
        help="fairseq --arch of the LRN systems (default: %(default)s)")
    add("--no-wide", action="store_true", help="skip transformer-lrn-wide (parameter-matched FFN)")


def finish_args(parser, args) -> None:
    p = PRESETS[args.size]
    for flag in ("quality", "fp16", "tf32"):
        if getattr(args, flag):
            parser.error(f"--{flag} is not supported with --size {args.size}")
    if args.profile is not None or args.lrn_args:
        parser.error(f"--profile / --lrn-args are not supported with --size {args.size}")
    args.systems = list(args.systems or SYSTEMS)
    if args.no_wide and "transformer-lrn-wide" in args.systems:
        args.systems.remove("transformer-lrn-wide")
    bad = [n for n in args.systems if n not in SYSTEMS]
    if bad:
        parser.error(f"--size {args.size} runs {', '.join(SYSTEMS)}; not {bad}")
    args.forced_lengths = list(args.forced_lengths or p.forced_lengths)
    args.sweep_lengths = list(p.sweep_lengths if args.sweep_lengths is None else args.sweep_lengths)
    args.state_length = args.state_length or max(args.forced_lengths)
    if min(args.forced_lengths + args.sweep_lengths + [args.state_length]) < 1:
        parser.error("forced lengths must be >= 1")
    args.max_tokens = args.max_tokens or p.max_tokens
    args.train_steps = args.train_steps or p.train_steps
    args.gen_sentences_b1 = args.gen_sentences_b1 or p.gen_b1
    args.gen_sentences_b64 = args.gen_sentences_b64 or p.gen_b64
    if args.quick:
        args.repeats, args.train_steps = 1, min(args.train_steps, 2)
        args.gen_sentences_b1, args.gen_sentences_b64 = 1, 64


# ----------------------------------------------------------------------------- systems

def common_args(args, p: TPreset, data_bin: str, langs: Tuple[Optional[str], Optional[str]],
                share_all: bool) -> List[str]:
    lang_args = []
    for flag, value in zip(("--source-lang", "--target-lang"), langs):
        lang_args += [flag, value] if value else []
    return [
        data_bin, "--user-dir", bu.USER_DIR, "--task", "translation", *lang_args,
        "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
        "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--clip-norm", "0.0",
        "--lr", str(p.lr), "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "4000",
        "--warmup-init-lr", "1e-07", "--max-tokens", str(args.max_tokens), "--dropout", str(p.dropout),
        "--seed", str(args.seed), "--num-workers", "0", "--no-progress-bar", "--log-format", "simple",
        *(["--share-all-embeddings"] if share_all else ["--share-decoder-input-output-embed"]),
        *(["--cpu"] if args.device == "cpu" else []),
    ]


def arch_args(arch: str, p: TPreset, decoder_layers: int, decoder_ffn: int) -> List[str]:
    return ["--arch", arch, "--encoder-embed-dim", str(p.embed), "--decoder-embed-dim", str(p.embed),
            "--encoder-ffn-embed-dim", str(p.ffn), "--decoder-ffn-embed-dim", str(decoder_ffn),
            "--encoder-layers", str(p.encoder_layers), "--decoder-layers", str(decoder_layers),
            "--encoder-attention-heads", str(p.heads), "--decoder-attention-heads", str(p.heads)]


def system_shape(name: str, p: TPreset) -> Tuple[bool, int]:
    """(is LRN, decoder layers) of a system."""
    return "lrn" in name, p.shallow_decoder_layers if name.endswith("-dec2") else p.decoder_layers


def count_model_params(argv: List[str]) -> int:
    from fairseq import tasks

    _, cfg = bu.parse_fairseq_args(argv)
    return bu.count_params(tasks.setup_task(cfg.task).build_model(cfg.model))


def matched_ffn(base: List[str], lrn_arch: str, p: TPreset, lrn_params: int, target: int) -> int:
    """Decoder FFN width of transformer_lrn whose parameter count is closest to ``target``:
    parameters are linear in the FFN width, so one more model built at 2x the FFN gives the slope
    (measured, not a formula of the layer's internals)."""
    wide = count_model_params(base + arch_args(lrn_arch, p, p.decoder_layers, 2 * p.ffn))
    slope = (wide - lrn_params) / p.ffn
    return max(8, int(round((p.ffn + (target - lrn_params) / slope) / 8)) * 8)


def lrn_arch_missing(arch: str) -> Optional[str]:
    import fairseq_lrn.models  # noqa: F401
    from fairseq.models import ARCH_MODEL_REGISTRY

    if arch not in ARCH_MODEL_REGISTRY:
        return f"--arch {arch} is not registered (fairseq_lrn.models does not define it yet)"
    return None


def build_systems(args, p: TPreset, data_bin, langs, share_all, skipped) -> Dict[str, "bu.System"]:
    base = common_args(args, p, data_bin, langs, share_all)
    lrn_arch = args.transformer_lrn_arch
    missing = lrn_arch_missing(lrn_arch)
    built = {}
    for name in [n for n in SYSTEMS if n in args.systems and n != "transformer-lrn-wide"]:
        lrn, layers = system_shape(name, p)
        if lrn and missing:
            skipped[name] = missing
            continue
        arch = lrn_arch if lrn else "transformer"
        note = (f"--arch {arch}, {p.encoder_layers}+{layers} layers, d={p.embed}, ffn {p.ffn}, {p.heads} heads"
                + (", LRN in place of decoder self-attention" if lrn else ""))
        built[name] = bu.System(name, base + arch_args(arch, p, layers, p.ffn), note)
    if "transformer-lrn-wide" in args.systems:
        if missing:
            skipped["transformer-lrn-wide"] = missing
        else:
            lrn_params = built["transformer-lrn"].params if "transformer-lrn" in built else \
                count_model_params(base + arch_args(lrn_arch, p, p.decoder_layers, p.ffn))
            target = built[BASELINE].params if BASELINE in built else \
                count_model_params(base + arch_args("transformer", p, p.decoder_layers, p.ffn))
            ffn = matched_ffn(base, lrn_arch, p, lrn_params, target)
            built["transformer-lrn-wide"] = bu.System(
                "transformer-lrn-wide", base + arch_args(lrn_arch, p, p.decoder_layers, ffn),
                f"--arch {lrn_arch}, {p.encoder_layers}+{p.decoder_layers} layers, d={p.embed}, decoder ffn "
                f"{ffn} (parameter count matched to the transformer's), encoder ffn {p.ffn}")
    return {n: built[n] for n in SYSTEMS if n in built}


# ----------------------------------------------------------------------------- measuring

@dataclass
class Cell:
    key: str
    beam: int
    batch_size: int
    length: int
    batches: list = field(repr=False, default_factory=list)


def make_cells(args, task) -> Tuple[List[Cell], List[Cell], Dict[int, str]]:
    """Main grid (config x forced length), extra sweep cells, and sweep length -> cell key."""
    sets = {}
    for bs, n in ((1, args.gen_sentences_b1), (64, args.gen_sentences_b64)):
        sets[bs] = bu.generation_batches(task, n, bs, seed=args.seed)[0]
    grid = [Cell(f"{key}_L{L}", beam, bs, L, sets[bs])
            for L in args.forced_lengths for key, beam, bs in GEN_CONFIGS]
    beam, bs = args.sweep_cell
    if bs not in sets:
        sets[bs] = bu.generation_batches(task, max(bs, args.gen_sentences_b64), bs, seed=args.seed)[0][:1]
    by_key = {(c.beam, c.batch_size, c.length): c.key for c in grid}
    sweep, sweep_keys = [], {}
    for L in args.sweep_lengths:
        key = by_key.get((beam, bs, L))
        if key is None:
            key = f"sweep_beam{beam}_b{bs}_L{L}"
            sweep.append(Cell(key, beam, bs, L, sets[bs]))
        sweep_keys[L] = key
    return grid, sweep, sweep_keys


def measure(system, train: bool, train_batches, warmup: int, cells: List[Cell]) -> dict:
    out = {}
    if train:
        system.train_steps(train_batches[:warmup])
        timed = train_batches[warmup:]
        seconds = system.train_steps(timed)
        out["train_tok_s"] = sum(int(b["ntokens"]) for b in timed) / sum(seconds)
    for c in cells:
        out[c.key] = decoding.time_forced(system, c.batches, c.beam, c.length)
    return out


def warm_up(system, name: str, p: TPreset, args, train_batches, grid: List[Cell], sweep: List[Cell],
            train: bool, decode: bool) -> Optional[dict]:
    """Untimed first calls (a training update, a short decode per beam), then the state-memory
    measurement: a few of the batch-64 sentences decoded at beam 5 to ``--state-length`` (state per
    sentence does not depend on the batch size)."""
    if train:
        system.train_steps(train_batches[:max(args.warmup_steps, 1)])
    if not (decode and grid):
        return None
    for beam in sorted({c.beam for c in grid + sweep}):
        system.generate(grid[0].batches[:1], beam, [min(args.forced_lengths)])
    b64 = next(c for c in grid if c.batch_size == 64).batches[0]
    sample = decoding.slice_batch(b64, min(p.state_sentences, int(b64["nsentences"])))
    t0 = time.perf_counter()
    st = decoding.state_memory(system, sample, 5, args.state_length)
    lrn, layers = system_shape(name, p)
    st["formula"] = decoding.state_formula(layers, p.embed, args.state_length, st["src_len"], lrn)
    st["seconds"] = time.perf_counter() - t0
    print(f"   state {name:<22s} grows {st['grows'] / 1024:8.1f} KiB  constant {st['constant'] / 1024:6.2f} "
          f"KiB  encoder {st['encoder_static'] / 1024:6.1f} KiB per sentence ({st['seconds']:.1f} s)", flush=True)
    return st


# ----------------------------------------------------------------------------- report

def check_targets(report: dict, targets=TARGETS) -> List[dict]:
    rows = []
    ratios, lengths = report["ratios"], report["config"]["forced_lengths"]
    for t in targets:
        r = ratios.get(f"{t.numerator}/{t.denominator}")
        if r is None:
            continue
        if t.metric == "train tok/s":
            keys = ["train_tok_s"]
        else:
            keys = [f"{k}_L{L}" for L in lengths if t.length in (None, L) for k, _, _ in GEN_CONFIGS]
        for key in keys:
            if key in r:
                where = t.metric if key == "train_tok_s" else f"{t.metric} {key}"
                rows.append({"what": f"{where}: {t.numerator} / {t.denominator}", "value": r[key],
                             "target": t.ratio, "met": r[key] >= t.ratio})
        if not keys and t.length is not None:
            rows.append({"what": f"{t.metric} at L={t.length}: {t.numerator} / {t.denominator}", "value": None,
                         "target": t.ratio, "met": None})
    return rows


def print_report(report: dict) -> None:
    cfg, systems = report["config"], report["systems"]
    fmt, fmt_spread = bu.fmt, bu.fmt_spread
    m = report["machine"]
    print(f"\n## Results: --size {cfg['size']} on {cfg['device']} ({m.get('gpu') or m.get('cpu')}, "
          f"{m['torch_threads']} threads), {cfg['repeats']} interleaved repeats; median (min-max)\n")
    print(f"Data: {cfg['data']}" + (" (synthetic)" if cfg["synthetic_data"] else "")
          + f"; vocabulary {cfg['vocab']}\n")
    print("| system | params | train tok/s | note |\n|---|---:|---:|---|")
    for name, s in systems.items():
        tok = fmt_spread(s["train_tok_s"]) if "train_tok_s" in s else "-"
        print(f"| {name} | {s['params']:,} ({s['params'] / 1e6:.2f}M) | {tok} | {s['note']} |")
    for lrn, base in (("transformer-lrn", BASELINE), ("transformer-lrn-dec2", "transformer-dec2")):
        if lrn in systems and base in systems:
            diff, layers = systems[base]["params"] - systems[lrn]["params"], cfg["decoder_layers"][lrn]
            d = cfg["preset"]["embed"]
            print(f"\n{lrn} has {diff:,} fewer parameters than {base} ({diff / systems[base]['params']:.1%}): "
                  f"{diff / layers:,.0f} per decoder layer (d^2 = {d * d:,}: self-attention's 4d^2+4d "
                  f"against LRN's 3d^2 projection and its biases / norms)")
    print(f"\nTraining: target tokens/s over {cfg['train_steps']} full fairseq updates per repeat (max "
          f"{cfg['max_tokens']} tokens per batch, {cfg['warmup_steps']} warm-up update(s) excluded).")

    grid = cfg["grid"]
    dec = [n for n in systems if any(k in systems[n] for k in grid)]
    if dec:
        print("\n### Decoding: sentences/s (SequenceGenerator, every hypothesis forced to L tokens)\n")
        print("| system | " + " | ".join(k.replace("_", " ") for k in grid) + " |")
        print("|---|" + "---:|" * len(grid))
        for n in dec:
            print(f"| {n} | " + " | ".join(fmt_spread(systems[n][k], 1) if k in systems[n] else "-"
                                           for k in grid) + " |")
        print(f"\nBatch 1: {cfg['gen_sentences_b1']} random test sentences; batch 64: the "
              f"{cfg['gen_sentences_b64']} of median source length; greedy = beam 1.")
    if report["ratios"]:
        print("\n### Ratios (per-repeat ratios within this run, median (min-max))\n")
        keys = ["train_tok_s"] + grid
        print("| pair | " + " | ".join(k.replace("_", " ") for k in keys) + " |")
        print("|---|" + "---:|" * len(keys))
        for pair, r in report["ratios"].items():
            print(f"| {pair} | " + " | ".join(
                f"{r[k]:.2f} ({r['spread'][k][0]:.2f}-{r['spread'][k][1]:.2f})" if k in r else "-"
                for k in keys) + " |")
    sweep = report.get("time_per_token")
    if sweep:
        lengths = sweep["lengths"]
        print(f"\n### Time per output token vs L (ms per sentence's output token; beam {sweep['beam']}, batch "
              f"{sweep['batch_size']}; lengths outside the grid timed in {cfg['sweep_repeats']} repeat(s))\n")
        print("| system | " + " | ".join(f"L={L}" for L in lengths) + " |")
        print("|---|" + "---:|" * len(lengths))
        for n, ms in sweep["ms_per_token"].items():
            print(f"| {n} | " + " | ".join(f"{v:.3f}" for v in ms) + " |")
    state = report.get("state_memory")
    if state:
        any_s = next(iter(state.values()))
        print(f"\n### Decoder state per sentence at L={any_s['length']} (KiB; beam {any_s['beam']}, "
              f"{any_s['sentences']} sentences, source length {any_s['src_len']}; measured in the generator's "
              "incremental_state after the last step, / (batch x beam))\n")
        print("| system | grows with output (self-attn K/V) | constant (LRN states) | encoder-attn static "
              "| total | formula: grows / constant / encoder |")
        print("|---|---:|---:|---:|---:|---|")
        for n, s in state.items():
            f = s["formula"]
            print(f"| {n} | {s['grows'] / 1024:.1f} | {s['constant'] / 1024:.2f} | {s['encoder_static'] / 1024:.1f} "
                  f"| {s['total'] / 1024:.1f} | {f['grows'] / 1024:.1f} / {f['constant'] / 1024:.2f} / "
                  f"{f['encoder_static'] / 1024:.1f} |")
    for name, why in report["skipped"].items():
        print(f"Skipped {name}: {why}.")
    if report["targets"]:
        print("\n### Targets (benchmarks, not tests; bench/transformer_lrn.py TARGETS)\n")
        print("| what | measured | target | met |\n|---|---:|---:|---|")
        for t in report["targets"]:
            value = "-" if t["value"] is None else f"{t['value']:.2f}x"
            met = "not measured" if t["met"] is None else ("met" if t["met"] else "NOT met")
            print(f"| {t['what']} | {value} | >= {t['target']:g}x | {met} |")


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep, state = report.get("time_per_token"), report.get("state_memory")
    ncols = 1 + bool(state)
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4.3), squeeze=False)
    ax = axes[0][0]
    if sweep:
        for n, ms in sweep["ms_per_token"].items():
            ax.plot(sweep["lengths"], ms, marker="o", label=n)
        ax.legend(fontsize=8)
    ax.set_xlabel("forced output length L (tokens)")
    ax.set_ylabel("ms per output token (per sentence)")
    ax.set_title(f"{report['config']['device']} decoding, beam {(sweep or {}).get('beam')}, "
                 f"batch {(sweep or {}).get('batch_size')} ({report['config']['size']})")
    ax.grid(alpha=0.3)
    if state:
        ax = axes[0][1]
        names = list(state)
        bottom = [0.0] * len(names)
        for part, label in (("grows", "self-attn K/V (grows)"), ("constant", "LRN states"),
                            ("encoder_static", "encoder-attn static")):
            vals = [state[n][part] / 1024 for n in names]
            ax.bar(names, vals, bottom=bottom, label=label)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_ylabel("KiB per sentence-hypothesis")
        ax.set_title(f"decoder state at L={next(iter(state.values()))['length']}")
        ax.tick_params(axis="x", rotation=15)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- main

def main(args, argv=None) -> dict:
    p = PRESETS[args.size]
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.time()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    if load_start and args.device == "cpu" and load_start[0] > 0.5 * (os.cpu_count() or 1):
        print(f"!! load average {load_start[0]:.1f} on {os.cpu_count()} cores: timings will be noisy")
    work = args.work_dir or tempfile.mkdtemp(prefix="lrn-bench-")
    os.makedirs(work, exist_ok=True)
    if args.data:
        data_bin = args.data
        inferred = bu.infer_langs(data_bin)
        langs = (args.source_lang or inferred[0], args.target_lang or inferred[1])
        share_all = bu.dictionaries_joined(data_bin, langs[0] or bu.SRC, langs[1] or bu.TGT)
        if not share_all:
            print("!! the data-bin's dictionaries differ: --share-decoder-input-output-embed instead of "
                  "--share-all-embeddings (preprocess with --joined-dictionary)")
    else:
        data_bin = bu.make_synthetic_bin(
            os.path.join(work, f"synthetic-{args.size}-v{p.vocab}-s{args.seed}"), p.vocab,
            {"train": p.train_sentences, "test": p.test_sentences}, p.median_len, seed=args.seed)
        langs, share_all = (bu.SRC, bu.TGT), True
    print(f"== data: {data_bin}" + ("" if args.data else " (synthetic: random Zipfian tokens, for speed only)"))

    skipped: Dict[str, str] = {}
    systems = build_systems(args, p, data_bin, langs, share_all, skipped)
    if not systems:
        raise SystemExit("no system can run: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    first = next(iter(systems.values()))
    task = first.load_splits()
    vocab = len(task.target_dictionary)
    train_batches = bu.training_batches(task, args.max_tokens, args.warmup_steps + args.train_steps, seed=args.seed)
    grid, sweep, sweep_keys = ([], [], {}) if args.skip_generation else make_cells(args, task)
    trains = {n: n in TRAIN_SYSTEMS for n in systems}
    decodes = {n: n in DECODE_SYSTEMS for n in systems}
    print("== systems: " + ", ".join(f"{n} ({s.params:,} params)" for n, s in systems.items())
          + "".join(f"; {n} skipped: {why}" for n, why in skipped.items()))
    print(f"== vocabulary {vocab}; forced lengths {args.forced_lengths}; sweep {args.sweep_lengths} at beam "
          f"{args.sweep_cell[0]} batch {args.sweep_cell[1]}; {args.repeats} repeats on {args.device} "
          f"({torch.get_num_threads()} threads)", flush=True)

    state = {}
    for name, s in systems.items():
        st = warm_up(s, name, p, args, train_batches, grid, sweep, trains[name], decodes[name])
        if st:
            state[name] = st

    results: Dict[str, List[dict]] = {n: [] for n in systems}
    for r in range(args.repeats):
        t_repeat = time.time()
        for name, s in systems.items():
            t0 = time.perf_counter()
            cells = (grid + (sweep if r < args.sweep_repeats else [])) if decodes[name] else []
            m = measure(s, trains[name], train_batches, args.warmup_steps, cells)
            results[name].append(m)
            print(f"   repeat {r + 1}/{args.repeats} {name:<22s} "
                  + (f"train {m['train_tok_s']:8,.0f} tok/s  " if "train_tok_s" in m else "")
                  + "  ".join(f"{c.key} {m[c.key]:.2f}" for c in grid if c.key in m)
                  + f"  ({time.perf_counter() - t0:.1f} s)", flush=True)
        if r == 0 and args.repeats > 1:
            sweep_s = sum(sum(int(b["nsentences"]) for b in c.batches) / m[c.key]
                          for m in (results[n][0] for n in systems) for c in sweep if c.key in m)
            per_repeat = time.time() - t_repeat - (sweep_s if args.sweep_repeats == 1 else 0)
            print(f"   ({time.time() - t_start:.0f} s so far; about {(args.repeats - 1) * per_repeat:.0f} s "
                  f"to go for the remaining {args.repeats - 1} repeat(s))", flush=True)

    report = {
        "command": " ".join([os.path.basename(sys.argv[0])] + (argv if argv is not None else sys.argv[1:])),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": bu.machine_info(args),
        "config": {"size": args.size, "preset": asdict(p), "device": args.device, "repeats": args.repeats,
                   "train_steps": args.train_steps, "warmup_steps": args.warmup_steps,
                   "max_tokens": args.max_tokens, "gen_sentences_b1": args.gen_sentences_b1,
                   "gen_sentences_b64": args.gen_sentences_b64, "forced_lengths": args.forced_lengths,
                   "sweep_lengths": args.sweep_lengths, "sweep_cell": list(args.sweep_cell),
                   "sweep_repeats": min(args.sweep_repeats, args.repeats),
                   "state_length": args.state_length, "grid": [c.key for c in grid],
                   "gen_configs": [c.key for c in grid], "data": data_bin, "synthetic_data": not args.data,
                   "vocab": vocab, "share_all_embeddings": share_all,
                   "train_batch_target_tokens": [int(b["ntokens"]) for b in train_batches],
                   "transformer_lrn_arch": args.transformer_lrn_arch,
                   "decoder_layers": {n: system_shape(n, p)[1] for n in systems}},
        "skipped": skipped, "systems": {}, "ratios": {}, "state_memory": state,
        "targets_table": [asdict(t) for t in TARGETS],
    }
    for name, s in systems.items():
        entry = {"params": s.params, "note": s.note, "argv": s.argv}
        for key in results[name][0]:
            entry[key] = bu.summary([m[key] for m in results[name] if key in m])
        report["systems"][name] = entry
    for a, b in PAIRS:
        keys = sorted({k for m in results.get(a, [])[:1] for k in m} & {k for m in results.get(b, [])[:1] for k in m})
        per = {k: bu.paired_ratio(results, a, b, k) for k in keys}
        per = {k: v for k, v in per.items() if v is not None}
        if per:
            report["ratios"][f"{a}/{b}"] = {**{k: v["median"] for k, v in per.items()},
                                            "spread": {k: (v["min"], v["max"]) for k, v in per.items()}}
    if sweep_keys:
        beam, bs = args.sweep_cell
        dec_names = [n for n in systems if decodes[n]]
        report["time_per_token"] = {
            "beam": beam, "batch_size": bs, "lengths": list(sweep_keys),
            "ms_per_token": {n: [1e3 / (report["systems"][n][sweep_keys[L]]["median"] * L) for L in sweep_keys]
                             for n in dec_names}}
    for s in systems.values():
        s.close()
    report["targets"] = check_targets(report)
    return bu.finish_report(report, args, t_start=t_start, load_start=load_start,
                            print_report=print_report, plot=plot)

