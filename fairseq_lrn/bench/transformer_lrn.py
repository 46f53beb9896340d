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

This module is the family as data for :mod:`.translation` (which runs it): its options, sizes,
systems, cells, ratios, report and figure; the targets are rows of :mod:`.targets`.
"""

import argparse
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from . import data, decoding
from .harness import summarize
from .shapes import transformer_flags
from .stats import fmt_spread, keys_in_both, md_table, print_ratios, print_targets
from .systems import System, count_model_params
from .targets import TRANSFORMER_FAMILY as FAMILY, family_targets
from .translation import Cell, recipe

SYSTEMS = DEFAULT_SYSTEMS = ("transformer", "transformer-lrn", "transformer-dec2", "transformer-lrn-dec2",
                             "transformer-lrn-wide")
DECODE_SYSTEMS = SYSTEMS[:4]
TRAIN_SYSTEMS = ("transformer", "transformer-lrn", "transformer-lrn-wide")
BASELINE = "transformer"
PAIRS = (("transformer-lrn", BASELINE), ("transformer-lrn-dec2", BASELINE), ("transformer-dec2", BASELINE),
         ("transformer-lrn-dec2", "transformer-dec2"), ("transformer-lrn-wide", BASELINE))
LENGTH_MAJOR, REQUIRE_ALL, STEP_TIMES, QUICK_B1 = True, False, False, 1
WARM_EVERY_BATCH = False  # on CUDA: one sentence per batch-1 cell is enough


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
    share_all = True            # all embeddings shared (a class attribute: not in the report's preset)


PRESETS = {
    # d=256, FFN 1024, 4 heads, 6-layer encoder, 6- (and 2-) layer decoder, all embeddings shared.
    "transformer-base-256": TPreset(256, 1024, 4, 6, 6, 2, vocab=10000, median_len=12, max_tokens=2048,
                                    train_steps=3, gen_b1=3, gen_b64=64),
    # smoke tests: same code paths, seconds.
    "transformer-tiny": TPreset(32, 64, 2, 2, 4, 2, vocab=256, median_len=8, max_tokens=384,
                                train_steps=2, gen_b1=2, gen_b64=64, forced_lengths=(10, 60),
                                sweep_lengths=(5, 10, 60), train_sentences=600, test_sentences=128),
}


# ----------------------------------------------------------------------------- options

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


def check_args(parser, args) -> None:
    for flag in ("quality", "fp16", "tf32"):
        if getattr(args, flag):
            parser.error(f"--{flag} is not supported with --size {args.size}")
    if args.profile is not None or args.lrn_args:
        parser.error(f"--profile / --lrn-args are not supported with --size {args.size}")


def wrong_systems(args, bad) -> str:
    return f"--size {args.size} runs {', '.join(SYSTEMS)}; not {bad}"


def finish_args(parser, args) -> None:
    p = PRESETS[args.size]
    if args.no_wide and "transformer-lrn-wide" in args.systems:
        args.systems.remove("transformer-lrn-wide")
    args.forced_lengths = list(args.forced_lengths or p.forced_lengths)
    args.sweep_lengths = list(p.sweep_lengths if args.sweep_lengths is None else args.sweep_lengths)
    args.state_length = args.state_length or max(args.forced_lengths)
    if min(args.forced_lengths + args.sweep_lengths + [args.state_length]) < 1:
        parser.error("forced lengths must be >= 1")


# ----------------------------------------------------------------------------- systems

def system_shape(name: str, p: TPreset) -> Tuple[bool, int]:
    """(is LRN, decoder layers) of a system."""
    return "lrn" in name, p.shallow_decoder_layers if name.endswith("-dec2") else p.decoder_layers


def arch_args(arch: str, p: TPreset, decoder_layers: int, decoder_ffn: int) -> List[str]:
    return ["--arch", arch, *transformer_flags(p.embed, p.ffn, p.heads, p.encoder_layers, decoder_layers, decoder_ffn)]


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


def build_systems(args, p: TPreset, data_bin, langs, share_all, skipped) -> Dict[str, System]:
    base = recipe(args, p, data_bin, langs, share_all, clip_norm=0.0, warmup_updates=4000)
    lrn_arch = args.transformer_lrn_arch
    missing = lrn_arch_missing(lrn_arch)
    built = {}
    for name in [n for n in SYSTEMS if n in args.systems]:
        lrn, layers = system_shape(name, p)
        if lrn and missing:
            skipped[name] = missing
            continue
        arch, ffn = lrn_arch if lrn else "transformer", p.ffn
        note = (f"--arch {arch}, {p.encoder_layers}+{layers} layers, d={p.embed}, ffn {p.ffn}, {p.heads} heads"
                + (", LRN in place of decoder self-attention" if lrn else ""))
        if name == "transformer-lrn-wide":
            def params(n, a):
                return built[n].params if n in built else count_model_params(base + arch_args(a, p, layers, p.ffn))
            ffn = matched_ffn(base, lrn_arch, p, params("transformer-lrn", lrn_arch), params(BASELINE, "transformer"))
            note = (f"--arch {lrn_arch}, {p.encoder_layers}+{layers} layers, d={p.embed}, decoder ffn {ffn} "
                    f"(parameter count matched to the transformer's), encoder ffn {p.ffn}")
        built[name] = System(name, base + arch_args(arch, p, layers, ffn), note)
    return built


# ----------------------------------------------------------------------------- measuring

def trains(name) -> bool:
    return name in TRAIN_SYSTEMS


def sweep_cells(ctx) -> Tuple[List[Cell], Dict[int, str]]:
    """The sweep's cells outside the grid, and sweep length -> cell key (made once per run)."""
    if "sweep" not in ctx:
        args, grid = ctx["args"], ctx["cells"]
        beam, bs = args.sweep_cell
        batches = next((c.batches for c in grid if c.batch_size == bs), None) or \
            data.generation_batches(ctx["task"], max(bs, args.gen_sentences_b64), bs, seed=args.seed)[0][:1]
        by_key = {(c.beam, c.batch_size, c.lengths[0]): c.key for c in grid}
        sweep, keys = [], {}
        for L in args.sweep_lengths if grid else []:
            keys[L] = by_key.get((beam, bs, L)) or f"sweep_beam{beam}_b{bs}_L{L}"
            if (beam, bs, L) not in by_key:
                sweep.append(Cell(keys[L], beam, bs, [L] * len(batches), batches))
        ctx["sweep"], ctx["sweep_keys"] = sweep, keys
    return ctx["sweep"], ctx["sweep_keys"]


