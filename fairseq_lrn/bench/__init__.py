"""The benchmarks of ``scripts/benchmark_*.py`` and ``scripts/quality_race.py`` (importing this
package does nothing: no fairseq import, no logging changes; the entry points call
:func:`.harness.quiet_fairseq` in their ``main``).

* the harness, shared by every family: :mod:`.harness` (start of a run, interleaved repeats,
  summaries, the report's head and end, the machine), :mod:`.stats` (per-repeat ratios, number
  formats, markdown tables), :mod:`.plots`, :mod:`.targets` (every target of every family as a
  row of data, and their evaluation), :mod:`.shapes` (the fairseq flags of every model size, the
  training recipe, parameter-count matching), :mod:`.systems` (a fairseq model + Trainer built
  in-process, training for a time budget), :mod:`.data` (data-bins, fixed batches), :mod:`.memory`
  (peak training memory in a fresh process), :mod:`.profiling`, :mod:`.decoding` (forced-length
  timing, decoder-state bytes);
* ``benchmark_models.py``: :mod:`.translation` runs both of its families, each declared as data
  (systems and sizes, cells, ratios, report columns, figure) in one module: :mod:`.lrn` (``--size
  tiny/iwslt/wmt``: LRN vs lstm vs transformer; ``--quality``: :mod:`.quality`) and
  :mod:`.transformer_lrn` (``--size transformer-*``: transformer_lrn vs transformer);
* ``benchmark_decoding.py`` (trained checkpoints: CTranslate2, fairseq-generate, fairseq-lrn-translate):
  :mod:`.decoding_speed` (the family as data, its run and report), :mod:`.decoding_runtimes`;
* ``benchmark_lm.py`` (lrn_lm vs lstm_lm vs transformer_lm): :mod:`.lm`;
* ``benchmark_kernel.py`` (the recurrence and layers; torch only, no fairseq): :mod:`.kernel_timing`,
  run by :mod:`.kernel_report`;
* ``quality_race.py``: the subpackage :mod:`.race`.
"""
