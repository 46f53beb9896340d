"""Build small LRN models in-process (no data on disk)."""

import argparse
from types import SimpleNamespace

from fairseq.data import Dictionary

from fairseq_lrn.models.lrn import LRNModel, lrn_iwslt_de_en

TINY = dict(encoder_embed_dim=16, decoder_embed_dim=16, decoder_out_embed_dim=16,
            encoder_hidden_size=24, decoder_hidden_size=24, decoder_attention_dim=12,
            dropout=0.0)


def make_dictionary(size: int = 30) -> Dictionary:
    d = Dictionary()
    for k in range(size):
        d.add_symbol(f"w{k}")
    return d


def build_model(src_dict=None, tgt_dict=None, **overrides):
    """An ``lrn_iwslt_de_en`` model with TINY sizes, updated by ``overrides``."""
    src_dict = src_dict or make_dictionary()
    tgt_dict = tgt_dict or src_dict
    args = argparse.Namespace(**{**TINY, **overrides})
    lrn_iwslt_de_en(args)
    task = SimpleNamespace(source_dictionary=src_dict, target_dictionary=tgt_dict)
    return LRNModel.build_model(args, task)


class RunsCode:
    """Unpickling this object runs ``open(marker, "w")`` (a stand-in for any payload)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))
