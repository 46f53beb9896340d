"""``--size transformer-*``: the timed cells (generation config x forced length, and the
time-per-token sweep), warm-up with the decoder-state measurement, and the interleaved repeats."""

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from . import data, decoding
from .harness import interleaved
from .speed import GEN_CONFIGS
from .transformer_lrn_systems import TPreset, system_shape


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
        sets[bs] = data.generation_batches(task, n, bs, seed=args.seed)[0]
    grid = [Cell(f"{key}_L{L}", beam, bs, L, sets[bs])
            for L in args.forced_lengths for key, beam, bs in GEN_CONFIGS]
    beam, bs = args.sweep_cell
    if bs not in sets:
        sets[bs] = data.generation_batches(task, max(bs, args.gen_sentences_b64), bs, seed=args.seed)[0][:1]
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


def run_repeats(systems: Dict[str, object], args, *, train_batches, grid: List[Cell], sweep: List[Cell],
                trains: Dict[str, bool], decodes: Dict[str, bool], t_start: float) -> Dict[str, List[dict]]:
    """``args.repeats`` interleaved repeats (``for repeat: for system:``) of :func:`measure`; the
    sweep's own cells in the first ``--sweep-repeats``. ``{system: [one dict per repeat]}``."""
    def measure_one(r, name, s):
        cells = (grid + (sweep if r < args.sweep_repeats else [])) if decodes[name] else []
        return measure(s, trains[name], train_batches, args.warmup_steps, cells)

    def line(name, m):
        return (f"{name:<22s} " + (f"train {m['train_tok_s']:8,.0f} tok/s  " if "train_tok_s" in m else "")
                + "  ".join(f"{c.key} {m[c.key]:.2f}" for c in grid if c.key in m))

    t_repeat = time.time()

    def estimate(r, results):
        if r == 0 and args.repeats > 1:
            sweep_s = sum(sum(int(b["nsentences"]) for b in c.batches) / m[c.key]
                          for m in (results[n][0] for n in systems) for c in sweep if c.key in m)
            per_repeat = time.time() - t_repeat - (sweep_s if args.sweep_repeats == 1 else 0)
            print(f"   ({time.time() - t_start:.0f} s so far; about {(args.repeats - 1) * per_repeat:.0f} s "
                  f"to go for the remaining {args.repeats - 1} repeat(s))", flush=True)

    return interleaved(systems, args.repeats, measure_one, line, after_repeat=estimate)
