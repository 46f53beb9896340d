"""The benchmarks of ``scripts/benchmark_models.py``, ``benchmark_lm.py`` and ``benchmark_kernel.py``, one module
per job (importing this package does nothing: no fairseq import, no logging or ``sys.path``
changes; the entry points call :func:`bench.fairseq_setup.quiet_fairseq` in their ``main``).

* shared: :mod:`.fairseq_setup` (quiet fairseq's logging / warnings), :mod:`.systems` (a fairseq
  model + Trainer built in-process), :mod:`.data` (data-bins through ``build_data_bin``, fixed
  batches), :mod:`.stats` (summaries, per-repeat ratios, number formats), :mod:`.machine`,
  :mod:`.targets` (every target as a row of data, and their evaluation), :mod:`.memory` (peak
  training memory in a fresh process), :mod:`.profiling` (torch.profiler), :mod:`.decoding`
  (forced-length timing, decoder-state bytes), :mod:`.report` (``finish_report``);
* ``--size tiny/iwslt/wmt`` (LRN vs lstm vs transformer): :mod:`.lrn_systems`, :mod:`.speed`,
  :mod:`.quality`, :mod:`.lrn_report`, run by :mod:`.lrn`;
* ``--size transformer-*`` (transformer_lrn vs transformer): :mod:`.transformer_lrn_systems`,
  :mod:`.transformer_lrn_speed`, :mod:`.transformer_lrn_report`, run by :mod:`.transformer_lrn`;
* ``benchmark_lm.py`` (lrn_lm vs lstm_lm vs transformer_lm): :mod:`.lm_systems`, run by :mod:`.lm_race`;
* ``benchmark_kernel.py`` (the recurrence and layers; torch only, no fairseq): :mod:`.kernel_timing`,
  run by :mod:`.kernel_report`;
* ``quality_race.py``: the subpackage :mod:`.race`.
"""
