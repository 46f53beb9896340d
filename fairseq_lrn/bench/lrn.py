"""``--size tiny / iwslt / wmt`` of ``benchmark_models.py``, as data for :mod:`.translation`:
the LRN implementations against fairseq's lstm and a transformer sized on LRN's parameter count;
their sizes; the ratios; the report's columns and figure; and the measurements after the
repeats: ``--profile``, peak memory (a fresh process per system), ``--quality``."""

import shlex
from dataclasses import dataclass
from typing import Dict, List

from . import memory, profiling, quality
from .shapes import closest, rnn_flags, transformer_flags
from .stats import fmt, fmt_spread, md_table, print_ratios, print_targets, summary
from .systems import System, build_model, count_params
from .targets import LRN_FAMILY as FAMILY, primary_lrn
from .translation import GEN_CONFIGS, recipe

DEFAULT_SYSTEMS = ("lrn-fused", "lrn-cpu", "lrn-reference", "lstm", "transformer")
OUTPUT_GATE_SYSTEMS = ("olrn-fused", "olrn-cpu")  # opt-in: --systems ... olrn-cpu
SYSTEMS = ALL_SYSTEMS = DEFAULT_SYSTEMS[:3] + OUTPUT_GATE_SYSTEMS + DEFAULT_SYSTEMS[3:]
LRN_IMPL = {"lrn-fused": "fused", "lrn-cpu": "cpu", "lrn-reference": "reference",
            "olrn-fused": "fused", "olrn-cpu": "cpu"}
IMPL_NOTE = {"fused": "Triton kernels", "cpu": "PyTorch loop with a hand-written backward, any device",
             "reference": "step-by-step autograd loop"}
LENGTH_MAJOR, REQUIRE_ALL, STEP_TIMES, QUICK_B1 = False, True, True, 2
WARM_EVERY_BATCH = True  # on CUDA (Triton compiles the fused kernels per class of shapes)


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


# ----------------------------------------------------------------------------- options

def check_args(parser, args) -> None:
    if args.sweep_lengths is not None or args.state_length or args.no_wide:
        parser.error("--sweep-lengths / --state-length / --no-wide need a transformer-* --size")
    if args.fp16 and args.device != "cuda":
        parser.error("--fp16 needs --device cuda")


def wrong_systems(args, bad) -> str:
    from .transformer_lrn import PRESETS as TL_PRESETS

    return f"systems {bad} need a transformer-* --size ({', '.join(TL_PRESETS)})"


def finish_args(parser, args) -> None:
    args.quality_max_tokens = args.quality_max_tokens or PRESETS[args.size].quality_max_tokens


# ----------------------------------------------------------------------------- systems

def transformer_layer_params(E: int, F: int) -> int:
    """Parameters of one fairseq post-norm encoder layer + one decoder layer (model dim E, FFN F)."""
    encoder = 4 * E * E + 2 * E * F + 9 * E + F      # self-attn (+bias), FFN, 2 LayerNorms
    decoder = 8 * E * E + 2 * E * F + 15 * E + F     # + cross-attn, 3 LayerNorms
    return encoder + decoder


def match_transformer(lrn_params: int, embedding_params: int, E: int):
    """(layers, ffn) of a transformer with model dim E whose parameter count is closest to
    ``lrn_params`` (same embeddings); FFN 4E preferred on ties, then fewer layers."""
    return closest([(n, F) for F in (4 * E, 2 * E) for n in range(1, 13)],
                   lambda c: c[0] * transformer_layer_params(E, c[1]), lrn_params - embedding_params)


def embedding_params(model) -> int:
    """Parameters of the token embeddings and output projection (tied ones counted once)."""
    mods = [model.encoder.embed_tokens, model.decoder.embed_tokens,
            getattr(model.decoder, "output_projection", None)]
    return sum(p.numel() for p in {id(p): p for m in mods if m is not None for p in m.parameters()}.values())


def available(name: str, device: str):
    """None if the system can run here, else why not."""
    if name in ("lrn-fused", "olrn-fused"):
        from fairseq_lrn.ops import triton_available

        if device != "cuda":
            return "needs CUDA (the fused Triton kernels run on GPUs)"
        if not triton_available():
            return "needs Triton (pip install triton)"
    return None


