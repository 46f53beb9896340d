"""Train, translate and score one system of the race."""

import shlex
import shutil
import subprocess
import time
from pathlib import Path

from ...errors import GenerateOutputError
from ...tools import scoring, user_dir
from ...tools.generate_output import decoding_seconds, hypotheses_in_order, parse_generate_output
from ...tools.run import fairseq_command, run_fairseq

from .common import RaceError, log
from .systems import SYSTEMS, TEACHER, override, recipe
from .train_log import parse_train_log

def cuda_available():
    import torch

    return torch.cuda.is_available()


def distilled_data(args, data, cuda):
    """The race's data with the training target replaced by TEACHER's translations of the training
    source (sequence-level distillation, :func:`fairseq_lrn.tools.distill.distill`, with the race's
    test decoding: --beam, --max-len-a 1.5 --max-len-b 10): (data dict, distillation facts). The
    translation is resumable (shards in WORK/distilled/TEACHER/work) and done once for all students;
    a teacher trained again is translated again. Raises RaceError when the teacher is not trained."""
    from ...tools.distill import DistillError, SettingsChanged, distill

    teacher = args.work_dir / "systems" / TEACHER / "checkpoints" / "checkpoint_best.pt"
    if not teacher.is_file():
        raise RaceError(f"the distilled students learn from {TEACHER}'s translations, and {teacher} does not "
                        f"exist: race {TEACHER} first (--systems {TEACHER} ...)")
    out = args.work_dir / "distilled" / TEACHER
    options = dict(teacher=str(teacher), data_bin=data["bin"], out=str(out), source_lang=args.src,
                   target_lang=args.tgt, backend="auto", beam=args.beam, batch_size=64, max_len_a=1.5, max_len_b=10,
                   cpu=not cuda, log=log)
    start = time.time()
    try:
        try:
            result = distill(**options)
        except SettingsChanged as exc:
            log(f"{exc}: translating again")
            shutil.rmtree(out / "work")
            result = distill(**options)
    except (DistillError, OSError) as exc:
        raise RaceError(f"distillation through {teacher} failed: {exc}") from exc
    facts = {"teacher": TEACHER, "teacher_checkpoint": str(teacher), "data_bin": result.data_bin,
             "backend": result.backend, "sentences": result.sentences,
             "kept_original_target": len(result.fallback_ids), "report": result.report,
             "seconds_this_run": round(time.time() - start, 1)}
    return {**data, "bin": result.data_bin}, facts


def run_system(name, args, data, cuda, env):
    """Train, translate and score one system; return its result dict (with "error" if it failed).
    A system whose spec says ``"data": "distilled"`` trains on :func:`distilled_data`."""
    distillation = None
    if SYSTEMS[name].get("data") == "distilled":
        try:
            data, distillation = distilled_data(args, data, cuda)
        except RaceError as exc:
            return {"note": SYSTEMS[name]["note"], "error": str(exc)}
    sdir = args.work_dir / "systems" / name
    shutil.rmtree(sdir, ignore_errors=True)  # a fresh run: fairseq would resume a stale checkpoint_last.pt
    sdir.mkdir(parents=True)
    spec = SYSTEMS[name]
    train_argv = [*spec["args"], *recipe(args, args.budget_minutes / 60, cuda)]
    if args.tiny:
        train_argv = override(train_argv, spec["tiny"])
    train_argv = [data["bin"], "--user-dir", user_dir(), *override(train_argv, shlex.split(args.train_args)),
                  "--save-dir", str(sdir / "checkpoints")]
    result = {"note": spec["note"], "train_command": shlex.join(["fairseq-train", *train_argv]),
              "train_log": str(sdir / "train.log"), **({"distillation": distillation} if distillation else {})}
    log(f"{name}: training for {args.budget_minutes:g} min (log: {sdir / 'train.log'})")
    start = time.time()
    with open(sdir / "train.log", "w", encoding="utf-8") as f:
        rc = subprocess.run(fairseq_command("train", *train_argv), stdout=f, stderr=subprocess.STDOUT,
                            env=env).returncode
    result["train_process_seconds"] = round(time.time() - start, 1)
    log_text = (sdir / "train.log").read_text(encoding="utf-8", errors="replace")
    result.update(parse_train_log(log_text))
    best = sdir / "checkpoints" / "checkpoint_best.pt"
    if rc != 0 or not best.is_file():
        tail = "\n".join(log_text.splitlines()[-15:])
        result["error"] = (f"fairseq-train exited with {rc}" if rc else f"no {best} was written") + f":\n{tail}"
        return result

    log(f"{name}: translating the test set (beam {args.beam})")
    scored = translate_and_score(args, best, data["bin"], "test", data["test_references"], data["test_pairs"],
                                 sdir / "generate-test.txt", cuda, env)
    result.update(scored)
    if "error" in scored:
        return result
    log(f"{name}: BLEU {result['bleu']:.2f}, chrF {result['chrf']:.2f}")
    return result


