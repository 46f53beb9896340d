"""Compile the fused LRN kernels for a GPU architecture offline (no GPU needed) and report what
their time loop does: registers, spills, shared memory, and how its loads wait.

The kernels are specialised exactly as a launch at the given shape would specialise them
(Triton's own argument binder: pointer alignment, strides equal to 1, divisibility by 16), then
compiled to SASS with the ptxas bundled in Triton's wheel. In the SASS, the time loop is the
span of the backward branch; per kernel it reports

* ``sync loads``: plain global loads in the loop (LDG): each one is waited on within a step or
  two, so the loop pays a memory latency per step;
* ``async copies``: cp.async copies in the loop (LDGSTS), pipelined into shared memory;
* ``waits``: the loop's ``DEPBAR.LE SB0, N`` (wait until at most N copy groups are pending;
  N > 0 means loads stay in flight across the wait);
* ``steps in flight``: steps of inputs still being copied while a chunk is computed (the wait's N
  over the copy groups one iteration commits, times STEPS); the launch heuristic's model of it is
  ``launch_config.hidden_steps``;
* ``shuffles``: warp shuffles in the loop (a chunk's steps split across threads);
* ``instr/step``: SASS instructions in the loop over STEPS (what one warp issues per time step).

    python scripts/inspect_kernels.py                       # heuristic configs, H100/H200 (sm_90)
    python scripts/inspect_kernels.py --gpu a100 --dtype bf16
    python scripts/inspect_kernels.py --config 128 1 4 3 --dtype bf16 --mask with
    python scripts/inspect_kernels.py --output-gate         # the oLRN kernels (4 gates)

The compiling and the SASS reading: fairseq_lrn/ops/kernel_inspection.py.
"""

import argparse
import os
import sys

os.environ.pop("TRITON_INTERPRET", None)  # compile for real, whatever the caller's environment

from fairseq_lrn.ops.kernel_inspection import DTYPES, GPUS, UnsupportedTriton, loop_rows  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--T", type=int, default=500)
    parser.add_argument("--B", type=int, default=128)
    parser.add_argument("--d", type=int, default=1024)
    parser.add_argument("--dtype", nargs="+", choices=sorted(DTYPES), default=["fp32", "bf16"])
    parser.add_argument("--bidirectional", action="store_true", help="2 directions of d channels")
    parser.add_argument("--output-gate", action="store_true",
                        help="the oLRN kernels (4 gates: p, q, r and the output gate's s)")
    parser.add_argument("--mask", choices=["without", "with", "both"], default="without",
                        help="the kernels without a padding mask, with one, or both variants")
    parser.add_argument("--gpu", choices=list(GPUS), default="h100",
                        help="compile for this GPU's architecture, with the launch heuristic's configs "
                             "for its SMs and shared memory (h100: also H200)")
    parser.add_argument("--config", type=int, nargs=4, metavar=("BLOCK", "WARPS", "STEPS", "STAGES"),
                        help="instead of the launch heuristic")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    masks = {"without": [False], "with": [True], "both": [False, True]}[args.mask]
    arch, (sms, smem, _) = GPUS[args.gpu]
    print(f"{args.gpu}: sm_{arch}, {sms} SMs, {smem // 1024} KB shared memory per SM; "
          f"{'oLRN' if args.output_gate else 'LRN'} T={args.T} B={args.B} "
          f"d={args.d}{' x 2 directions' if args.bidirectional else ''}\n")
    print("| kernel | dtype | mask | config | regs | spill B | smem B | sync loads | async copies "
          "| waits | steps in flight | shuffles | instr/step |\n" + "|---" * 13 + "|")
    rows = loop_rows(T=args.T, B=args.B, d=args.d, dtypes=args.dtype, masks=masks, gpu=args.gpu,
                     config=tuple(args.config) if args.config else None, bidirectional=args.bidirectional,
                     output_gate=args.output_gate)
    for r in rows:
        config = r["config"]
        print(f"| {r['kernel']} | {r['dtype']} | {'yes' if r['mask'] else 'no'} "
              f"| {', '.join(map(str, config))} | {r['registers']} | {r['spill_bytes']} "
              f"| {r['shared_bytes']} | {r['sync_loads']} | {r['async_copies']} "
              f"| {', '.join(map(str, r['waits'])) or '-'} | {r['steps_in_flight']} | {r['shuffles']} "
              f"| {r['instructions'] / config[2]:.0f} |", flush=True)
    if args.json:
        from fairseq_lrn.atomic_files import write_json

        write_json(args.json, rows)


if __name__ == "__main__":
    try:
        main()
    except UnsupportedTriton as error:
        sys.exit(f"cannot compile offline with this Triton ({error}); works with Triton 3.6 and 3.9")
