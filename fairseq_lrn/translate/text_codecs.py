"""Raw text in and out: fairseq's own tokenizer and BPE encoders (``--tokenizer``, ``--bpe``).

As in fairseq-interactive: a source line is tokenized, then BPE-encoded; a translation is
BPE-decoded, then detokenized. Without either option the input is taken as already tokenized
and BPE'd, and the output is left as the dictionary writes it (``--remove-bpe`` aside).
"""

from argparse import Namespace
from typing import Callable, Optional, Tuple

TOKENIZERS = ("moses",)
BPES = ("subword_nmt", "sentencepiece")

Codec = Callable[[str], str]


def build_codecs(*, tokenizer: Optional[str] = None, bpe: Optional[str] = None,
                 bpe_codes: Optional[str] = None, sentencepiece_model: Optional[str] = None,
                 source_lang: Optional[str] = None, target_lang: Optional[str] = None) -> Tuple[Codec, Codec]:
    """``(encode_fn, decode_fn)`` built with fairseq's ``encoders.build_tokenizer`` /
    ``build_bpe``; identity functions when neither is asked for. Raises ValueError for an unknown
    name or a missing model file option."""
    if tokenizer is None and bpe is None:
        return (lambda line: line), (lambda line: line)
    from fairseq.data import encoders

    tok = bpe_model = None
    if tokenizer is not None:
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"--tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
        tok = encoders.build_tokenizer(Namespace(tokenizer=tokenizer, source_lang=source_lang or "en",
                                                 target_lang=target_lang or "en"))
    if bpe is not None:
        if bpe not in BPES:
            raise ValueError(f"--bpe must be one of {BPES}, got {bpe!r}")
        if bpe == "subword_nmt" and not bpe_codes:
            raise ValueError("--bpe subword_nmt needs --bpe-codes FILE (the codes the training data was BPE'd with)")
        if bpe == "sentencepiece" and not sentencepiece_model:
            raise ValueError("--bpe sentencepiece needs --sentencepiece-model FILE")
        bpe_model = encoders.build_bpe(Namespace(bpe=bpe, bpe_codes=bpe_codes,
                                                 sentencepiece_model=sentencepiece_model))

    def encode(line: str) -> str:
        if tok is not None:
            line = tok.encode(line)
        if bpe_model is not None:
            line = bpe_model.encode(line)
        return line

    def decode(line: str) -> str:
        if bpe_model is not None:
            line = bpe_model.decode(line)
        if tok is not None:
            line = tok.decode(line)
        return line

    return encode, decode