def cells(ctx, name, repeat) -> List[Cell]:
    """The grid, and the sweep's own cells in the first ``--sweep-repeats`` repeats (decoding systems)."""
    if name not in DECODE_SYSTEMS:
        return []
    return ctx["cells"] + (sweep_cells(ctx)[0] if repeat < ctx["args"].sweep_repeats else [])


def pairs(systems):
    return PAIRS


def ratio_keys(ctx, results, a, b):
    return keys_in_both(results, a, b)


def config(ctx, systems, share_all) -> dict:
    args, grid = ctx["args"], ctx["cells"]
    return {"sweep_lengths": args.sweep_lengths, "sweep_cell": list(args.sweep_cell),
            "sweep_repeats": min(args.sweep_repeats, args.repeats), "state_length": args.state_length,
            "grid": [c.key for c in grid], "vocab": len(ctx["task"].target_dictionary),
            "share_all_embeddings": share_all, "transformer_lrn_arch": args.transformer_lrn_arch,
            "decoder_layers": {n: system_shape(n, ctx["preset"])[1] for n in systems}}


def entry(runs) -> dict:
    return summarize(runs)


def after_repeat(ctx, r, results) -> None:
    """After the first repeat: the time the others will take (the sweep's own cells excluded)."""
    args = ctx["args"]
    if r == 0 and args.repeats > 1:
        sweep = sweep_cells(ctx)[0]
        sweep_s = sum(sum(int(b["nsentences"]) for b in c.batches) / m[c.key]
                      for m in (runs[0] for runs in results.values()) for c in sweep if c.key in m)
        per_repeat = time.time() - ctx["t_repeats"] - (sweep_s if args.sweep_repeats == 1 else 0)
        print(f"   ({time.time() - ctx['t_start']:.0f} s so far; about {(args.repeats - 1) * per_repeat:.0f} s "
              f"to go for the remaining {args.repeats - 1} repeat(s))", flush=True)


def state_of(system, name: str, ctx) -> dict:
    """The decoder state per sentence: a few of the batch-64 sentences decoded at beam 5 to
    ``--state-length`` (state per sentence does not depend on the batch size)."""
    p, length = ctx["preset"], ctx["args"].state_length
    b64 = next(c for c in ctx["cells"] if c.batch_size == 64).batches[0]
    t0 = time.perf_counter()
    st = decoding.state_memory(system, decoding.slice_batch(b64, min(p.state_sentences, int(b64["nsentences"]))),
                               5, length)
    lrn, layers = system_shape(name, p)
    st["formula"] = decoding.state_formula(layers, p.embed, length, st["src_len"], lrn)
    st["seconds"] = time.perf_counter() - t0
    print(f"   state {name:<22s} grows {st['grows'] / 1024:8.1f} KiB  constant {st['constant'] / 1024:6.2f} "
          f"KiB  encoder {st['encoder_static'] / 1024:6.1f} KiB per sentence ({st['seconds']:.1f} s)", flush=True)
    return st


