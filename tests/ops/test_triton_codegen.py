"""The fused kernels' time loop as compiled for an H100/H200 (sm_90) and an A100 (sm_80), checked
offline in SASS.

The loop is bound by load latency: a plain load inside it is waited on within a step or two,
and the whole kernel then runs at one memory latency per step (what the first version did).
These tests compile both kernels at the benchmark's target shape and at an odd one with the launch
heuristic's configs, with Triton's bundled ptxas (no GPU needed), and check that every load in the
loop is a pipelined cp.async whose waits leave as many steps in flight as the heuristic's model
(``launch_config.hidden_steps``) counts on, without spills, and that each thread holds whole columns
of a chunk (no shuffling of its steps between threads).
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

# Triton is not imported here: importing it before test_triton_lrn sets TRITON_INTERPRET=1 would
# break the interpreter mode in this process. The compiling happens in a subprocess.
TRITON = importlib.util.find_spec("triton")
if TRITON is None:
    pytest.skip("compiling the fused kernels needs Triton", allow_module_level=True)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(os.path.dirname(TRITON.origin), "backends", "nvidia", "bin")


SHAPES = {
    # the benchmark's target: fwd/bwd x fp32/bf16 x with/without mask
    "T=500 B=128 d=1024": ["--mask", "both"],
    # the same on an A100: less shared memory, so some configs use 2-step chunks
    "T=500 B=128 d=1024 a100": ["--gpu", "a100", "--mask", "both"],
    # channels not a multiple of 16 (Triton alone would not know 2-byte offsets aligned), 2 directions
    "T=37 B=3 d=202 x2": ["--T", "37", "--B", "3", "--d", "202", "--bidirectional", "--dtype", "bf16",
                          "--mask", "with"],
    # oLRN (one more tile per step, the output gate's s) at the benchmark's target
    "T=500 B=128 d=1024 olrn": ["--output-gate", "--mask", "both"],
}
# Two stages: the one buffer is refilled only after its chunk is computed, so nothing is in flight
# while a chunk is computed (why the heuristic never picks it).
TWO_STAGES = ["--config", "128", "1", "4", "2", "--dtype", "bf16"]


def inspect_loops(args, tmp_path_factory):
    """Rows of ``scripts/inspect_kernels.py ARGS --json``, run in a subprocess."""
    if not os.path.exists(os.path.join(TOOLS, "ptxas")):
        pytest.skip(f"this Triton has no bundled ptxas in {TOOLS}")
    out = tmp_path_factory.mktemp("codegen") / "loops.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "inspect_kernels.py"),
                          *args, "--json", str(out)],
                         capture_output=True, text=True, env=env, timeout=600)
    if "cannot compile offline with this Triton" in run.stderr:
        pytest.skip(run.stderr.strip().splitlines()[-1])
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert rows and {row["kernel"] for row in rows} == {"fwd", "bwd"}
    return rows


@pytest.fixture(scope="module", params=sorted(SHAPES))
def loops(request, tmp_path_factory):
    return inspect_loops(SHAPES[request.param], tmp_path_factory)


def name(row):
    cell = "oLRN" if row["output_gate"] else "LRN"
    return f"{row['gpu']} {cell} {row['kernel']} {row['dtype']} mask={row['mask']} config={row['config']}"


def test_every_load_in_the_time_loop_is_pipelined(loops):
    for row in loops:
        assert row["sync_loads"] == 0, name(row)
        # p, q, r (, s) (+ dout, states, pad flags)
        assert row["async_copies"] >= (4 if row["output_gate"] else 3), name(row)
        assert row["waits"] and min(row["waits"]) > 0, f"{name(row)}: waits {row['waits']}"
        assert row["steps_in_flight"] == row["hidden_steps_model"] > 0, \
            f"{name(row)}: {row['steps_in_flight']} steps in flight, model {row['hidden_steps_model']}"


def test_two_stages_leave_nothing_in_flight(tmp_path_factory):
    for row in inspect_loops(TWO_STAGES, tmp_path_factory):
        assert row["sync_loads"] == 0 and row["async_copies"] >= 3, name(row)
        assert row["steps_in_flight"] == row["hidden_steps_model"] == 0, f"{name(row)}: waits {row['waits']}"


def test_no_spills_and_each_thread_holds_whole_columns(loops):
    for row in loops:
        assert row["spill_bytes"] == 0, name(row)
        # A chunk whose steps are split across threads costs about 50 shuffles per step (bf16 at
        # BLOCK=128 without the contiguity declaration: 384 per 8-step chunk); Triton 3.6 spends
        # 8 per 4-step chunk on broadcasting the padding flags, Triton 3.9 none.
        steps = row["config"][2]
        assert row["shuffles"] <= 2 * steps, f"{name(row)}: {row['shuffles']} shuffles"
