"""fairseq-lrn: the Lightweight Recurrent Network (Zhang & Sennrich, ACL 2019) for fairseq.

Load it with ``--user-dir fairseq_lrn``: fairseq then imports ``fairseq_lrn.models``, which
registers the ``lrn`` architectures and the safe checkpoint loader. Importing this package
itself is cheap: it imports neither fairseq nor torch.
"""

__version__ = "0.1.0"
