"""``--size tiny / iwslt / wmt``: one run of the LRN vs lstm vs transformer benchmark: speed
(training and generation, interleaved repeats), ``--profile``, peak memory (a fresh process per
system), ``--quality``, then the report with its targets."""

import importlib.util
import os
from typing import Dict

import torch

from . import data, lrn_report, memory, profiling, quality, speed
from .harness import finish_report, start_run
from .lrn_systems import ALL_SYSTEMS, DEFAULT_SYSTEMS, PRESETS, build_systems
from .targets import LRN_FAMILY, evaluate, primary_lrn


def finish_args(parser, args) -> None:
    """Check ``benchmark_models.py``'s options for ``--size tiny / iwslt / wmt`` and fill in the
    preset's defaults (``--quick``: 1 repeat, 2 timed steps, few sentences)."""
    from . import transformer_lrn as tl

    if args.sweep_lengths is not None or args.state_length or args.no_wide:
        parser.error("--sweep-lengths / --state-length / --no-wide need a transformer-* --size")
    if args.systems is None:
        args.systems = list(DEFAULT_SYSTEMS)
    bad = [n for n in args.systems if n not in ALL_SYSTEMS]
    if bad:
        parser.error(f"systems {bad} need a transformer-* --size ({', '.join(tl.PRESETS)})")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    if args.data and not os.path.isdir(args.data):
        parser.error(f"--data {args.data!r} is not a directory")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        parser.error("--plot needs matplotlib: pip install matplotlib")
    if args.fp16 and args.device != "cuda":
        parser.error("--fp16 needs --device cuda")
    preset, dev = PRESETS[args.size], args.device
    args.max_tokens = args.max_tokens or preset.max_tokens[dev]
    args.train_steps = args.train_steps or preset.train_steps[dev]
    args.gen_sentences_b1 = args.gen_sentences_b1 or preset.gen_b1[dev]
    args.gen_sentences_b64 = args.gen_sentences_b64 or preset.gen_b64[dev]
    args.quality_max_tokens = args.quality_max_tokens or preset.quality_max_tokens
    if args.quick:
        args.repeats, args.train_steps = 1, min(args.train_steps, 2)
        args.gen_sentences_b1, args.gen_sentences_b64 = min(args.gen_sentences_b1, 2), 64


def speed_data(args, preset, work: str):
    """(data-bin, share all embeddings) of the speed measurements: ``--data`` or synthetic."""
    if args.data:
        share_all = preset.share_all and data.dictionaries_joined(
            args.data, args.source_lang or data.SRC, args.target_lang or data.TGT)
        return args.data, share_all
    data_bin = data.synthetic_bin(work, preset.vocab, {"train": preset.train_sentences,
                                                       "test": preset.test_sentences},
                                  preset.median_len, seed=args.seed)
    return data_bin, preset.share_all


def run(args, argv=None) -> dict:
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    start = start_run(args, load_note="other jobs share this machine, timings will be noisy" + (
        "" if args.threads == 1 else "; with fewer free cores than threads, --threads 1 may be faster"))
    work = start["work"]
    preset = PRESETS[args.size]
    data_bin, share_all = speed_data(args, preset, work)
    print(f"== data: {data_bin}" + ("" if args.data else " (synthetic: random Zipfian tokens, for speed only)"))

    skipped: Dict[str, str] = {}
    systems = build_systems(args, preset, data_bin, share_all, args.max_tokens, skipped)
    if not systems:
        raise SystemExit("no system can run here: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    data_task = next(iter(systems.values())).load_splits()
    train_batches = data.training_batches(data_task, args.max_tokens, args.warmup_steps + args.train_steps,
                                          seed=args.seed)
    gen_sets = speed.generation_sets(args, data_task)
    tokens = [int(b["ntokens"]) for b in train_batches]
    print(f"== systems: " + ", ".join(f"{n} ({s.params / 1e6:.2f}M params)" for n, s in systems.items())
          + "".join(f"; {n} skipped: {why}" for n, why in skipped.items()))
    print(f"== {len(train_batches)} fixed training batches ({min(tokens)}-{max(tokens)} target tokens), "
          f"{args.warmup_steps} warm-up + {args.train_steps} timed updates per repeat; "
          f"{args.repeats} repeats on {args.device} ({torch.get_num_threads()} threads)", flush=True)
    results = speed.run_repeats(systems, train_batches, gen_sets, args)

    profiles = []
    if args.profile is not None:
        for name in args.profile or [primary_lrn(list(systems))]:
            if name in systems:
                profiles.append(profiling.profile_system(systems[name], train_batches, args.profile_steps,
                                                         args.profile_rows))
    peak, method = {}, None
    if not args.no_memory:
        for name, s in systems.items():
            peak[name] = memory.peak_memory_in_fresh_process(name, s.argv, train_batches, args.device,
                                                             args.threads, work)
            method = peak[name]["method"] if peak[name]["peak_mib"] is not None else method

    report = lrn_report.build_report(args, argv, preset=preset, data_bin=data_bin, systems=systems,
                                     results=results, gen_sets=gen_sets, train_batches=train_batches,
                                     skipped=skipped, memory=peak, memory_method=method)
    if profiles:
        report["profile"] = profiles
    for s in systems.values():
        s.close()
    del systems

    if args.quality:
        report["quality"] = quality.run_quality(args, preset, work, skipped)
    report["targets"] = evaluate(report, LRN_FAMILY, args.device, args.size)
    return finish_report(report, args, t_start=start["t_start"], load_start=start["load_start"],
                         print_report=lrn_report.print_report, plot=lrn_report.plot)
