"""Pieces of ``scripts/benchmark_models.py`` that are larger than a helper: one module per
benchmark family (``transformer_lrn``) and per kind of measurement (``decoding``)."""
