"""``scripts/benchmark_lm.py``'s systems: one ``--task language_modeling`` recipe for ``lrn_lm``,
``lstm_lm`` and ``transformer_lm``, the last two sized on ``lrn_lm``'s body (the parameters besides
the tied embedding), built in-process as :class:`bench.systems.System`."""

from typing import Dict, List

from fairseq_lrn.tools import user_dir

from .systems import System

SYSTEMS = ("lrn_lm", "lstm_lm", "transformer_lm")


def common_args(args, data_bin: str) -> List[str]:
    """The fairseq-train arguments every system shares."""
    return [data_bin, "--user-dir", user_dir(), "--task", "language_modeling",
            "--tokens-per-sample", str(args.tokens_per_sample), "--sample-break-mode", "none",
            "--max-tokens", str(args.max_tokens), "--criterion", "cross_entropy",
            "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--clip-norm", "1.0",
            "--lr", str(args.lr), "--lr-scheduler", "inverse_sqrt", "--warmup-updates", str(args.warmup_updates),
            "--warmup-init-lr", "1e-07", "--dropout", str(args.dropout), "--share-decoder-input-output-embed",
            "--seed", str(args.seed), "--num-workers", "0", "--required-batch-size-multiple", "1",
            *(["--cpu"] if args.device == "cpu" else [])]


def lrn_args(args) -> List[str]:
    E = str(args.embed_dim)
    return ["--arch", "lrn_lm", "--decoder-embed-dim", E, "--decoder-out-embed-dim", E,
            "--decoder-hidden-size", str(args.lrn_hidden or args.embed_dim), "--decoder-layers", str(args.layers)]


def lstm_args(args, hidden: int) -> List[str]:
    E = str(args.embed_dim)
    return ["--arch", "lstm_lm", "--decoder-embed-dim", E, "--decoder-out-embed-dim", E,
            "--decoder-hidden-size", str(hidden), "--decoder-layers", str(args.layers)]


def transformer_args(args, layers: int, ffn: int) -> List[str]:
    E = args.embed_dim
    return ["--arch", "transformer_lm", "--decoder-embed-dim", str(E), "--decoder-output-dim", str(E),
            "--decoder-input-dim", str(E), "--decoder-ffn-embed-dim", str(ffn), "--decoder-layers", str(layers),
            "--decoder-attention-heads", str(max(1, E // 64))]


def lstm_body_params(E: int, H: int, L: int) -> int:
    """Parameters of fairseq's LSTMDecoder without attention besides the embeddings: L LSTM
    cells (4H x (in + H) weights, two 4H biases) and the H -> E projection when H != E."""
    cells = sum(4 * H * ((E if k == 0 else H) + H) + 8 * H for k in range(L))
    return cells + (H * E + E if H != E else 0)


def transformer_body_params(E: int, F: int, L: int) -> int:
    """Parameters of fairseq's transformer_lm besides the embeddings: L post-norm decoder layers
    without encoder attention, plus the one LayerNorm (2E) it builds outside them."""
    return L * (4 * E * E + 2 * E * F + 9 * E + F) + 2 * E


def match_lstm_hidden(body: int, E: int, L: int) -> int:
    """The LSTM hidden size whose body parameter count is closest to ``body``."""
    return min(range(8, 8 * E + 1), key=lambda H: abs(lstm_body_params(E, H, L) - body))


def match_transformer(body: int, E: int, L: int):
    """(layers, ffn) of a transformer_lm body closest to ``body`` parameters (ties: the layer
    count closest to ``L``, then the wider FFN)."""
    candidates = [(abs(transformer_body_params(E, F, n) - body), abs(n - L), -F, n, F)
                  for F in (4 * E, 2 * E, E) for n in range(1, 13)]
    return min(candidates)[3:]


def build_system(name: str, argv: List[str], note: str) -> System:
    """A fairseq system (model, criterion, Trainer) with its train and valid splits loaded."""
    system = System(name, argv, note)
    system.load_splits(("train", "valid"))
    return system


def build_systems(args, data_bin: str) -> Dict[str, System]:
    """The requested systems; lstm_lm and transformer_lm sized on lrn_lm's body (the parameters
    besides the tied embedding), for which lrn_lm is built first."""
    base = common_args(args, data_bin)
    lrn = build_system("lrn_lm", base + lrn_args(args),
                       f"{args.layers} layers, hidden {args.lrn_hidden or args.embed_dim}")
    body = lrn.params - lrn.model.decoder.embed_tokens.weight.numel()
    systems = {"lrn_lm": lrn}
    if "lstm_lm" in args.systems:
        hidden = match_lstm_hidden(body, args.embed_dim, args.layers)
        systems["lstm_lm"] = build_system("lstm_lm", base + lstm_args(args, hidden),
                                          f"{args.layers} layers, hidden {hidden}")
    if "transformer_lm" in args.systems:
        layers, ffn = match_transformer(body, args.embed_dim, args.layers)
        systems["transformer_lm"] = build_system("transformer_lm", base + transformer_args(args, layers, ffn),
                                                 f"{layers} layers, ffn {ffn}")
    if "lrn_lm" not in args.systems:
        systems.pop("lrn_lm").close()
    return {name: systems[name] for name in args.systems}