def system_flags(name: str, args, p: Preset, shape=None):
    """(fairseq flags besides the recipe, note) of one system (the transformer: ``shape`` = (layers, ffn))."""
    rnn = rnn_flags(p.embed, p.hidden, p.encoder_layers, p.decoder_layers, bidirectional=True)
    if name in LRN_IMPL:
        gate = ["--lrn-output-gate"] if name in OUTPUT_GATE_SYSTEMS else []
        return (["--arch", p.lrn_arch, *rnn, "--lrn-impl", LRN_IMPL[name], *gate, *shlex.split(args.lrn_args)],
                ("oLRN (--lrn-output-gate), " if gate else "") + f"--lrn-impl {LRN_IMPL[name]} "
                f"({IMPL_NOTE[LRN_IMPL[name]]}); first encoder layer bidirectional; additive attention; no input "
                "feeding" + (f"; {args.lrn_args}" if args.lrn_args else ""))
    if name == "lstm":
        return (["--arch", "lstm", *rnn, "--decoder-attention", "1"],
                "fairseq lstm: every encoder layer bidirectional; decoder with input feeding and dot-product "
                "attention over projected states (fairseq defaults)")
    (layers, ffn), heads = shape, max(2, p.embed // 64)
    return (["--arch", "transformer", *transformer_flags(p.embed, ffn, heads, layers, layers)],
            f"fairseq transformer {layers}+{layers} layers, dim {p.embed}, ffn {ffn}, {heads} heads "
            "(sized to LRN's parameter count)")


def build_systems(args, p: Preset, data_bin, langs, share_all, skipped: Dict[str, str], max_tokens=None):
    """Every available system of ``args.systems`` (LRNs first: the transformer is sized on them,
    or on an LRN built for it)."""
    base = recipe(args, p, data_bin, langs, share_all, clip_norm=1.0, warmup_updates=p.warmup_updates,
                  max_tokens=max_tokens, extra=["--fp16"] if args.fp16 else [])
    built: Dict[str, System] = {}
    for name in sorted(args.systems, key=lambda n: (n == "transformer", ALL_SYSTEMS.index(n))):
        why = available(name, args.device)
        if why:
            skipped[name] = why
            continue
        shape = None
        if name == "transformer":
            lrn = next((s.model for n, s in built.items() if n in LRN_IMPL), None)
            if lrn is None:
                lrn = build_model(base + system_flags("lrn-cpu", args, p)[0])
            shape = match_transformer(count_params(lrn), embedding_params(lrn), p.embed)
            del lrn
        flags, note = system_flags(name, args, p, shape)
        built[name] = System(name, base + flags, note)
    return {n: built[n] for n in args.systems if n in built}


# ----------------------------------------------------------------------------- measuring

def trains(name) -> bool:
    return True


def cells(ctx, name, repeat):
    return ctx["cells"]


def pairs(systems) -> List[tuple]:
    """Every system against lstm, the fast LRNs against the reference, oLRN against its LRN."""
    out = [(n, "lstm") for n in systems if n != "lstm"]
    if "lrn-reference" in systems:
        out += [(n, "lrn-reference") for n in ("lrn-fused", "lrn-cpu") if n in systems]
    return out + [(f"o{n}", n) for n in ("lrn-fused", "lrn-cpu") if n in systems and f"o{n}" in systems]


def ratio_keys(ctx, results, a, b):
    return ["train_tok_s", *(c.key for c in ctx["cells"])]


def config(ctx, systems, share_all) -> dict:
    return {"fp16": ctx["args"].fp16, "tf32": ctx["args"].tf32}


def entry(runs) -> dict:
    gens = {k: summary([m[k] for m in runs]) for k in runs[0] if k not in ("train_tok_s", "train_step_s")}
    return {"train_tok_s": summary([m["train_tok_s"] for m in runs]),
            "train_step_s": [m["train_step_s"] for m in runs], "peak_mem_mib": None, **gens}


def after(ctx, systems, results, report) -> None:
    """``--profile`` (torch.profiler on training steps) and the peak memory of each system."""
    args, batches = ctx["args"], ctx["train_batches"]
    profiles = [profiling.profile_system(systems[n], batches, args.profile_steps, args.profile_rows)
                for n in ([] if args.profile is None else args.profile or [primary_lrn(list(systems))]) if n in systems]
    if profiles:
        report["profile"] = profiles
    report["memory_method"] = None
    for name, s in ([] if args.no_memory else systems.items()):
        peak = memory.peak_memory_in_fresh_process(name, s.argv, batches, args.device, args.threads, ctx["work"])
        report["systems"][name]["peak_mem_mib"] = peak["peak_mib"]
        report["memory_method"] = peak["method"] if peak["peak_mib"] is not None else report["memory_method"]


def after_close(ctx, report) -> None:
    """``--quality``: fresh systems trained for the same wall-clock budget (the speed systems closed)."""
    if ctx["args"].quality:
        report["quality"] = quality.run_quality(ctx["args"], ctx["preset"], ctx["work"], dict(report["skipped"]),
                                                build_systems)


# ----------------------------------------------------------------------------- report

def body(report: dict) -> None:
    cfg, systems = report["config"], report["systems"]
    gen_keys = cfg["gen_configs"] or [key for key, _, _ in GEN_CONFIGS]
    quality = (report.get("quality") or {}).get("systems", {})
    rows = []
    for name, s in systems.items():
        ratio = report["ratios"].get(f"{name}/lstm", {}).get("train_tok_s") if "lstm" in systems else None
        rows.append([name, f"{s['params'] / 1e6:.2f}M", fmt_spread(s["train_tok_s"]),
                     "-" if ratio is None else f"{ratio:.2f}", fmt(s.get("peak_mem_mib")),
                     *(fmt_spread(s[key], 1) if key in s else "-" for key in gen_keys),
                     fmt(quality.get(name, {}).get("bleu"), 2)])
    md_table(["system", "params", "train tok/s", "x lstm", "peak mem MiB", *(k.replace("_", " ") for k in gen_keys),
              "BLEU"], rows)
    print("\nGeneration columns: sentences/s through fairseq's SequenceGenerator (greedy = beam 1), "
          f"{cfg['gen_sentences_b1']} random test sentences at batch 1, the {cfg['gen_sentences_b64']} "
          "of median length at batch 64; every hypothesis is forced to "
          + ("L tokens (columns _L<L>)" if cfg.get("forced_lengths") else "its batch's longest reference length")
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
    print_ratios(report["ratios"], ["train_tok_s"] + cfg["gen_configs"], title=",", pretty=False)
    print_targets(report["targets"], unit=None, title="", met_words=("yes", "NO"))
    if report.get("quality"):
        q = report["quality"]
        print(f"\n### Quality: BLEU after {q['budget_seconds']:g} s of training each ({q['data']})\n")
        md_table(["system", "params", "updates", "BLEU curve (seconds: BLEU)"],
                 [[name, f"{s['params'] / 1e6:.2f}M", s["updates"],
                   ", ".join(f"{p['seconds']:.0f}: {p['bleu']:.1f}" for p in s["curve"])]
                  for name, s in q["systems"].items()], "lrrl")


def plot(report: dict, path: str) -> None:
    """Training tokens/s, sentences/s of each generation config, BLEU against training time."""
    from .plots import bars, figure, save

    systems, cfg = report["systems"], report["config"]
    names, gen_keys, q = list(systems), cfg["gen_configs"], report.get("quality")
    fig, axes = figure(1 + bool(gen_keys) + bool(q), 5.5, 4.2)
    bars(axes[0], names, {"train": [systems[n]["train_tok_s"] for n in names]}, errors=True)
    axes[0].set(ylabel="target tokens / s", title=f"training throughput ({cfg['device']}, {cfg['size']})")
    if gen_keys:
        bars(axes[1], names, {k.replace("_", " "): [systems[n][k] for n in names] for k in gen_keys}, log=True)
        axes[1].set(ylabel="sentences / s (log)", title="generation (SequenceGenerator)")
    if q:
        for name, s in q["systems"].items():
            axes[-1].plot([0] + [p["seconds"] for p in s["curve"]], [0] + [p["bleu"] for p in s["curve"]],
                          marker="o", label=name)
        axes[-1].set(xlabel="training wall-clock (s)", ylabel="BLEU (test)", title="BLEU vs training time")
        axes[-1].legend(fontsize=8)
    save(fig, path)
