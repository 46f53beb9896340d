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
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from typing import List, Optional, Tuple

import torch

os.environ.pop("TRITON_INTERPRET", None)  # compile for real, whatever the caller's environment
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# name: (sm_<arch>, (SMs, shared memory per SM, cp.async)) as the launch heuristic sees the GPU
GPUS = {
    "h100": (90, (132, 228 * 1024, True)),  # H100 SXM, H200
    "a100": (80, (108, 164 * 1024, True)),
    "a10": (86, (72, 100 * 1024, True)),
    "l4": (89, (58, 100 * 1024, True)),
    "t4": (75, (40, 64 * 1024, False)),
}


def nvidia_tools() -> str:
    """Directory of the CUDA tools bundled with Triton; raises RuntimeError if missing."""
    import triton

    path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
    if not all(os.path.exists(os.path.join(path, tool)) for tool in ("ptxas", "cuobjdump")):
        raise RuntimeError(f"Triton's NVIDIA tools (ptxas, cuobjdump) are not in {path}")
    return path


class UnsupportedTriton(RuntimeError):
    """This Triton's internals differ from those the offline compile relies on (Triton 3.6-3.9)."""


def compile_kernel(kernel, args: tuple, arch: int = 90, **flags):
    """``kernel`` compiled for ``sm_<arch>`` as ``kernel[grid](*args, **flags)`` would compile it."""
    import triton
    try:  # Triton internals: the launch-time argument binder and specialisation
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
        from triton.compiler.compiler import make_backend
        from triton.runtime.jit import create_function_from_signature

        target = GPUTarget("cuda", arch, 32)
        backend = make_backend(target)
        binder = create_function_from_signature(kernel.signature, kernel.params, backend)
        bound, specialization, options = binder(*args, **flags)
        options, signature, constexprs, attrs = kernel._pack_args(backend, flags, bound, specialization,
                                                                  options)
    except (ImportError, AttributeError, TypeError, ValueError) as error:
        raise UnsupportedTriton(f"Triton {triton.__version__}: {type(error).__name__}: {error}") from error
    return triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=target,
                          options=options.__dict__)


@dataclass
class LoopReport:
    registers: int
    spill_bytes: int  # local memory (stack) per thread
    shared_bytes: int
    sync_loads: int
    async_copies: int
    commit_groups: int  # cp.async groups committed per iteration (LDGDEPBAR)
    waits: List[int]  # N of each DEPBAR.LE SB0, N in the loop
    shuffles: int
    instructions: int  # in the loop

    def steps_in_flight(self, steps: int) -> int:
        """Steps of inputs in flight while a ``steps``-step chunk is computed."""
        if not self.waits or not self.commit_groups:
            return 0
        return min(self.waits) // self.commit_groups * steps


