"""Benchmark the LRN recurrence and the LRN layer against nn.LSTM / nn.GRU.

For every (T, B, d, dtype) in the grid, on one device (CUDA if available, else CPU):

* recurrence over precomputed projections ``pqr (T, B, 3, d)``: forward and forward+backward
  of the fused Triton kernels (CUDA only), the PyTorch ``cpu`` path and the step-by-step
  reference (small T only); the fused kernels' achieved bandwidth (bytes they must move / time)
  against a device-to-device copy measured in the same run;
* layers of width d: LRN (projection GEMM + recurrence, ``impl="auto"``), the projection GEMM
  alone, ``nn.LSTM`` and ``nn.GRU`` (cuDNN on GPU).

With ``--output-gate``, every config also gets oLRN rows (``pqr (T, B, 4, d)``, the LRN layer
with the output gate and its 4-gate projection; LSTM/GRU are not timed again) and a table of
oLRN's cost over LRN.

Forward times are taken in training mode (autograd recording). Prints markdown tables;
``--json`` / ``--plot`` save the numbers / a figure. Needs only torch (+ Triton for fused):

    python scripts/benchmark_kernel.py                     # default grid (GPU: about 1 min on an H200)
    python scripts/benchmark_kernel.py --device cpu --quick
    python scripts/benchmark_kernel.py --quick --output-gate   # oLRN against LRN
"""

import argparse

import torch

from fairseq_lrn.bench import kernel_report  # kernel_* import no fairseq
from fairseq_lrn.bench.kernel_timing import DTYPES


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--T", type=int, nargs="+", default=[30, 100, 500])
    parser.add_argument("--B", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--d", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--dtype", nargs="+", choices=sorted(DTYPES), default=None,
                        help="default: fp32 bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--quick", action="store_true", help="small grid: T=30, B=32, d=512")
    parser.add_argument("--skip-reference", action="store_true", help="never time the reference")
    parser.add_argument("--reference-max-T", type=int, default=100,
                        help="time the (slow) reference only up to this T")
    parser.add_argument("--output-gate", action="store_true",
                        help="also time oLRN (4 gates) at every config, and print its cost over LRN")
    parser.add_argument("--sweep", action="store_true",
                        help="also time fused fwd+bwd for several (BLOCK, num_warps, STEPS, STAGES) "
                             "at the largest shape")
    parser.add_argument("--tf32", choices=["on", "off", "torch-default"], default="on",
                        help="TF32 for fp32 GEMMs and cuDNN RNNs alike (on, the default, or off), or "
                             "torch's defaults (cuDNN on, matmul off: LSTM/GRU get TF32, the LRN "
                             "projection does not)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="calls before timing (default: 3 on CUDA, 1 on CPU)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--budget", type=float, default=0.25,
                        help="seconds per measurement; fewer repeats (>= 3) for slow ones")
    parser.add_argument("--json", help="write all numbers to this JSON file")
    parser.add_argument("--plot", help="write a PNG figure here (needs matplotlib)")
    args = parser.parse_args()
    args.device = torch.device(args.device)
    if args.warmup is None:
        args.warmup = 3 if args.device.type == "cuda" else 1
    if args.dtype is None:
        args.dtype = ["fp32", "bf16"] if args.device.type == "cuda" else ["fp32"]
    if args.quick:
        args.T, args.B, args.d = [30], [32], [512]
    return args

def main():
    kernel_report.run(parse_args())


if __name__ == "__main__":
    main()
