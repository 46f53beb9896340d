"""``--size tiny / iwslt / wmt``: the systems (LRN implementations, fairseq's lstm and a
transformer sized on LRN's parameter count), their size presets and fairseq-train arguments."""

import argparse
import shlex
from dataclasses import dataclass
from typing import Dict, List, Optional

from fairseq_lrn.tools import user_dir

from . import data
from .shapes import rnn_flags, transformer_flags
from .systems import System, build_model, count_params

DEFAULT_SYSTEMS = ("lrn-fused", "lrn-cpu", "lrn-reference", "lstm", "transformer")
OUTPUT_GATE_SYSTEMS = ("olrn-fused", "olrn-cpu")  # opt-in: --systems ... olrn-cpu
ALL_SYSTEMS = DEFAULT_SYSTEMS[:3] + OUTPUT_GATE_SYSTEMS + DEFAULT_SYSTEMS[3:]
LRN_IMPL = {"lrn-fused": "fused", "lrn-cpu": "cpu", "lrn-reference": "reference",
            "olrn-fused": "fused", "olrn-cpu": "cpu"}
IMPL_NOTE = {"fused": "Triton kernels", "cpu": "PyTorch loop with a hand-written backward, any device",
             "reference": "step-by-step autograd loop"}


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
        langs = ["--source-lang", data.SRC, "--target-lang", data.TGT]
    return [
        data_bin, "--user-dir", user_dir(), "--task", "translation", *langs,
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
    return rnn_flags(p.embed, p.hidden, p.encoder_layers, p.decoder_layers, bidirectional=True)


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
            specs.append(Spec(name, base + ["--arch", "transformer",
                                            *transformer_flags(preset.embed, ffn, heads, layers, layers)],
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


def transformer_shape_for(args, preset, data_bin, share_all, max_tokens, built: Dict[str, "System"]):
    """Size the transformer on an LRN model's parameter count (building one if none is built)."""
    lrn = next((s for n, s in built.items() if n in LRN_IMPL), None)
    if lrn is not None:
        return match_transformer(lrn.params, embedding_params(lrn.model), preset.embed)
    probe = argparse.Namespace(**{**vars(args), "systems": ["lrn-cpu"]})
    spec = make_specs(probe, preset, data_bin, share_all, max_tokens)[0]
    model = build_model(spec.argv)
    shape = match_transformer(count_params(model), embedding_params(model), preset.embed)
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
    built: Dict[str, System] = {}
    shape = None
    for name in runnable:
        if name == "transformer":
            shape = transformer_shape_for(args, preset, data_bin, share_all, max_tokens, built)
        sub = argparse.Namespace(**{**vars(args), "systems": [name]})
        spec = make_specs(sub, preset, data_bin, share_all, max_tokens, shape)[0]
        built[name] = System(spec.name, spec.argv, spec.note)
    return {n: built[n] for n in args.systems if n in built}
