"""``--size transformer-*``: the systems (fairseq's transformer and transformer_lrn at the same
dimensions, 2-layer-decoder variants, a parameter-matched wide transformer_lrn), their size
presets and fairseq-train arguments."""

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from fairseq_lrn.tools import user_dir

from .shapes import transformer_flags
from .systems import System, count_model_params

SYSTEMS = ("transformer", "transformer-lrn", "transformer-dec2", "transformer-lrn-dec2", "transformer-lrn-wide")
DECODE_SYSTEMS = SYSTEMS[:4]
TRAIN_SYSTEMS = ("transformer", "transformer-lrn", "transformer-lrn-wide")
BASELINE = "transformer"
PAIRS = (("transformer-lrn", BASELINE), ("transformer-lrn-dec2", BASELINE), ("transformer-dec2", BASELINE),
         ("transformer-lrn-dec2", "transformer-dec2"), ("transformer-lrn-wide", BASELINE))


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


def common_args(args, p: TPreset, data_bin: str, langs: Tuple[Optional[str], Optional[str]],
                share_all: bool) -> List[str]:
    lang_args = []
    for flag, value in zip(("--source-lang", "--target-lang"), langs):
        lang_args += [flag, value] if value else []
    return [
        data_bin, "--user-dir", user_dir(), "--task", "translation", *lang_args,
        "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
        "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--clip-norm", "0.0",
        "--lr", str(p.lr), "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "4000",
        "--warmup-init-lr", "1e-07", "--max-tokens", str(args.max_tokens), "--dropout", str(p.dropout),
        "--seed", str(args.seed), "--num-workers", "0", "--no-progress-bar", "--log-format", "simple",
        *(["--share-all-embeddings"] if share_all else ["--share-decoder-input-output-embed"]),
        *(["--cpu"] if args.device == "cpu" else []),
    ]


def arch_args(arch: str, p: TPreset, decoder_layers: int, decoder_ffn: int) -> List[str]:
    return ["--arch", arch, *transformer_flags(p.embed, p.ffn, p.heads, p.encoder_layers, decoder_layers, decoder_ffn)]


def system_shape(name: str, p: TPreset) -> Tuple[bool, int]:
    """(is LRN, decoder layers) of a system."""
    return "lrn" in name, p.shallow_decoder_layers if name.endswith("-dec2") else p.decoder_layers


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


def build_systems(args, p: TPreset, data_bin, langs, share_all, skipped) -> Dict[str, "System"]:
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
        built[name] = System(name, base + arch_args(arch, p, layers, p.ffn), note)
    if "transformer-lrn-wide" in args.systems:
        if missing:
            skipped["transformer-lrn-wide"] = missing
        else:
            lrn_params = built["transformer-lrn"].params if "transformer-lrn" in built else \
                count_model_params(base + arch_args(lrn_arch, p, p.decoder_layers, p.ffn))
            target = built[BASELINE].params if BASELINE in built else \
                count_model_params(base + arch_args("transformer", p, p.decoder_layers, p.ffn))
            ffn = matched_ffn(base, lrn_arch, p, lrn_params, target)
            built["transformer-lrn-wide"] = System(
                "transformer-lrn-wide", base + arch_args(lrn_arch, p, p.decoder_layers, ffn),
                f"--arch {lrn_arch}, {p.encoder_layers}+{p.decoder_layers} layers, d={p.embed}, decoder ffn "
                f"{ffn} (parameter count matched to the transformer's), encoder ffn {p.ffn}")
    return {n: built[n] for n in SYSTEMS if n in built}