def translate_and_score(args, checkpoint, data_bin, subset, references, pairs, hyp_path, cuda, env, extra=()):
    """fairseq-generate ``subset`` of ``data_bin`` with ``checkpoint`` (the race's decoding: --beam,
    batch 64, --max-len-a 1.5 --max-len-b 10, then ``extra`` flags), write its output to
    ``hyp_path`` (stderr next to it, ``.log``) and score it against the raw ``references`` (Moses
    detokenization, sacreBLEU and chrF). Returns the result fields: generate_command,
    decode_process_seconds, decode_seconds, bleu, chrf, their signatures, bleu_verbose, hypotheses;
    or, when a step fails, the fields so far and "error" (also when fewer than ``pairs`` sentences
    came back)."""
    gen_argv = [data_bin, "--user-dir", user_dir(), "--path", checkpoint, "--gen-subset", subset,
                "--beam", args.beam, "--batch-size", 64, "--remove-bpe",
                "--max-len-a", 1.5, "--max-len-b", 10, *extra,
                *([] if cuda else ["--cpu"])]
    result = {"generate_command": shlex.join(["fairseq-generate", *map(str, gen_argv)])}
    start = time.time()
    proc = run_fairseq("generate", *gen_argv, capture=True, check=False, env=env)
    result["decode_process_seconds"] = round(time.time() - start, 1)
    hyp_path = Path(hyp_path)
    hyp_path.write_text(proc.stdout, encoding="utf-8")
    hyp_path.with_suffix(".log").write_text(proc.stderr, encoding="utf-8")
    if proc.returncode != 0:
        return {**result, "error": f"fairseq-generate exited with {proc.returncode}:\n{proc.stderr[-2000:]}"}
    seconds = decoding_seconds(proc.stdout + proc.stderr)
    if seconds is not None:
        result["decode_seconds"] = seconds
    try:  # the rule fairseq_lrn.tools.scoring reads them by: every id 0 .. n-1, D- lines before H- lines
        translated, _ = hypotheses_in_order(parse_generate_output(proc.stdout), what=str(hyp_path))
    except GenerateOutputError as exc:
        return {**result, "error": str(exc)}
    if len(translated) != pairs:
        return {**result, "error": f"fairseq-generate translated {len(translated)} of {pairs} {subset} "
                                   f"sentences ({hyp_path})"}
    try:
        score = scoring.score_file(hyp_path, [references], lang=args.tgt, bpe="none", detok="moses")
    except scoring.EvalError as exc:
        return {**result, "error": str(exc)}
    return {**result, "bleu": round(score["bleu"]["score"], 2), "chrf": round(score["chrf"]["score"], 2),
            "bleu_signature": score["bleu"]["signature"], "chrf_signature": score["chrf"]["signature"],
            "bleu_verbose": score["bleu"]["verbose"], "hypotheses": str(hyp_path)}


def tune_lenpen(name, args, data, cuda, env):
    """The length penalty of ``name``'s beam search chosen on the validation set: decode the valid
    split with each of ``args.lenpen_grid`` (fairseq-generate --lenpen), keep the one with the
    best validation BLEU (the smallest change from 1.0 on a tie), and translate the test set with
    it. Returns ``{"grid": [...], "valid_bleu": {lenpen: BLEU}, "chosen": lenpen, "bleu", "chrf",
    ...}`` (the test scores with the chosen penalty), or ``{"error": ...}``. The test set is only
    translated, never used to choose."""
    sdir = args.work_dir / "systems" / name
    best = sdir / "checkpoints" / "checkpoint_best.pt"
    if not best.is_file():
        return {"error": f"no checkpoint {best} to decode with another length penalty"}
    valid_refs = f"{args.valid}.{args.tgt}"
    tuned = {"grid": list(args.lenpen_grid), "valid_bleu": {}}
    for lenpen in args.lenpen_grid:
        log(f"{name}: translating the validation set with --lenpen {lenpen:g}")
        scored = translate_and_score(args, best, data["bin"], "valid", valid_refs, data["valid_pairs"],
                                     sdir / f"generate-valid-lenpen{lenpen:g}.txt", cuda, env,
                                     extra=("--lenpen", f"{lenpen:g}"))
        if "error" in scored:
            return {**tuned, "error": scored["error"]}
        tuned["valid_bleu"][f"{lenpen:g}"] = scored["bleu"]
    chosen = max(args.lenpen_grid, key=lambda lp: (tuned["valid_bleu"][f"{lp:g}"], -abs(lp - 1.0)))
    log(f"{name}: --lenpen {chosen:g} has the best validation BLEU; translating the test set with it")
    scored = translate_and_score(args, best, data["bin"], "test", data["test_references"], data["test_pairs"],
                                 sdir / f"generate-test-lenpen{chosen:g}.txt", cuda, env,
                                 extra=("--lenpen", f"{chosen:g}"))
    tuned.update(chosen=chosen, **scored)
    if "error" not in scored:
        log(f"{name}: with --lenpen {chosen:g}: BLEU {scored['bleu']:.2f}, chrF {scored['chrf']:.2f}")
    return tuned
