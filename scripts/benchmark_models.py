#!/usr/bin/env python
"""Head-to-head benchmark: LRN vs fairseq's LSTM and Transformer, in one run, on this machine.

Systems (all built in-process with fairseq's own machinery, on the same data, at matched size):

* ``lrn-fused``     LRN, fused Triton recurrence (only with CUDA + Triton; skipped otherwise)
* ``lrn-cpu``       LRN, the PyTorch recurrence with a hand-written backward (``auto`` on CPU)
* ``lrn-reference`` LRN, the step-by-step autograd recurrence (the ground truth)
* ``olrn-fused``, ``olrn-cpu``  oLRN (``--lrn-output-gate``), only when named in ``--systems``;
                    the report adds its ratio to the LRN of the same implementation
* ``lstm``          fairseq's ``lstm``: bidirectional encoder, same layers / hidden / embedding
                    sizes; its decoder uses input feeding + attention (fairseq's defaults).
                    LRN does not feed inputs, which is what lets it run the decoder over all
                    target positions at once in training. (Attention differs too: LRN uses
                    the authors' additive attention, fairseq's lstm a dot product over projected
                    states; ``--lrn-args '--decoder-attention general'`` gives LRN the latter.)
* ``transformer``   fairseq's ``transformer``, layers/FFN chosen for LRN's parameter count

Measured, interleaved (``for repeat: for system:``) so drift hits every system alike:

* training throughput: target tokens/s over full fairseq updates (``Trainer.train_step``:
  forward, backward, clipping, Adam) on fixed pre-collected batches, after warm-up;
* peak training memory, in a fresh process per system (CUDA: max_memory_allocated; CPU: peak
  RSS delta);
* generation: sentences/s through fairseq's SequenceGenerator, beam 5 and greedy (beam 1), at
  batch 1 and batch 64, on fixed test sentences. Every hypothesis is forced to its batch's
  longest reference length, so untrained and trained models do the same decoding work;
* ``--quality``: BLEU (sacreBLEU) after training each system for the same wall-clock budget on
  the toy reordering task (or ``--data``), with BLEU-vs-time curves.

Prints markdown tables; ``--json`` / ``--plot`` save the numbers / a PNG. Examples:

    python scripts/benchmark_models.py                           # iwslt size, CPU: ~4-6 min
    python scripts/benchmark_models.py --size tiny --repeats 2   # smoke run, < 1 min
    python scripts/benchmark_models.py --quality --budget-seconds 120 --json b.json --plot b.png
    python scripts/benchmark_models.py --profile                 # + torch.profiler of an LRN step
    python scripts/benchmark_models.py --forced-lengths 30 150   # hypotheses forced to 30 and 150 tokens

``--size transformer-base-256`` (or ``transformer-tiny``) runs ``transformer_lrn`` against fairseq's
``transformer`` instead (fairseq_lrn/bench/transformer_lrn.py: systems, targets, report):

    python scripts/benchmark_models.py --size transformer-base-256 --data DATA_BIN --plot tl.png
"""

import argparse

import torch

from fairseq_lrn.bench import lrn, translation
from fairseq_lrn.bench import transformer_lrn as tl
from fairseq_lrn.bench.harness import quiet_fairseq


def family_of(args):
    """The family of ``--size``: fairseq_lrn/bench/transformer_lrn.py or lrn.py."""
    return tl if args.size in tl.PRESETS else lrn


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--size", choices=sorted(lrn.PRESETS) + list(tl.PRESETS), default="iwslt",
        help="model size preset (default: %(default)s); the transformer-* sizes run the transformer_lrn "
             "vs transformer benchmark (fairseq_lrn/bench/transformer_lrn.py)")
    add("--systems", nargs="+", choices=lrn.SYSTEMS + tl.SYSTEMS, default=None,
        help="systems to run (default: all of the size's family except the oLRN ones, olrn-fused / "
             "olrn-cpu, which run on request; *-fused only where CUDA + Triton are available)")
    add("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    add("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    add("--data", help="a fairseq data-bin to use instead of the generated data (train + test splits)")
    add("--source-lang", default=None, help="with --data: source language (default: inferred)")
    add("--target-lang", default=None, help="with --data: target language (default: inferred)")
    add("--repeats", type=int, default=3, help="interleaved repeats (default: %(default)s)")
    add("--train-steps", type=int, help="timed training updates per repeat (default: per size/device)")
    add("--warmup-steps", type=int, default=1, help="untimed updates before each timed run (default: 1)")
    add("--max-tokens", type=int, help="tokens per training batch (default: per size/device)")
    add("--gen-sentences-b1", type=int, help="test sentences timed at batch 1 (default: per size/device)")
    add("--gen-sentences-b64", type=int, help="test sentences timed at batch 64 (default: per size/device)")
    add("--lrn-args", default="", metavar="'ARGS'",
        help="extra fairseq arguments for the LRN systems, e.g. '--decoder-attention general'")
    add("--skip-generation", action="store_true", help="measure training only")
    add("--fp16", action="store_true", help="mixed precision training (CUDA; fairseq --fp16)")
    add("--tf32", action="store_true", help="allow TF32 matrix products on CUDA (cuDNN, used by the "
        "lstm encoder, allows TF32 by default; plain matmuls do not)")
    add("--quick", action="store_true", help="1 repeat, 2 timed steps, few sentences: checks that it runs")
    add("--no-memory", action="store_true", help="skip the peak-memory probes (a fresh process per system)")
    add("--quality", action="store_true",
        help="also train each system for --budget-seconds on the toy reordering task (or --data) and "
             "report BLEU and BLEU-vs-time curves")
    add("--budget-seconds", type=float, default=60.0, help="--quality: training time per system (default: 60)")
    add("--quality-points", type=int, default=5, help="--quality: BLEU evaluations per system (default: 5)")
    add("--quality-max-tokens", type=int, help="--quality: tokens per batch (default: per size)")
    add("--profile", nargs="*", metavar="SYSTEM", choices=lrn.SYSTEMS,
        help="torch.profiler on training steps of these systems (none named: the LRN that 'auto' "
             "picks) and print the top ops")
    add("--profile-steps", type=int, default=2, help="updates profiled (default: %(default)s)")
    add("--profile-rows", type=int, default=25, help="rows of the profile tables (default: %(default)s)")
    add("--json", help="write all numbers here")
    add("--plot", help="write a PNG here (matplotlib)")
    add("--work-dir", help="data and scratch files (default: a temporary folder)")
    add("--seed", type=int, default=1)
    add("--forced-lengths", nargs="+", type=int, metavar="L",
        help="force every hypothesis to exactly L tokens (min_len = max_len = L), one set of generation "
             "columns per L (default: each batch's longest reference; transformer-* sizes: 30 150)")
    tl.add_arguments(parser)
    args = parser.parse_args(argv)
    translation.finish_args(parser, args, family_of(args))
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    quiet_fairseq()
    return translation.run(args, family_of(args), argv)


if __name__ == "__main__":
    main()
