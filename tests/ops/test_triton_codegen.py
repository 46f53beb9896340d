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

import concurrent.futures
import importlib.util
import multiprocessing
import os

import pytest

# Triton is not imported here: importing it before test_triton_lrn sets TRITON_INTERPRET=1 would
# break the interpreter mode in this process. The compiling happens in a fresh (spawned) process.
TRITON = importlib.util.find_spec("triton")
if TRITON is None:
    pytest.skip("compiling the fused kernels needs Triton", allow_module_level=True)

TOOLS = os.path.join(os.path.dirname(TRITON.origin), "backends", "nvidia", "bin")


SHAPES = {
    # the benchmark's target: fwd/bwd x fp32/bf16 x with/without mask
    "T=500 B=128 d=1024": dict(masks=(False, True)),
    # the same on an A100: less shared memory, so some configs use 2-step chunks
    "T=500 B=128 d=1024 a100": dict(gpu="a100", masks=(False, True)),
    # channels not a multiple of 16 (Triton alone would not know 2-byte offsets aligned), 2 directions
    "T=37 B=3 d=202 x2": dict(T=37, B=3, d=202, bidirectional=True, dtypes=("bf16",), masks=(True,)),
    # oLRN (one more tile per step, the output gate's s) at the benchmark's target
    "T=500 B=128 d=1024 olrn": dict(output_gate=True, masks=(False, True)),
}
# Two stages: the one buffer is refilled only after its chunk is computed, so nothing is in flight
# while a chunk is computed (why the heuristic never picks it).
TWO_STAGES = dict(config=(128, 1, 4, 2), dtypes=("bf16",))


def _rows_compiled_for_real(options):
    """:func:`fairseq_lrn.ops.kernel_inspection.loop_rows` in this (spawned) process, Triton in
    compiling mode."""
    os.environ.pop("TRITON_INTERPRET", None)
    from fairseq_lrn.ops.kernel_inspection import loop_rows

    return loop_rows(**options)


def inspect_loops(options):
    """Rows of :func:`~fairseq_lrn.ops.kernel_inspection.loop_rows` (``options``), computed in a
    spawned process."""
    if not os.path.exists(os.path.join(TOOLS, "ptxas")):
        pytest.skip(f"this Triton has no bundled ptxas in {TOOLS}")
    from fairseq_lrn.ops.kernel_inspection import UnsupportedTriton

    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            rows = pool.submit(_rows_compiled_for_real, options).result(timeout=600)
        except UnsupportedTriton as error:
            pytest.skip(f"cannot compile offline with this Triton ({error})")
    assert rows and {row["kernel"] for row in rows} == {"fwd", "bwd"}
    return rows


@pytest.fixture(scope="module", params=sorted(SHAPES))
def loops(request):
    return inspect_loops(SHAPES[request.param])


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


def test_two_stages_leave_nothing_in_flight():
    for row in inspect_loops(TWO_STAGES):
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
