"""GPU part of the reliability checks, for a lent CUDA machine (not collected by pytest).

    python -m tests.reliability.gpu_check            # from the checkout, on a CUDA machine with fairseq
    python -m tests.reliability.gpu_check --cpu      # the same steps on CPU (a smoke test of this script)

On one GPU: a reference run (fused kernel, fp32, --update-freq 2); two ranks started through
scripts/launch_distributed.py (torchrun, torch DDP c10d with find_unused_parameters off, gloo because
NCCL refuses two ranks on one GPU) compared with it, then resumed (broadcast of the checkpoint);
the reference run again (determinism); --fp16 with a huge initial loss scale (overflows must be
skipped by fairseq's loss scaler, then training goes on); --fp16 from weights holding inf (the
scaler must end the run with "Minimum loss scale reached"); --bf16 and --amp runs (finite losses
at every update). Prints a JSON summary; logs go to $OUT.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

from tests.cli_utils import preprocess, write_reversal_corpus
from tests.reliability.helpers import (LAUNCHER, env, launch, load, losses, tensors,
                                       train_args)

CPU = "--cpu" in sys.argv
OUT = os.environ.get("OUT") or tempfile.mkdtemp(prefix="gpu-check-out-")
os.makedirs(OUT, exist_ok=True)
WORK = tempfile.mkdtemp(prefix="gpu-check-")
results = {}


def args(save, *extra, max_update):
    argv = [a for a in train_args(DATA_BIN, save, *extra, max_update=max_update) if a != "--cpu"]
    return argv + (["--cpu"] if CPU else [])


def logfile(name):
    return os.path.join(OUT, f"{name}.log")


def check(name):
    def wrap(fn):
        began = time.time()
        try:
            detail = fn()
            results[name] = {"ok": True, **(detail or {})}
        except Exception as error:  # record and go on: one call, every check
            results[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"[-1500:],
                             "where": traceback.format_exc()[-1500:]}
        results[name]["seconds"] = round(time.time() - began, 1)
        print(name, json.dumps(results[name])[:600], flush=True)
        return fn
    return wrap


def max_diff(a, b):
    ta, tb = tensors(load(a)), tensors(load(b))
    return max(float((ta[k].double() - tb[k].double()).abs().max()) for k in ta)


def loss_table(text):
    return {u: v[0] for u, v in losses(text).items()}


write_reversal_corpus(WORK, n_train=400)
DATA_BIN = preprocess(WORK)
REF, REF2 = os.path.join(WORK, "ref"), os.path.join(WORK, "ref2")


@check("environment")
def _():
    import torch

    from fairseq_lrn.ops import resolve_impl
    x = torch.zeros(1, device="cuda" if torch.cuda.is_available() and not CPU else "cpu")
    return {"torch": torch.__version__, "cuda": torch.version.cuda,
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "lrn_impl_auto": resolve_impl("auto", x)}


@check("reference_fp32_update_freq_2")
def _():
    code = launch(args(REF, "--update-freq", "2", max_update=9), logfile("ref"))
    text = open(logfile("ref")).read()
    assert code == 0, text[-2000:]
    return {"losses": loss_table(text)}


@check("torchrun_2_ranks_c10d_gloo")
def _():
    save = os.path.join(WORK, "dist")
    extra = ["--distributed-backend", "gloo"]
    command = [sys.executable, LAUNCHER, "--nproc", "2", "--device", "cpu" if CPU else "gpu", "--",
               *args(save, *extra, max_update=6)]
    with open(logfile("dist"), "w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env(), timeout=400).returncode
    text = open(logfile("dist")).read()
    assert code == 0, text[-2000:]
    ref, dist = loss_table(open(logfile("ref")).read()), loss_table(text)
    assert sorted(dist) == [1, 2, 3, 4, 5, 6], dist
    return {"ddp": re.findall(r"ddp_backend': '(\w+)'", text)[:1], "losses": dist,
            "same_losses_as_reference_3_decimals": all(dist[u] == ref[u] for u in dist),
            "max_abs_diff_vs_reference_at_6": max_diff(os.path.join(save, "checkpoint_1_6.pt"),
                                                      os.path.join(REF, "checkpoint_1_6.pt")),
            "files": sorted(os.listdir(save))}


@check("torchrun_2_ranks_resume")
def _():
    save = os.path.join(WORK, "dist")
    command = [sys.executable, LAUNCHER, "--nproc", "2", "--device", "cpu" if CPU else "gpu", "--",
               *args(save, "--distributed-backend", "gloo", max_update=9)]
    with open(logfile("dist-resume"), "w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env(), timeout=400).returncode
    text = open(logfile("dist-resume")).read()
    assert code == 0, text[-2000:]
    assert "(epoch 1 @ 6 updates)" in text
    ref, dist = loss_table(open(logfile("ref")).read()), loss_table(text)
    return {"losses": dist, "same_losses_as_reference_3_decimals": all(dist[u] == ref[u] for u in dist),
            "max_abs_diff_vs_reference_at_9": max_diff(os.path.join(save, "checkpoint_2_9.pt"),
                                                      os.path.join(REF, "checkpoint_2_9.pt"))}


@check("determinism_second_run")
def _():
    code = launch(args(REF2, "--update-freq", "2", max_update=9), logfile("ref2"))
    text = open(logfile("ref2")).read()
    assert code == 0, text[-2000:]
    names = sorted(n for n in os.listdir(REF) if n.endswith(".pt"))
    identical = {}
    for name in names:
        ta, tb = tensors(load(os.path.join(REF, name))), tensors(load(os.path.join(REF2, name)))
        identical[name] = sum(not bool((ta[k] == tb[k]).all()) for k in ta)
    return {"same_logged_losses": loss_table(text) == loss_table(open(logfile("ref")).read()),
            "tensors_differing_per_checkpoint": identical,
            "max_abs_diff_final": max_diff(os.path.join(REF, "checkpoint_last.pt"),
                                           os.path.join(REF2, "checkpoint_last.pt"))}


if not CPU:
    @check("fp16_overflow_is_skipped_then_training_goes_on")
    def _():
        import torch

        save = os.path.join(WORK, "fp16")
        code = launch(args(save, "--fp16", "--fp16-init-scale", str(2 ** 30), max_update=6), logfile("fp16"))
        text = open(logfile("fp16")).read()
        assert code == 0, text[-2000:]
        skipped = len(re.findall(r"gradient overflow detected", text))
        weights = load(os.path.join(save, "checkpoint_last.pt"))["model"]
        return {"overflow_steps_skipped": skipped, "losses": loss_table(text),
                "final_loss_scale": re.findall(r"loss_scale=([\d.]+)", text)[-1:],
                "weights_finite": all(bool(torch.isfinite(w.float()).all()) for w in weights.values())}

    @check("bf16_and_amp_train_with_the_fused_kernel")
    def _():
        import math

        runs = {}
        for flag in ("--bf16", "--amp"):
            name = flag.lstrip("-")
            code = launch(args(os.path.join(WORK, name), flag, max_update=6), logfile(name))
            text = open(logfile(name)).read()
            assert code == 0, text[-2000:]
            table = loss_table(text)
            assert sorted(table) == [1, 2, 3, 4, 5, 6] and all(math.isfinite(v) for v in table.values()), table
            runs[name] = {"losses": table}
        return runs

    @check("fp16_inf_weights_end_with_min_loss_scale")
    def _():
        from fairseq import checkpoint_utils
        from omegaconf import OmegaConf

        state = load(os.path.join(REF, "checkpoint_1_6.pt"))
        state["cfg"] = OmegaConf.to_container(state["cfg"])
        state["model"]["decoder.out_proj.weight"][0, 0] = float("inf")
        poisoned = os.path.join(WORK, "poisoned.pt")
        checkpoint_utils.torch_persistent_save(state, poisoned)
        save = os.path.join(WORK, "fp16-nan")
        code = launch(args(save, "--fp16", "--restore-file", poisoned, "--reset-optimizer", max_update=200),
                      logfile("fp16-nan"))
        text = open(logfile("fp16-nan")).read()
        assert code != 0, "expected the run to stop"
        assert "Minimum loss scale reached" in text, text[-2000:]
        return {"overflow_steps_skipped": len(re.findall(r"gradient overflow detected", text)),
                "files_left": sorted(os.listdir(save)) if os.path.isdir(save) else []}


print("SUMMARY " + json.dumps(results, sort_keys=True))
with open(os.path.join(OUT, "summary.json"), "w") as f:
    json.dump(results, f, indent=1, sort_keys=True)
shutil.rmtree(WORK, ignore_errors=True)
sys.exit(0 if all(r["ok"] for r in results.values()) else 1)