def inspect(compiled) -> LoopReport:
    """LoopReport of a compiled kernel's time loop (the span of its backward branch)."""
    cuobjdump = os.path.join(nvidia_tools(), "cuobjdump")
    with tempfile.TemporaryDirectory() as tmp:
        cubin = os.path.join(tmp, "kernel.cubin")
        with open(cubin, "wb") as f:
            f.write(compiled.asm["cubin"])
        sass = subprocess.run([cuobjdump, "-sass", cubin], capture_output=True, text=True, check=True).stdout
        usage = subprocess.run([cuobjdump, "-res-usage", cubin], capture_output=True, text=True,
                               check=True).stdout
    code = [(int(a, 16), op) for a, op in re.findall(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", sass)]
    branches = [(addr, int(target, 16)) for addr, op in code
                for target in re.findall(r"\bBRA (?:\S+ )?0x([0-9a-f]+)", op) if int(target, 16) < addr]
    if not branches:
        raise RuntimeError("no loop (backward branch) in the kernel's SASS")
    end, start = max(branches, key=lambda b: b[0] - b[1])
    loop = [op for addr, op in code if start <= addr <= end]
    regs, stack = (int(x) for x in re.search(r"REG:(\d+).*?STACK:(\d+)", usage).groups())
    return LoopReport(
        registers=regs, spill_bytes=stack, shared_bytes=compiled.metadata.shared,
        sync_loads=sum(bool(re.search(r"\bLDG\.", op)) for op in loop),
        async_copies=sum("LDGSTS" in op for op in loop),
        commit_groups=sum(op.split()[-1] == "LDGDEPBAR" for op in loop),
        waits=[int(n, 16) for op in loop for n in re.findall(r"DEPBAR\.LE SB0, (0x[0-9a-f]+)", op)],
        shuffles=sum("SHFL" in op for op in loop), instructions=len(loop))


def kernel_args(direction: str, T: int, B: int, d: int, dtype: torch.dtype, mask: bool,
                bidirectional: bool = False, output_gate: bool = False) -> Tuple:
    """Positional arguments of ``_lrn_fwd_kernel`` / ``_lrn_bwd_kernel`` (CPU tensors: only
    their dtypes, alignment and strides matter), as LRNRecurrenceFused passes them."""
    D = 2 * d if bidirectional else d
    pqr = torch.empty(T, B, 4 if output_gate else 3, D, dtype=dtype)
    seq, state = torch.empty(T, B, D, dtype=dtype), torch.empty(B, D, dtype=dtype)
    pad = torch.empty(T, B, dtype=torch.int32) if mask else None
    h0 = torch.empty(B, D, dtype=dtype)
    sizes = (T, B, d, *pqr.stride())
    if direction == "fwd":  # pqr, h0, pad, out, states, h_last
        return (pqr, h0, pad, seq, torch.empty_like(seq) if mask else seq, state, *sizes)
    # pqr, h0, pad, states, dout, dlast, dpqr, dh0
    return (pqr, h0, pad, seq, torch.empty_like(seq), state, torch.empty_like(pqr), h0, *sizes)


def report(direction: str, T: int, B: int, d: int, dtype_name: str, mask: bool,
           config: Optional[Tuple[int, int, int, int]] = None, tanh: bool = False,
           bidirectional: bool = False, gpu: str = "h100", output_gate: bool = False
           ) -> Tuple[Tuple[int, int, int, int], LoopReport]:
    """(config, LoopReport) of one kernel (of oLRN with ``output_gate``) at one shape, compiled
    for ``gpu`` (a key of GPUS); config defaults to the launch heuristic for that GPU."""
    from fairseq_lrn.ops import launch_config, triton_lrn

    dtype = DTYPES[dtype_name]
    tiles = launch_config.chunk_tiles(backward=direction == "bwd", output_gate=output_gate)
    rows = B * (2 if bidirectional else 1)
    arch, limits = GPUS[gpu]
    config = launch_config.LaunchConfig(*config) if config else launch_config.choose_config(
        d, rows, itemsize=dtype.itemsize, tiles=tiles, limits=launch_config.DeviceLimits(*limits))
    kernel = triton_lrn._lrn_fwd_kernel if direction == "fwd" else triton_lrn._lrn_bwd_kernel
    args = kernel_args(direction, T, B, d, dtype, mask, bidirectional, output_gate)
    flags = triton_lrn._kernel_flags(config, args[0], d, has_h0=True, has_mask=mask, tanh=tanh,
                                     output_gate=output_gate)
    return config, inspect(compile_kernel(kernel, args, arch, **flags))


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
    from fairseq_lrn.ops.launch_config import hidden_steps

    masks = {"without": [False], "with": [True], "both": [False, True]}[args.mask]
    arch, (sms, smem, _) = GPUS[args.gpu]
    print(f"{args.gpu}: sm_{arch}, {sms} SMs, {smem // 1024} KB shared memory per SM; "
          f"{'oLRN' if args.output_gate else 'LRN'} T={args.T} B={args.B} "
          f"d={args.d}{' x 2 directions' if args.bidirectional else ''}\n")
    print("| kernel | dtype | mask | config | regs | spill B | smem B | sync loads | async copies "
          "| waits | steps in flight | shuffles | instr/step |\n" + "|---" * 13 + "|")
    rows = []
    for dtype_name in args.dtype:
        for mask in masks:
            for direction in ("fwd", "bwd"):
                config, r = report(direction, args.T, args.B, args.d, dtype_name, mask,
                                   tuple(args.config) if args.config else None,
                                   bidirectional=args.bidirectional, gpu=args.gpu,
                                   output_gate=args.output_gate)
                in_flight = r.steps_in_flight(config[2])
                rows.append({"kernel": direction, "dtype": dtype_name, "mask": mask, "gpu": args.gpu,
                             "output_gate": args.output_gate,
                             "config": config, **asdict(r), "steps_in_flight": in_flight,
                             "hidden_steps_model": hidden_steps(config.steps, config.stages)})
                print(f"| {direction} | {dtype_name} | {'yes' if mask else 'no'} "
                      f"| {', '.join(map(str, config))} | {r.registers} | {r.spill_bytes} "
                      f"| {r.shared_bytes} | {r.sync_loads} | {r.async_copies} "
                      f"| {', '.join(map(str, r.waits)) or '-'} | {in_flight} | {r.shuffles} "
                      f"| {r.instructions / config[2]:.0f} |", flush=True)
    if args.json:
        from fairseq_lrn.atomic_files import write_json

        write_json(args.json, rows)


if __name__ == "__main__":
    try:
        main()
    except UnsupportedTriton as error:
        sys.exit(f"cannot compile offline with this Triton ({error}); works with Triton 3.6 and 3.9")
