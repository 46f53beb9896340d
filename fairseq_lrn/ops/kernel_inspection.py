"""The fused LRN kernels compiled offline for a GPU architecture (no GPU needed), and what their
time loop does: registers, spills, shared memory, and how its loads wait (used by
``scripts/inspect_kernels.py`` and the codegen tests).

The kernels are specialised exactly as a launch at the given shape would specialise them
(:func:`~.triton_lrn.kernel_launch`, Triton's own argument binder: pointer alignment, strides
equal to 1, divisibility by 16), then compiled to SASS with the ptxas bundled in Triton's wheel.
In the SASS, the time loop is the span of the backward branch. Triton is imported inside the
functions; the caller's process must not run in ``TRITON_INTERPRET=1`` mode.
"""

import os
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from typing import List, Optional, Tuple

import torch

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


def report(direction: str, T: int, B: int, d: int, dtype_name: str, mask: bool,
           config: Optional[Tuple[int, int, int, int]] = None, tanh: bool = False,
           bidirectional: bool = False, gpu: str = "h100", output_gate: bool = False
           ) -> Tuple[Tuple[int, int, int, int], LoopReport]:
    """(config, LoopReport) of one kernel (of oLRN with ``output_gate``) at one shape, compiled
    for ``gpu`` (a key of GPUS); config defaults to the launch heuristic for that GPU."""
    from . import launch_config
    from .triton_lrn import kernel_launch

    dtype = DTYPES[dtype_name]
    tiles = launch_config.chunk_tiles(backward=direction == "bwd", output_gate=output_gate)
    rows = B * (2 if bidirectional else 1)
    arch, limits = GPUS[gpu]
    config = launch_config.LaunchConfig(*config) if config else launch_config.choose_config(
        d, rows, itemsize=dtype.itemsize, tiles=tiles, limits=launch_config.DeviceLimits(*limits))
    kernel, args, flags = kernel_launch(direction, T=T, B=B, d=d, dtype=dtype, config=config, mask=mask,
                                        bidirectional=bidirectional, output_gate=output_gate, tanh=tanh)
    return config, inspect(compile_kernel(kernel, args, arch, **flags))


def loop_rows(*, T: int = 500, B: int = 128, d: int = 1024, dtypes=("fp32", "bf16"), masks=(False,),
              gpu: str = "h100", config: Optional[Tuple[int, int, int, int]] = None, bidirectional: bool = False,
              output_gate: bool = False) -> List[dict]:
    """One row per (dtype, mask, forward / backward kernel): the kernel's :class:`LoopReport`
    fields with its config, the steps in flight and the launch heuristic's model of them
    (``launch_config.hidden_steps``)."""
    from .launch_config import hidden_steps

    rows = []
    for dtype_name in dtypes:
        for mask in masks:
            for direction in ("fwd", "bwd"):
                cfg, r = report(direction, T, B, d, dtype_name, mask, config, bidirectional=bidirectional,
                                gpu=gpu, output_gate=output_gate)
                rows.append({"kernel": direction, "dtype": dtype_name, "mask": mask, "gpu": gpu,
                             "output_gate": output_gate, "config": cfg, **asdict(r),
                             "steps_in_flight": r.steps_in_flight(cfg[2]),
                             "hidden_steps_model": hidden_steps(cfg.steps, cfg.stages)})
    return rows
