"""Driving fairseq's command-line tools from Python: for the demo, the benchmarks, the data
preparation and the tests (none of it is needed to train with ``--user-dir``).

* :mod:`.run`: ``fairseq-<tool>`` in a subprocess (:func:`~.run.run_fairseq`);
* :mod:`.data_bin`: text corpora -> a binarized data-bin through ``fairseq-preprocess``;
* :mod:`.generate_output`: the ``S-``/``T-``/``H-``/``D-`` lines of fairseq-generate/-interactive.
"""

import os


def user_dir() -> str:
    """Absolute path of the installed ``fairseq_lrn`` package: the ``--user-dir`` value."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def print_user_dir() -> None:
    """Entry point of ``fairseq-lrn-dir``: print :func:`user_dir`."""
    print(user_dir())