def after(ctx, systems, results, report) -> None:
    """The decoder states, the targets' table, and ms per output token of the sweep."""
    report["state_memory"] = {n: state_of(s, n, ctx) for n, s in systems.items()
                              if n in DECODE_SYSTEMS and ctx["cells"]}
    report["targets_table"] = [t.as_table_row() for t in family_targets(FAMILY)]
    keys = sweep_cells(ctx)[1]
    if keys:
        beam, bs = ctx["args"].sweep_cell
        report["time_per_token"] = {
            "beam": beam, "batch_size": bs, "lengths": list(keys),
            "ms_per_token": {n: [1e3 / (report["systems"][n][keys[L]]["median"] * L) for L in keys]
                             for n in systems if n in DECODE_SYSTEMS}}


# ----------------------------------------------------------------------------- report

def body(report: dict) -> None:
    cfg, systems = report["config"], report["systems"]
    print(f"Data: {cfg['data']}" + (" (synthetic)" if cfg["synthetic_data"] else "") + f"; vocabulary {cfg['vocab']}\n")
    md_table(["system", "params", "train tok/s", "note"],
             [[n, f"{s['params']:,} ({s['params'] / 1e6:.2f}M)",
               fmt_spread(s["train_tok_s"]) if "train_tok_s" in s else "-", s["note"]] for n, s in systems.items()],
             "lrrl")
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
        md_table(["system", *(k.replace("_", " ") for k in grid)],
                 [[n, *(fmt_spread(systems[n][k], 1) if k in systems[n] else "-" for k in grid)] for n in dec])
        print(f"\nBatch 1: {cfg['gen_sentences_b1']} random test sentences; batch 64: the "
              f"{cfg['gen_sentences_b64']} of median source length; greedy = beam 1.")
    print_ratios(report["ratios"], ["train_tok_s"] + grid)
    sweep = report.get("time_per_token")
    if sweep:
        print(f"\n### Time per output token vs L (ms per sentence's output token; beam {sweep['beam']}, batch "
              f"{sweep['batch_size']}; lengths outside the grid timed in {cfg['sweep_repeats']} repeat(s))\n")
        md_table(["system", *(f"L={L}" for L in sweep["lengths"])],
                 [[n, *(f"{v:.3f}" for v in ms)] for n, ms in sweep["ms_per_token"].items()])
    state = report.get("state_memory")
    if state:
        any_s = next(iter(state.values()))
        print(f"\n### Decoder state per sentence at L={any_s['length']} (KiB; beam {any_s['beam']}, "
              f"{any_s['sentences']} sentences, source length {any_s['src_len']}; measured in the generator's "
              "incremental_state after the last step, / (batch x beam))\n")
        md_table(["system", "grows with output (self-attn K/V)", "constant (LRN states)", "encoder-attn static",
                  "total", "formula: grows / constant / encoder"],
                 [[n, f"{s['grows'] / 1024:.1f}", f"{s['constant'] / 1024:.2f}", f"{s['encoder_static'] / 1024:.1f}",
                   f"{s['total'] / 1024:.1f}", f"{s['formula']['grows'] / 1024:.1f} / "
                   f"{s['formula']['constant'] / 1024:.2f} / {s['formula']['encoder_static'] / 1024:.1f}"]
                  for n, s in state.items()], "lrrrrl")
    for name, why in report["skipped"].items():
        print(f"Skipped {name}: {why}.")
    print_targets(report["targets"])


def plot(report: dict, path: str) -> None:
    """ms per output token against L, and the decoder state's parts per system."""
    from .plots import figure, save

    sweep, state, cfg = report.get("time_per_token"), report.get("state_memory"), report["config"]
    fig, axes = figure(1 + bool(state), 6, 4.3)
    for n, ms in (sweep or {}).get("ms_per_token", {}).items():
        axes[0].plot(sweep["lengths"], ms, marker="o", label=n)
    if sweep:
        axes[0].legend(fontsize=8)
    axes[0].set(xlabel="forced output length L (tokens)", ylabel="ms per output token (per sentence)",
                title=f"{cfg['device']} decoding, beam {(sweep or {}).get('beam')}, "
                      f"batch {(sweep or {}).get('batch_size')} ({cfg['size']})")
    axes[0].grid(alpha=0.3)
    if state:
        names, bottom = list(state), [0.0] * len(state)
        for part, label in (("grows", "self-attn K/V (grows)"), ("constant", "LRN states"),
                            ("encoder_static", "encoder-attn static")):
            vals = [state[n][part] / 1024 for n in names]
            axes[1].bar(names, vals, bottom=bottom, label=label)
            bottom = [b + v for b, v in zip(bottom, vals)]
        axes[1].set(ylabel="KiB per sentence-hypothesis",
                    title=f"decoder state at L={next(iter(state.values()))['length']}")
        axes[1].tick_params(axis="x", rotation=15)
        axes[1].legend(fontsize=8)
    save(fig, path)
