#!/usr/bin/env python
"""Head-to-head benchmark: LRN vs fairseq's LSTM and Transformer, in one run, on this machine.

Systems (all built in-process with fairseq's own machinery, on the same data, at matched size):

* ``lrn-fused``     LRN, fused Triton recurrence (only with CUDA + Triton; skipped otherwise)
* ``lrn-cpu``       LRN, the PyTorch recurrence with a hand-written backward (``auto`` on CPU)
* ``lrn-reference`` LRN, the step-by-step autograd recurrence (the ground truth)
* ``olrn-fused``, ``olrn-cpu``  oLRN (``--lrn-output-gate``), only when named in ``--systems``;
                    the report adds its ratio to the LRN of the same implementation
* ``lstm``          fairseq's ``lstm``: bidirectional encoder, same layers / hidden / embedding
                    sizes; its decoder uses input feeding + attention (fairseq's defaults).
                    LRN does not feed inputs, which is what lets it run the decoder over all
                    target positions at once in training. (Attention differs too: LRN uses
                    the authors' additive attention, fairseq's lstm a dot product over projected
                    states; ``--lrn-args '--decoder-attention general'`` gives LRN the latter.)
* ``transformer``   fairseq's ``transformer``, layers/FFN chosen for LRN's parameter count

Measured, interleaved (``for repeat: for system:``) so drift hits every system alike:

* training throughput: target tokens/s over full fairseq updates (``Trainer.train_step``:
  forward, backward, clipping, Adam) on fixed pre-collected batches, after warm-up;
* peak training memory, in a fresh process per system (CUDA: max_memory_allocated; CPU: peak
  RSS delta);
* generation: sentences/s through fairseq's SequenceGenerator, beam 5 and greedy (beam 1), at
  batch 1 and batch 64, on fixed test sentences. Every hypothesis is forced to its batch's
  longest reference length, so untrained and trained models do the same decoding work;
* ``--quality``: BLEU (sacreBLEU) after training each system for the same wall-clock budget on
  the toy reordering task (or ``--data``), with BLEU-vs-time curves.

Prints markdown tables; ``--json`` / ``--plot`` save the numbers / a PNG. Examples:

    python scripts/benchmark_models.py                           # iwslt size, CPU: ~4-6 min
    python scripts/benchmark_models.py --size tiny --repeats 2   # smoke run, < 1 min
    python scripts/benchmark_models.py --quality --budget-seconds 120 --json b.json --plot b.png
    python scripts/benchmark_models.py --profile                 # + torch.profiler of an LRN step
    python scripts/benchmark_models.py --forced-lengths 30 150   # hypotheses forced to 30 and 150 tokens

``--size transformer-base-256`` (or ``transformer-tiny``) runs ``transformer_lrn`` against fairseq's
``transformer`` instead (scripts/bench/transformer_lrn.py: systems, targets, report):

    python scripts/benchmark_models.py --size transformer-base-256 --data DATA_BIN --plot tl.png
"""

import argparse
import datetime
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_utils as bu  # noqa: E402
from bench import transformer_lrn as tl  # noqa: E402
from bench_utils import fmt, fmt_spread, machine_info, paired_ratio, summary  # noqa: E402

DEFAULT_SYSTEMS = ("lrn-fused", "lrn-cpu", "lrn-reference", "lstm", "transformer")
OUTPUT_GATE_SYSTEMS = ("olrn-fused", "olrn-cpu")  # opt-in: --systems ... olrn-cpu
ALL_SYSTEMS = DEFAULT_SYSTEMS[:3] + OUTPUT_GATE_SYSTEMS + DEFAULT_SYSTEMS[3:]
LRN_IMPL = {"lrn-fused": "fused", "lrn-cpu": "cpu", "lrn-reference": "reference",
            "olrn-fused": "fused", "olrn-cpu": "cpu"}
IMPL_NOTE = {"fused": "Triton kernels", "cpu": "PyTorch loop with a hand-written backward, any device",
             "reference": "step-by-step autograd loop"}
GEN_CONFIGS = (("beam5_b1", 5, 1), ("beam5_b64", 5, 64), ("greedy_b1", 1, 1), ("greedy_b64", 1, 64))


@dataclass
class Preset:
    """Model size and workload of one ``--size``. Per-device values are ``{"cpu": .., "cuda": ..}``."""
    lrn_arch: str
    embed: int
    hidden: int
    encoder_layers: int
    decoder_layers: int
    dropout: float
    share_all: bool            # tie encoder, decoder and output embeddings (needs a joined dict)
    vocab: int                 # synthetic data: dictionary size
    median_len: float          # synthetic data: median source length (tokens)
    max_tokens: Dict[str, int]
    train_steps: Dict[str, int]
    gen_b1: Dict[str, int]     # sentences timed at batch 1
    gen_b64: Dict[str, int]    # sentences timed at batch 64
    lr: float = 2e-3
    warmup_updates: int = 200
    quality_max_tokens: int = 2000
    train_sentences: int = 4000
    test_sentences: int = 512


