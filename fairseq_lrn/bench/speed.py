"""``--size tiny / iwslt / wmt``: training throughput and generation speed, measured in
interleaved repeats (``for repeat: for system:``) so that drift hits every system alike."""

from typing import Dict, List

from . import data
from .harness import interleaved

# (key, beam, batch size) of the generation measurements; greedy = beam 1.
GEN_CONFIGS = (("beam5_b1", 5, 1), ("beam5_b64", 5, 64), ("greedy_b1", 1, 1), ("greedy_b64", 1, 64))


def generation_sets(args, task) -> Dict[str, tuple]:
    """``{key: (batches, forced lengths, beam, batch size)}``: the fixed test batches of every
    generation config, forced to each batch's longest reference, or to each ``--forced-lengths``
    L (keys ``<config>_L<L>``)."""
    gen_sets = {}
    for key, beam, bs in ([] if args.skip_generation else GEN_CONFIGS):
        n = args.gen_sentences_b1 if bs == 1 else args.gen_sentences_b64
        batches, lengths = data.generation_batches(task, n, bs, seed=args.seed)
        if not args.forced_lengths:
            gen_sets[key] = (batches, lengths, beam, bs)
        for L in args.forced_lengths or []:
            gen_sets[f"{key}_L{L}"] = (batches, [L] * len(batches), beam, bs)
    return gen_sets


def measure(system, train_batches, warmup: int, gen_sets) -> dict:
    """One repeat for one system: warm-up + timed updates, then each generation config."""
    system.train_steps(train_batches[:warmup])
    timed = train_batches[warmup:]
    seconds = system.train_steps(timed)
    tokens = sum(int(b["ntokens"]) for b in timed)
    out = {"train_tok_s": tokens / sum(seconds), "train_step_s": seconds}
    for key, (batches, lengths, beam, _) in gen_sets.items():
        out[key] = system.time_generation(batches, beam, lengths)
    return out


def warm_up(system, train_batches, warmup: int, gen_sets, cuda: bool) -> None:
    """Untimed first calls. On CUDA every distinct batch once (Triton compiles kernels per
    class of shapes); on CPU the first training batch(es) and one batch-1 sentence per beam."""
    system.train_steps(train_batches if cuda else train_batches[:max(warmup, 1)])
    for batches, lengths, beam, bs in gen_sets.values():
        if bs > 1 and not cuda:
            continue
        n = len(batches) if cuda else 1
        system.generate(batches[:n], beam, lengths[:n])


def run_repeats(systems: Dict[str, object], train_batches, gen_sets, args) -> Dict[str, List[dict]]:
    """Warm every system up, then ``args.repeats`` interleaved repeats of :func:`measure`;
    ``{system: [one dict per repeat]}``."""
    cuda = args.device == "cuda"
    for s in systems.values():
        warm_up(s, train_batches, args.warmup_steps, gen_sets, cuda)
    return interleaved(systems, args.repeats, lambda r, name, s: measure(s, train_batches, args.warmup_steps, gen_sets),
                       line=lambda name, m: f"{name:<14s} train {m['train_tok_s']:9,.0f} tok/s  "
                       + "  ".join(f"{k} {m[k]:7.1f}" for k in gen_sets))
