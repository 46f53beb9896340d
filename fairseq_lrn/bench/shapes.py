"""fairseq-train flags of the model shapes the benchmarks build: every size of every family
(the real sizes, the tiny ones for tests and smoke runs, the memory probe's miniatures) is one
call of :func:`transformer_flags` or :func:`rnn_flags`."""

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