PRESETS = {
    "tiny": Preset("lrn", 32, 64, 2, 2, 0.1, False, vocab=256, median_len=8,
                   max_tokens={"cpu": 384, "cuda": 384}, train_steps={"cpu": 3, "cuda": 3},
                   gen_b1={"cpu": 4, "cuda": 4}, gen_b64={"cpu": 64, "cuda": 64},
                   lr=3e-3, warmup_updates=50, quality_max_tokens=1000,
                   train_sentences=600, test_sentences=128),
    # lrn_iwslt_de_en: emb 256, hidden 512, 2+2 layers, tied decoder embeddings; IWSLT-like data.
    "iwslt": Preset("lrn_iwslt_de_en", 256, 512, 2, 2, 0.2, False, vocab=8000, median_len=20,
                    max_tokens={"cpu": 2048, "cuda": 4096}, train_steps={"cpu": 4, "cuda": 20},
                    gen_b1={"cpu": 10, "cuda": 16}, gen_b64={"cpu": 64, "cuda": 128}),
    # lrn_wmt_en_de: emb 512, hidden 1024, 6+6 layers, all embeddings tied; GPU scale.
    "wmt": Preset("lrn_wmt_en_de", 512, 1024, 6, 6, 0.1, True, vocab=32000, median_len=26,
                  max_tokens={"cpu": 2048, "cuda": 8192}, train_steps={"cpu": 2, "cuda": 20},
                  gen_b1={"cpu": 4, "cuda": 16}, gen_b64={"cpu": 64, "cuda": 128},
                  lr=1e-3, warmup_updates=400, train_sentences=8000),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--size", choices=sorted(PRESETS) + list(tl.PRESETS), default="iwslt",
        help="model size preset (default: %(default)s); the transformer-* sizes run the transformer_lrn "
             "vs transformer benchmark (scripts/bench/transformer_lrn.py)")
    add("--systems", nargs="+", choices=ALL_SYSTEMS + tl.SYSTEMS, default=None,
        help="systems to run (default: all of the size's family except the oLRN ones, olrn-fused / "
             "olrn-cpu, which run on request; *-fused only where CUDA + Triton are available)")
    add("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    add("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    add("--data", help="a fairseq data-bin to use instead of the generated data (train + test splits)")
    add("--source-lang", default=None, help="with --data: source language (default: inferred)")
    add("--target-lang", default=None, help="with --data: target language (default: inferred)")
    add("--repeats", type=int, default=3, help="interleaved repeats (default: %(default)s)")
    add("--train-steps", type=int, help="timed training updates per repeat (default: per size/device)")
    add("--warmup-steps", type=int, default=1, help="untimed updates before each timed run (default: 1)")
    add("--max-tokens", type=int, help="tokens per training batch (default: per size/device)")
    add("--gen-sentences-b1", type=int, help="test sentences timed at batch 1 (default: per size/device)")
    add("--gen-sentences-b64", type=int, help="test sentences timed at batch 64 (default: per size/device)")
    add("--lrn-args", default="", metavar="'ARGS'",
        help="extra fairseq arguments for the LRN systems, e.g. '--decoder-attention general'")
    add("--skip-generation", action="store_true", help="measure training only")
    add("--fp16", action="store_true", help="mixed precision training (CUDA; fairseq --fp16)")
    add("--tf32", action="store_true", help="allow TF32 matrix products on CUDA (cuDNN, used by the "
        "lstm encoder, allows TF32 by default; plain matmuls do not)")
    add("--quick", action="store_true", help="1 repeat, 2 timed steps, few sentences: checks that it runs")
    add("--no-memory", action="store_true", help="skip the peak-memory probes (a fresh process per system)")
    add("--quality", action="store_true",
        help="also train each system for --budget-seconds on the toy reordering task (or --data) and "
             "report BLEU and BLEU-vs-time curves")
    add("--budget-seconds", type=float, default=60.0, help="--quality: training time per system (default: 60)")
    add("--quality-points", type=int, default=5, help="--quality: BLEU evaluations per system (default: 5)")
    add("--quality-max-tokens", type=int, help="--quality: tokens per batch (default: per size)")
    add("--profile", nargs="*", metavar="SYSTEM", choices=ALL_SYSTEMS,
        help="torch.profiler on training steps of these systems (none named: the LRN that 'auto' "
             "picks) and print the top ops")
    add("--profile-steps", type=int, default=2, help="updates profiled (default: %(default)s)")
    add("--profile-rows", type=int, default=25, help="rows of the profile tables (default: %(default)s)")
    add("--json", help="write all numbers here")
    add("--plot", help="write a PNG here (matplotlib)")
    add("--work-dir", help="data and scratch files (default: a temporary folder)")
    add("--seed", type=int, default=1)
    add("--forced-lengths", nargs="+", type=int, metavar="L",
        help="force every hypothesis to exactly L tokens (min_len = max_len = L), one set of generation "
             "columns per L (default: each batch's longest reference; transformer-* sizes: 30 150)")
    tl.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.size in tl.PRESETS:
        tl.finish_args(parser, args)
        return args
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
    preset = PRESETS[args.size]
    dev = args.device
    args.max_tokens = args.max_tokens or preset.max_tokens[dev]
    args.train_steps = args.train_steps or preset.train_steps[dev]
    args.gen_sentences_b1 = args.gen_sentences_b1 or preset.gen_b1[dev]
    args.gen_sentences_b64 = args.gen_sentences_b64 or preset.gen_b64[dev]
    args.quality_max_tokens = args.quality_max_tokens or preset.quality_max_tokens
    if args.quick:
        args.repeats, args.train_steps = 1, min(args.train_steps, 2)
        args.gen_sentences_b1, args.gen_sentences_b64 = min(args.gen_sentences_b1, 2), 64
    return args


# ----------------------------------------------------------------------------- system specs

@dataclass
class Spec:
    """A system's name, fairseq-train argument list and a note for the report."""
    name: str
    argv: List[str]
    note: str = ""


def common_args(args, preset: Preset, data_bin: str, share_all: bool, max_tokens: int) -> List[str]:
    langs = []
    if args.data:
        for flag, value in (("--source-lang", args.source_lang), ("--target-lang", args.target_lang)):
            langs += [flag, value] if value else []
    else:
        langs = ["--source-lang", bu.SRC, "--target-lang", bu.TGT]
    return [
        data_bin, "--user-dir", bu.USER_DIR, "--task", "translation", *langs,
        "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
        "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--clip-norm", "1.0",
        "--lr", str(preset.lr), "--lr-scheduler", "inverse_sqrt", "--warmup-updates",
        str(preset.warmup_updates), "--warmup-init-lr", "1e-07",
        "--max-tokens", str(max_tokens), "--dropout", str(preset.dropout), "--seed", str(args.seed),
        "--num-workers", "0", "--no-progress-bar", "--log-format", "simple",
        *(["--share-all-embeddings"] if share_all else ["--share-decoder-input-output-embed"]),
        *(["--cpu"] if args.device == "cpu" else []), *(["--fp16"] if args.fp16 else []),
    ]


def rnn_dims(p: Preset) -> List[str]:
    return ["--encoder-embed-dim", str(p.embed), "--decoder-embed-dim", str(p.embed),
            "--decoder-out-embed-dim", str(p.embed), "--encoder-hidden-size", str(p.hidden),
            "--decoder-hidden-size", str(p.hidden), "--encoder-layers", str(p.encoder_layers),
            "--decoder-layers", str(p.decoder_layers), "--encoder-bidirectional"]


def transformer_layer_params(E: int, F: int) -> int:
    """Parameters of one fairseq post-norm encoder layer + one decoder layer (model dim E, FFN F)."""
    encoder = 4 * E * E + 2 * E * F + 9 * E + F      # self-attn (+bias), FFN, 2 LayerNorms
    decoder = 8 * E * E + 2 * E * F + 15 * E + F     # + cross-attn, 3 LayerNorms
    return encoder + decoder


def match_transformer(lrn_params: int, embedding_params: int, E: int):
    """(layers, ffn) of a transformer with model dim E whose parameter count is closest to
    ``lrn_params`` (same embeddings); FFN 4E preferred on ties."""
    body = lrn_params - embedding_params
    candidates = [(abs(n * transformer_layer_params(E, F) - body), -F, n, F)
                  for F in (4 * E, 2 * E) for n in range(1, 13)]
    _, _, layers, ffn = min(candidates)
    return layers, ffn


def embedding_params(model) -> int:
    """Parameters of the token embeddings and output projection (tied ones counted once)."""
    mods = [model.encoder.embed_tokens, model.decoder.embed_tokens,
            getattr(model.decoder, "output_projection", None)]
    params = {id(p): p for m in mods if m is not None for p in m.parameters()}
    return sum(p.numel() for p in params.values())


def make_specs(args, preset: Preset, data_bin: str, share_all: bool, max_tokens: int,
               transformer_shape=None) -> List[Spec]:
    """fairseq-train argument lists of the requested systems (transformer: ``(layers, ffn)``)."""
    base = common_args(args, preset, data_bin, share_all, max_tokens)
    specs = []
    for name in args.systems:
        if name in LRN_IMPL:
            gate = ["--lrn-output-gate"] if name in OUTPUT_GATE_SYSTEMS else []
            specs.append(Spec(name, base + ["--arch", preset.lrn_arch, *rnn_dims(preset),
                                            "--lrn-impl", LRN_IMPL[name], *gate, *shlex.split(args.lrn_args)],
                              ("oLRN (--lrn-output-gate), " if gate else "")
                              + f"--lrn-impl {LRN_IMPL[name]} ({IMPL_NOTE[LRN_IMPL[name]]}); first encoder layer "
                              "bidirectional; additive attention; no input feeding"
                              + (f"; {args.lrn_args}" if args.lrn_args else "")))
        elif name == "lstm":
            specs.append(Spec(name, base + ["--arch", "lstm", *rnn_dims(preset), "--decoder-attention", "1"],
                              "fairseq lstm: every encoder layer bidirectional; decoder with input feeding and "
                              "dot-product attention over projected states (fairseq defaults)"))
        elif name == "transformer":
            layers, ffn = transformer_shape
            heads = max(2, preset.embed // 64)
            specs.append(Spec(name, base + [
                "--arch", "transformer", "--encoder-embed-dim", str(preset.embed),
                "--decoder-embed-dim", str(preset.embed), "--encoder-ffn-embed-dim", str(ffn),
                "--decoder-ffn-embed-dim", str(ffn), "--encoder-layers", str(layers),
                "--decoder-layers", str(layers), "--encoder-attention-heads", str(heads),
                "--decoder-attention-heads", str(heads)],
                f"fairseq transformer {layers}+{layers} layers, dim {preset.embed}, ffn {ffn}, {heads} heads "
                "(sized to LRN's parameter count)"))
    return specs


def available(name: str, device: str) -> Optional[str]:
    """None if the system can run here, else why not."""
    if name in ("lrn-fused", "olrn-fused"):
        from fairseq_lrn.ops import triton_available

        if device != "cuda":
            return "needs CUDA (the fused Triton kernels run on GPUs)"
        if not triton_available():
            return "needs Triton (pip install triton)"
    return None


def transformer_shape_for(args, preset, data_bin, share_all, max_tokens, built: Dict[str, "bu.System"]):
    """Size the transformer on an LRN model's parameter count (building one if none is built)."""
    lrn = next((s for n, s in built.items() if n in LRN_IMPL), None)
    if lrn is not None:
        return match_transformer(lrn.params, embedding_params(lrn.model), preset.embed)
    probe = argparse.Namespace(**{**vars(args), "systems": ["lrn-cpu"]})
    spec = make_specs(probe, preset, data_bin, share_all, max_tokens)[0]
    _, cfg = bu.parse_fairseq_args(spec.argv)
    from fairseq import tasks

    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    shape = match_transformer(bu.count_params(model), embedding_params(model), preset.embed)
    del model
    return shape


def build_systems(args, preset, data_bin, share_all, max_tokens, skipped: Dict[str, str]):
    """Build every available system (LRNs first, so the transformer can be sized on them)."""
    order = sorted(args.systems, key=lambda n: (n == "transformer", ALL_SYSTEMS.index(n)))
    runnable = []
    for name in order:
        why = available(name, args.device)
        if why:
            skipped[name] = why
        else:
            runnable.append(name)
    built: Dict[str, bu.System] = {}
    shape = None
    for name in runnable:
        if name == "transformer":
            shape = transformer_shape_for(args, preset, data_bin, share_all, max_tokens, built)
        sub = argparse.Namespace(**{**vars(args), "systems": [name]})
        spec = make_specs(sub, preset, data_bin, share_all, max_tokens, shape)[0]
        built[name] = bu.System(spec.name, spec.argv, spec.note)
    return {n: built[n] for n in args.systems if n in built}


# ----------------------------------------------------------------------------- measuring

def measure(system: bu.System, train_batches, warmup: int, gen_sets) -> dict:
    """One repeat for one system: warm-up + timed updates, then each generation config."""
    system.train_steps(train_batches[:warmup])
    timed = train_batches[warmup:]
    seconds = system.train_steps(timed)
    tokens = sum(int(b["ntokens"]) for b in timed)
    out = {"train_tok_s": tokens / sum(seconds), "train_step_s": seconds}
    for key, (batches, lengths, beam, _) in gen_sets.items():
        out[key] = system.time_generation(batches, beam, lengths)
    return out


def warm_up(system: bu.System, train_batches, warmup: int, gen_sets, cuda: bool) -> None:
    """Untimed first calls. On CUDA every distinct batch once (Triton compiles kernels per
    class of shapes); on CPU the first training batch(es) and one batch-1 sentence per beam."""
    system.train_steps(train_batches if cuda else train_batches[:max(warmup, 1)])
    for batches, lengths, beam, bs in gen_sets.values():
        if bs > 1 and not cuda:
            continue
        n = len(batches) if cuda else 1
        system.generate(batches[:n], beam, lengths[:n])


def memory_probe(system_name: str, argv: List[str], batches, device: str, threads, work: str) -> dict:
    """Peak training memory of one system in a fresh process (see bench_utils.memory_probe)."""
    # The batch with the most tokens (source + target), twice: Adam state exists in the second.
    big = max(batches, key=lambda b: b["net_input"]["src_tokens"].numel() + b["target"].numel())
    path = os.path.join(work, f"probe-{system_name}.pt")
    torch.save([big, big], path)
    spec = os.path.join(work, f"probe-{system_name}.json")
    with open(spec, "w") as f:
        json.dump({"name": system_name, "argv": argv, "batches": path, "device": device,
                   "threads": threads}, f)
    proc = subprocess.run([sys.executable, os.path.join(bu.HERE, "bench_utils.py"), "memory-probe", spec],
                          capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("MEMORY_PROBE "):
            return json.loads(line[len("MEMORY_PROBE "):])
    return {"peak_mib": None, "method": "probe failed: " + (proc.stderr or "")[-500:]}


# ----------------------------------------------------------------------------- profiling

def _label_modules(model, depth: int = 3):
    """Forward hooks that wrap each submodule (up to ``depth`` dots) in a profiler range."""
    handles = []
    for name, module in model.named_modules():
        if not name or name.count(".") >= depth or isinstance(module, torch.nn.ModuleList):
            continue

        def pre(mod, _inputs, label=f"fwd:{name}"):
            mod.__dict__.setdefault("_bench_ranges", []).append(
                torch.autograd.profiler.record_function(label).__enter__())

        def post(mod, _inputs, _output):
            ranges = mod.__dict__.get("_bench_ranges")
            if ranges:
                ranges.pop().__exit__(None, None, None)
        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    return handles


def profile_system(system: bu.System, batches, steps: int, rows: int) -> dict:
    """torch.profiler over ``steps`` training updates; prints and returns the top ops."""
    from torch.profiler import ProfilerActivity, profile

    cuda = system.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    system.train_steps(batches[:1])  # warm
    handles = _label_modules(system.model)
    try:
        with profile(activities=activities, record_shapes=True) as prof:
            start = time.perf_counter()
            system.train_steps(batches[:steps])
            wall = time.perf_counter() - start
    finally:
        for h in handles:
            h.remove()
    events = prof.key_averages()
    ms = lambda us: us / 1e3  # noqa: E731

    def self_time(e, kind):
        names = ("self_cpu_time_total",) if kind == "cpu" else ("self_device_time_total", "self_cuda_time_total")
        for attr in names:  # torch renamed the CUDA field to "device" in 2.4
            value = getattr(e, attr, None)
            if value is not None:
                return value
        return 0

    def top(kind):
        ranked = sorted((e for e in events if not e.key.startswith(("fwd:", "ProfilerStep"))),
                        key=lambda e: self_time(e, kind), reverse=True)[:rows]
        return [{"op": e.key, "calls": e.count, "self_ms": ms(self_time(e, kind)),
                 "total_ms": ms(e.cpu_time_total)} for e in ranked]

    phases = {e.key: ms(e.cpu_time_total) for e in events
              if e.key in ("forward", "backward", "clip-grads", "optimizer", "multiply-grads")}
    modules = sorted(((e.key[4:], ms(e.cpu_time_total), e.count) for e in events if e.key.startswith("fwd:")),
                     key=lambda m: -m[1])
    result = {"system": system.name, "steps": steps, "wall_ms": wall * 1e3, "phases_ms": phases,
              "forward_by_module_ms": [{"module": m, "total_ms": t, "calls": c} for m, t, c in modules],
              "top_self_cpu": top("cpu")}
    if cuda:
        result["top_self_device"] = top("device")

    print(f"\n### Profile: {system.name}, {steps} training updates, {wall * 1e3:.0f} ms wall "
          f"(profiler overhead included)\n")
    print("phases (ms, inclusive): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))
    print("\nforward time by module (ms, inclusive; children nest inside parents):")
    for m, t, c in modules:
        print(f"  {m:<40s} {t:9.1f}  ({c} calls)")
    for key, title in (("top_self_cpu", "self CPU"), ("top_self_device", "self CUDA")):
        if key not in result:
            continue
        print(f"\ntop {rows} ops by {title} time:\n")
        print("| op | calls | self ms | total ms |\n|---|---:|---:|---:|")
        for r in result[key]:
            print(f"| {r['op']} | {r['calls']} | {r['self_ms']:.1f} | {r['total_ms']:.1f} |")
    return result


# ----------------------------------------------------------------------------- quality

def run_quality(args, preset: Preset, work: str, skipped: Dict[str, str]) -> dict:
    """Train fresh systems for the same wall-clock budget, interleaved in slices of
    budget / points seconds, scoring BLEU on the test split after each slice."""
    if args.data:
        data_bin = args.data
        share_all = preset.share_all and bu.dictionaries_joined(
            data_bin, args.source_lang or bu.SRC, args.target_lang or bu.TGT)
    else:
        data_bin = bu.make_toy_bin(work, seed=args.seed, joined=preset.share_all)
        share_all = preset.share_all
    print(f"\n== quality: {args.budget_seconds:g} s of training per system on "
          f"{'--data ' + data_bin if args.data else 'the toy reordering task'}, "
          f"BLEU (beam 5) every {args.budget_seconds / args.quality_points:g} s", flush=True)
    systems = build_systems(args, preset, data_bin, share_all, args.quality_max_tokens, dict(skipped))
    state = {}
    for name, s in systems.items():
        task = s.load_splits()
        epoch_itr = task.get_batch_iterator(
            dataset=task.dataset("train"), max_tokens=args.quality_max_tokens, max_positions=None,
            ignore_invalid_inputs=True, seed=args.seed, num_workers=0, epoch=1)
        state[name] = {"epoch_itr": epoch_itr, "itr": epoch_itr.next_epoch_itr(shuffle=True),
                       "seconds": 0.0, "updates": 0, "tokens": 0, "curve": []}
    slice_s = args.budget_seconds / args.quality_points
    for point in range(1, args.quality_points + 1):
        for name, s in systems.items():
            st = state[name]
            while st["seconds"] < point * slice_s:
                start = time.perf_counter()
                try:
                    sample = next(st["itr"])
                except StopIteration:
                    st["itr"] = st["epoch_itr"].next_epoch_itr(shuffle=True)
                    sample = next(st["itr"])
                s.train_steps([sample])
                st["seconds"] += time.perf_counter() - start
                st["updates"] += 1
                st["tokens"] += int(sample["ntokens"])
            bleu = bu.bleu_on_split(s, s.task)
            st["curve"].append({"seconds": st["seconds"], "updates": st["updates"],
                                "epoch": st["epoch_itr"].epoch, "bleu": bleu})
            print(f"   {name:<14s} {st['seconds']:7.1f} s  {st['updates']:6d} updates  BLEU {bleu:6.2f}",
                  flush=True)
    out = {name: {"params": systems[name].params, "bleu": st["curve"][-1]["bleu"], "curve": st["curve"],
                  "updates": st["updates"], "tokens": st["tokens"]} for name, st in state.items()}
    for s in systems.values():
        s.close()
    return {"data": data_bin, "budget_seconds": args.budget_seconds, "max_tokens": args.quality_max_tokens,
            "systems": out}


# ----------------------------------------------------------------------------- report

def primary_lrn(systems: List[str]) -> Optional[str]:
    for name in ("lrn-fused", "lrn-cpu", "lrn-reference"):
        if name in systems:
            return name
    return None


def check_targets(report: dict, device: str, size: str) -> List[dict]:
    """The issue's targets, as measured ratios (benchmarks, not tests)."""
    ratios = report["ratios"]
    rows = []

    def add(what, value, target):
        if value is not None:
            rows.append({"what": what, "value": value, "target": target, "met": value >= target})

    if device == "cpu":
        lrn = "lrn-cpu"
        add("train tok/s: lrn-cpu / lstm", (ratios.get(f"{lrn}/lstm") or {}).get("train_tok_s"), 1.8)
        for key in report["config"]["gen_configs"]:
            add(f"{key} sent/s: lrn-cpu / lstm", (ratios.get(f"{lrn}/lstm") or {}).get(key), 1.3)
    else:
        add("train tok/s: lrn-fused / lstm", (ratios.get("lrn-fused/lstm") or {}).get("train_tok_s"), 2.5)
        add("train tok/s: lrn-fused / lrn-reference",
            (ratios.get("lrn-fused/lrn-reference") or {}).get("train_tok_s"), 1.5)
    q = report.get("quality")
    if q:
        lrn = primary_lrn(list(q["systems"]))
        if lrn and "lstm" in q["systems"]:
            diff = q["systems"][lrn]["bleu"] - q["systems"]["lstm"]["bleu"]
            rows.append({"what": f"BLEU {lrn} - lstm after {q['budget_seconds']:g} s", "value": diff,
                         "target": 0.0, "met": diff >= 0})
    if size != "iwslt":
        for r in rows:
            r["what"] += f" (targets are set at --size iwslt; this is {size})"
    return rows


def print_report(report: dict) -> None:
    cfg, systems = report["config"], report["systems"]
    print(f"\n## Results: --size {cfg['size']} on {cfg['device']} "
          f"({report['machine'].get('gpu') or report['machine'].get('cpu')}, "
          f"{report['machine']['torch_threads']} threads), {cfg['repeats']} interleaved repeats; "
          "median (min-max)\n")
    lstm = systems.get("lstm")
    gen_keys = cfg["gen_configs"] or [key for key, _, _ in GEN_CONFIGS]
    header = ("| system | params | train tok/s | x lstm | peak mem MiB | "
              + " | ".join(k.replace("_", " ") for k in gen_keys) + " | BLEU |")
    print(header)
    print("|" + "---|" + "---:|" * (header.count("|") - 2))
    quality = (report.get("quality") or {}).get("systems", {})
    for name, s in systems.items():
        ratio = report["ratios"].get(f"{name}/lstm", {}).get("train_tok_s") if lstm and name != "lstm" else None
        gens = " | ".join(fmt_spread(s[key], 1) if key in s else "-" for key in gen_keys)
        bleu = quality.get(name, {}).get("bleu")
        print(f"| {name} | {s['params'] / 1e6:.2f}M | {fmt_spread(s['train_tok_s'])} | "
              f"{'-' if ratio is None else f'{ratio:.2f}'} | {fmt(s.get('peak_mem_mib'))} | {gens} | "
              f"{fmt(bleu, 2)} |")
    print("\nGeneration columns: sentences/s through fairseq's SequenceGenerator (greedy = beam 1), "
          f"{cfg['gen_sentences_b1']} random test sentences at batch 1, the {cfg['gen_sentences_b64']} "
          "of median length at batch 64; every hypothesis is forced to "
          + (f"L tokens (columns _L<L>)" if cfg.get("forced_lengths") else "its batch's longest reference length")
          + ", so untrained models do a trained model's decoding work.")
    print(f"Training: target tokens/s over {cfg['train_steps']} full fairseq updates per repeat "
          f"(max {cfg['max_tokens']} tokens per batch; {cfg['warmup_steps']} warm-up update(s) excluded).")
    if report.get("memory_method"):
        print(f"Peak memory: {report['memory_method']}, in a fresh process per system "
              "(parameters + gradients + Adam state + activations).")
    for name, why in report["skipped"].items():
        print(f"Skipped {name}: {why}.")
    for name, s in systems.items():
        print(f"- {name}: {s['note']}")
    if report["ratios"]:
        print("\n### Ratios (per-repeat ratios, median (min-max))\n")
        keys = ["train_tok_s"] + cfg["gen_configs"]
        print("| pair | " + " | ".join(keys) + " |")
        print("|---|" + "---:|" * len(keys))
        for pair, r in report["ratios"].items():
            cells = " | ".join(f"{r[k]:.2f} ({r['spread'][k][0]:.2f}-{r['spread'][k][1]:.2f})"
                               for k in keys)
            print(f"| {pair} | {cells} |")
    if report["targets"]:
        print("\n### Targets (benchmarks, not tests)\n")
        print("| what | measured | target | met |\n|---|---:|---:|---|")
        for t in report["targets"]:
            unit = " BLEU" if t["what"].startswith("BLEU") else "x"
            print(f"| {t['what']} | {t['value']:.2f}{unit} | >= {t['target']:g}{unit} | "
                  f"{'yes' if t['met'] else 'NO'} |")
    if report.get("quality"):
        q = report["quality"]
        print(f"\n### Quality: BLEU after {q['budget_seconds']:g} s of training each ({q['data']})\n")
        print("| system | params | updates | BLEU curve (seconds: BLEU) |\n|---|---:|---:|---|")
        for name, s in q["systems"].items():
            curve = ", ".join(f"{p['seconds']:.0f}: {p['bleu']:.1f}" for p in s["curve"])
            print(f"| {name} | {s['params'] / 1e6:.2f}M | {s['updates']} | {curve} |")


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = report["systems"]
    names = list(systems)
    has_quality = bool(report.get("quality"))
    gen_keys = report["config"]["gen_configs"]
    ncols = 1 + bool(gen_keys) + has_quality
    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 4.2), squeeze=False)
    axes = list(axes[0])
    med = [systems[n]["train_tok_s"]["median"] for n in names]
    err = [[m - systems[n]["train_tok_s"]["min"] for n, m in zip(names, med)],
           [systems[n]["train_tok_s"]["max"] - m for n, m in zip(names, med)]]
    ax = axes[0]
    ax.bar(names, med, yerr=err, capsize=4, color="tab:blue")
    ax.set_ylabel("target tokens / s")
    ax.set_title(f"training throughput ({report['config']['device']}, {report['config']['size']})")
    ax.tick_params(axis="x", rotation=20)
    if gen_keys:
        ax = axes[1]
        width = 0.8 / len(gen_keys)
        for k, key in enumerate(gen_keys):
            vals = [systems[n][key]["median"] for n in names]
            ax.bar([i + (k - (len(gen_keys) - 1) / 2) * width for i in range(len(names))], vals, width,
                   label=key.replace("_", " "))
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=20)
        ax.set_yscale("log")
        ax.set_ylabel("sentences / s (log)")
        ax.set_title("generation (SequenceGenerator)")
        bottom, top = ax.get_ylim()
        ax.set_ylim(bottom, top * 6)  # room for the legend above the bars
        ax.legend(fontsize=8, ncol=2, loc="upper center")
    if has_quality:
        ax = axes[-1]
        for name, s in report["quality"]["systems"].items():
            ax.plot([0] + [p["seconds"] for p in s["curve"]], [0] + [p["bleu"] for p in s["curve"]],
                    marker="o", label=name)
        ax.set_xlabel("training wall-clock (s)")
        ax.set_ylabel("BLEU (test)")
        ax.set_title("BLEU vs training time")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- main

def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.size in tl.PRESETS:
        return tl.main(args, argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    t_start = time.time()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    if load_start and args.device == "cpu":
        load, cores = load_start[0], os.cpu_count() or 1
        if load > 0.5 * cores:
            print(f"!! load average {load:.1f} on {cores} cores: other jobs share this machine, timings "
                  "will be noisy" + ("" if args.threads == 1 else
                                     "; with fewer free cores than threads, --threads 1 may be faster"))
    preset = PRESETS[args.size]
    work = args.work_dir or tempfile.mkdtemp(prefix="lrn-bench-")
    os.makedirs(work, exist_ok=True)
    cuda = args.device == "cuda"
    if args.data:
        data_bin = args.data
        share_all = preset.share_all and bu.dictionaries_joined(
            data_bin, args.source_lang or bu.SRC, args.target_lang or bu.TGT)
    else:
        data_bin = bu.make_synthetic_bin(
            os.path.join(work, f"synthetic-{args.size}-v{preset.vocab}-s{args.seed}"), preset.vocab,
            {"train": preset.train_sentences, "test": preset.test_sentences}, preset.median_len, seed=args.seed)
        share_all = preset.share_all
    print(f"== data: {data_bin}" + ("" if args.data else " (synthetic: random Zipfian tokens, for speed only)"))

    skipped: Dict[str, str] = {}
    systems = build_systems(args, preset, data_bin, share_all, args.max_tokens, skipped)
    if not systems:
        raise SystemExit("no system can run here: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    first = next(iter(systems.values()))
    n_batches = args.warmup_steps + args.train_steps
    data_task = first.load_splits()
    train_batches = bu.training_batches(data_task, args.max_tokens, n_batches, seed=args.seed)
    gen_sets = {}
    for key, beam, bs in ([] if args.skip_generation else GEN_CONFIGS):
        n = args.gen_sentences_b1 if bs == 1 else args.gen_sentences_b64
        batches, lengths = bu.generation_batches(data_task, n, bs, seed=args.seed)
        if not args.forced_lengths:
            gen_sets[key] = (batches, lengths, beam, bs)
        for L in args.forced_lengths or []:
            gen_sets[f"{key}_L{L}"] = (batches, [L] * len(batches), beam, bs)
    tokens = [int(b["ntokens"]) for b in train_batches]
    print(f"== systems: " + ", ".join(f"{n} ({s.params / 1e6:.2f}M params)" for n, s in systems.items())
          + "".join(f"; {n} skipped: {why}" for n, why in skipped.items()))
    print(f"== {len(train_batches)} fixed training batches ({min(tokens)}-{max(tokens)} target tokens), "
          f"{args.warmup_steps} warm-up + {args.train_steps} timed updates per repeat; "
          f"{args.repeats} repeats on {args.device} ({torch.get_num_threads()} threads)", flush=True)

    for s in systems.values():
        warm_up(s, train_batches, args.warmup_steps, gen_sets, cuda)
    results: Dict[str, List[dict]] = {n: [] for n in systems}
    for r in range(args.repeats):
        for name, s in systems.items():
            t0 = time.perf_counter()
            m = measure(s, train_batches, args.warmup_steps, gen_sets)
            results[name].append(m)
            print(f"   repeat {r + 1}/{args.repeats} {name:<14s} train {m['train_tok_s']:9,.0f} tok/s  "
                  + "  ".join(f"{k} {m[k]:7.1f}" for k in gen_sets)
                  + f"  ({time.perf_counter() - t0:.1f} s)", flush=True)

    profiles = []
    if args.profile is not None:
        targets = args.profile or [primary_lrn(list(systems))]
        for name in targets:
            if name in systems:
                profiles.append(profile_system(systems[name], train_batches, args.profile_steps,
                                               args.profile_rows))

    memory, method = {}, None
    if not args.no_memory:
        for name, s in systems.items():
            memory[name] = memory_probe(name, s.argv, train_batches, args.device, args.threads, work)
            method = memory[name]["method"] if memory[name]["peak_mib"] is not None else method

    report = {
        "command": " ".join([os.path.basename(sys.argv[0])] + (argv if argv is not None else sys.argv[1:])),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(args),
        "config": {"size": args.size, "preset": asdict(preset), "device": args.device,
                   "repeats": args.repeats, "train_steps": args.train_steps,
                   "warmup_steps": args.warmup_steps, "max_tokens": args.max_tokens,
                   "gen_sentences_b1": args.gen_sentences_b1, "gen_sentences_b64": args.gen_sentences_b64,
                   "gen_configs": list(gen_sets), "forced_lengths": args.forced_lengths, "fp16": args.fp16, "tf32": args.tf32,
                   "data": data_bin, "synthetic_data": not args.data,
                   "train_batch_target_tokens": tokens},
        "skipped": skipped, "memory_method": method, "systems": {}, "ratios": {},
    }
    for name, s in systems.items():
        runs = results[name]
        entry = {"params": s.params, "note": s.note, "argv": s.argv,
                 "train_tok_s": summary([m["train_tok_s"] for m in runs]),
                 "train_step_s": [m["train_step_s"] for m in runs],
                 "peak_mem_mib": memory.get(name, {}).get("peak_mib")}
        for key in gen_sets:
            entry[key] = summary([m[key] for m in runs])
        report["systems"][name] = entry
    pairs = [(n, "lstm") for n in systems if n != "lstm"]
    if "lrn-reference" in systems:
        pairs += [(n, "lrn-reference") for n in ("lrn-fused", "lrn-cpu") if n in systems]
    pairs += [(f"o{n}", n) for n in ("lrn-fused", "lrn-cpu") if n in systems and f"o{n}" in systems]
    for a, b in pairs:
        per = {k: paired_ratio(results, a, b, k) for k in ["train_tok_s", *gen_sets]}
        if all(v is not None for v in per.values()):
            report["ratios"][f"{a}/{b}"] = {**{k: v["median"] for k, v in per.items()},
                                            "spread": {k: (v["min"], v["max"]) for k, v in per.items()}}
    if profiles:
        report["profile"] = profiles
    for s in systems.values():
        s.close()
    del systems

    if args.quality:
        report["quality"] = run_quality(args, preset, work, skipped)
    report["targets"] = check_targets(report, args.device, args.size)
    return bu.finish_report(report, args, t_start=t_start, load_start=load_start,
                            print_report=print_report, plot=plot)


if __name__ == "__main__":
    main()
