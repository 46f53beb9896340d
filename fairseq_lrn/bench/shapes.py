"""fairseq-train flags of the model shapes the benchmarks build: every size of every family
(the real sizes, the tiny ones for tests and smoke runs, the memory probe's miniatures) is one
call of :func:`transformer_flags` or :func:`rnn_flags`; :func:`train_flags` is the recipe they
share, :func:`closest` the parameter-count matching."""

from typing import List, Optional


def _flags(pairs) -> List[str]:
    return [str(token) for flag, value in pairs if value is not None for token in (flag, value)]


def transformer_flags(embed: int, ffn: int, heads: int, encoder_layers: Optional[int] = None,
                      decoder_layers: Optional[int] = None, decoder_ffn: Optional[int] = None) -> List[str]:
    """An encoder-decoder transformer's (``transformer``, ``transformer_lrn``) dimensions: model
    dim ``embed`` on both sides, FFN ``ffn`` (the decoder's ``decoder_ffn`` when given), ``heads``
    attention heads; layers None: the architecture's own."""
    return _flags([("--encoder-embed-dim", embed), ("--decoder-embed-dim", embed),
                   ("--encoder-ffn-embed-dim", ffn), ("--decoder-ffn-embed-dim", decoder_ffn or ffn),
                   ("--encoder-layers", encoder_layers), ("--decoder-layers", decoder_layers),
                   ("--encoder-attention-heads", heads), ("--decoder-attention-heads", heads)])


def rnn_flags(embed: int, hidden: int, encoder_layers: Optional[int] = None, decoder_layers: Optional[int] = None,
              bidirectional: bool = False) -> List[str]:
    """A recurrent encoder-decoder's (``lrn``, ``lstm``) dimensions: embeddings (and the decoder's
    output embedding) ``embed``, hidden size ``hidden`` on both sides; layers None: the
    architecture's own; ``bidirectional``: fairseq's ``--encoder-bidirectional``."""
    return _flags([("--encoder-embed-dim", embed), ("--decoder-embed-dim", embed), ("--decoder-out-embed-dim", embed),
                   ("--encoder-hidden-size", hidden), ("--decoder-hidden-size", hidden),
                   ("--encoder-layers", encoder_layers), ("--decoder-layers", decoder_layers)]) + \
        (["--encoder-bidirectional"] if bidirectional else [])


def train_flags(data_bin: str, *, task: str, task_flags=(), criterion=(), clip_norm: float, lr: float,
                warmup_updates: int, max_tokens: int, dropout: float, seed: int, device: str,
                share_all: bool = False, extra=()) -> List[str]:
    """The fairseq-train recipe every benchmark system shares: Adam (0.9, 0.98), inverse-sqrt
    schedule from 1e-7, in-process data loading, tied embeddings (all of them with
    ``share_all``, else the decoder's input and output), ``--cpu`` on the CPU."""
    from fairseq_lrn.tools import user_dir

    return [data_bin, "--user-dir", user_dir(), "--task", task, *task_flags, *criterion,
            "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--clip-norm", str(clip_norm),
            "--lr", str(lr), "--lr-scheduler", "inverse_sqrt", "--warmup-updates", str(warmup_updates),
            "--warmup-init-lr", "1e-07", "--max-tokens", str(max_tokens), "--dropout", str(dropout),
            "--seed", str(seed), "--num-workers", "0", *extra,
            "--share-all-embeddings" if share_all else "--share-decoder-input-output-embed",
            *(["--cpu"] if device == "cpu" else [])]


def closest(candidates, count, target: int):
    """The first of ``candidates`` whose parameter count ``count(candidate)`` is closest to
    ``target`` (their order breaks ties): how every benchmark sizes a system on another."""
    return min(candidates, key=lambda c: abs(count(c) - target))
