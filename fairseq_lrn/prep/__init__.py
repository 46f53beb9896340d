"""Corpus preparation, shared by the WMT14 preparation (``data-prep/prepare-wmt14en2de.sh``), the
quality race and the LM benchmark (importing this package imports nothing heavy):

* :mod:`.io`: :class:`~.io.StepRunner` (resumable steps), UTF-8 line I/O, alignment checks;
* :mod:`.text`: Moses normalisation and tokenization, cleaning, BPE (subword-nmt) and sentencepiece;
* :mod:`.wmt14_sources`, :mod:`.wmt14`: the WMT14 En-De corpora and their preparation
  (``python -m fairseq_lrn.prep.wmt14``).
"""
