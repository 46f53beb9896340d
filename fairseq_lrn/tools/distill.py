"""Sequence-level knowledge distillation (Kim & Rush, 2016) in one call: translate the training
source with a teacher, binarize the teacher's translations as the new training target with the
teacher's own dictionaries, optionally train a student on them (``scripts/distill.py`` is the
command line; :func:`distill` does the work).

The training split is read from the teacher's data-bin (``train.{src}-{tgt}.{lang}``), so the
distilled corpus has exactly its sentences, in its order. Translation runs in shards of
``shard_size`` sentences; each finished shard is committed atomically to
``{out}/work/shard-NNNNN.tsv`` (``id<TAB>translation`` lines), so a killed run, started again
with the same arguments, goes on from the first missing shard. Two back-ends:

* ``fast``: ``python -m fairseq_lrn.translate`` (the fast translation command) over the shard's
  source lines, for the teachers it runs (``lrn`` and ``transformer_lrn``, oLRN and the
  ``--decoder-style conditional`` decoder included): ``auto`` picks it for them;
* ``generate``: ``fairseq-generate --gen-subset train`` over a data-bin of the shard (binarized
  with the teacher's dictionaries), its output ordered by sentence id
  (:mod:`fairseq_lrn.tools.generate_output`); any teacher, e.g. fairseq's ``transformer``.

No sentence is dropped: an empty translation, or one missing from a shard's output, keeps the
original target, and is counted and listed (ids) in ``{out}/distill_report.json``.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..atomic_files import atomic_outputs, write_json
from . import user_dir
from .data_bin import build_data_bin
from .generate_output import parse_generate_output
from .run import run_fairseq

BACKENDS = ("auto", "fast", "generate")
REPORT = "distill_report.json"

#: A translation back-end: (source lines of one shard, shard folder) -> one translation per line
#: (``None`` where the teacher gave none).
Translator = Callable[[List[str], str], List[Optional[str]]]


class DistillError(RuntimeError):
    """A distillation that cannot go on: bad input, or a resumed run with other settings."""


class SettingsChanged(DistillError):
    """The output folder holds shards of a run with other settings (or another teacher file)."""


@dataclass
class DistillResult:
    """What :func:`distill` produced: the distilled data-bin, the sentence count, the ids whose
    original target was kept (``fallback_ids``) and the report file."""
    data_bin: str
    sentences: int
    fallback_ids: List[int] = field(default_factory=list)
    report: str = ""
    backend: str = ""


def read_train_split(data_bin: str, source_lang: str, target_lang: str) -> Tuple[List[str], List[str]]:
    """The binarized training split of ``data_bin`` as text: (source lines, target lines), in
    sentence-id order, tokens as the dictionaries spell them (no end-of-sentence symbol)."""
    from .data_bin import load_train_split

    dicts, datasets = load_train_split(data_bin, source_lang, target_lang, error=DistillError,
                                       hint=f": is it the teacher's data-bin, with --source-lang {source_lang} "
                                            f"--target-lang {target_lang}?")
    sides = [[d.string(dataset[i]) for i in range(len(dataset))] for d, dataset in zip(dicts, datasets)]
    return sides[0], sides[1]


def choose_backend(backend: str, checkpoint: str) -> str:
    """``fast`` or ``generate`` for ``backend`` (one of :data:`BACKENDS`)."""
    if backend not in BACKENDS:
        raise DistillError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    from ..translate.loading import can_translate

    return "fast" if can_translate(checkpoint) else "generate"


def decoding_args(beam: int, batch_size: int, max_len_a: float, max_len_b: int, lenpen: float,
                  cpu: bool) -> List[str]:
    """The decoding flags both back-ends share (fairseq-generate's spelling)."""
    return ["--beam", str(beam), "--batch-size", str(batch_size), "--max-len-a", str(max_len_a),
            "--max-len-b", str(max_len_b), "--lenpen", str(lenpen), *(["--cpu"] if cpu else [])]


def fast_translator(data_bin: str, checkpoint: str, source_lang: str, target_lang: str,
                    decoding: Sequence[str], extra_args: Sequence[str] = ()) -> Translator:
    """The ``fast`` back-end: ``python -m fairseq_lrn.translate`` over each shard's source."""

    def translate(lines: List[str], shard_dir: str) -> List[Optional[str]]:
        source = os.path.join(shard_dir, "source.txt")
        with open(source, "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
        command = [sys.executable, "-m", "fairseq_lrn.translate", data_bin, "--path", checkpoint,
                   "--source-lang", source_lang, "--target-lang", target_lang, "--input", source,
                   *decoding, *extra_args]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            raise DistillError(f"fairseq_lrn.translate failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        out = proc.stdout.split("\n")
        if out and out[-1] == "":
            out.pop()
        if len(out) != len(lines):
            raise DistillError(f"fairseq_lrn.translate wrote {len(out)} lines for {len(lines)} "
                               "source lines (its contract is one line per input line)")
        return out

    return translate


def generate_translator(data_bin: str, checkpoint: str, source_lang: str, target_lang: str,
                        decoding: Sequence[str], extra_args: Sequence[str] = ()) -> Translator:
    """The ``generate`` back-end: each shard binarized with the teacher's dictionaries, then
    ``fairseq-generate --gen-subset train``, its hypotheses ordered by sentence id."""
    dicts = [os.path.join(data_bin, f"dict.{lang}.txt") for lang in (source_lang, target_lang)]

    def translate(lines: List[str], shard_dir: str) -> List[Optional[str]]:
        prefix = os.path.join(shard_dir, "train")
        for lang in (source_lang, target_lang):  # the target side is a placeholder: not read
            with open(f"{prefix}.{lang}", "w", encoding="utf-8") as f:
                f.writelines(line + "\n" for line in lines)
        shard_bin = build_data_bin(os.path.join(shard_dir, "bin"), train=prefix, source_lang=source_lang,
                                   target_lang=target_lang, replace=True,
                                   extra_args=["--srcdict", dicts[0], "--tgtdict", dicts[1]])
        proc = run_fairseq("generate", shard_bin, "--user-dir", user_dir(), "--path", checkpoint,
                           "--gen-subset", "train", "--source-lang", source_lang,
                           "--target-lang", target_lang, *decoding, *extra_args, capture=True)
        sentences = parse_generate_output(proc.stdout)
        return [sentences.get(i, {}).get("H") for i in range(len(lines))]

    return translate


def _shard_path(work: str, index: int) -> str:
    return os.path.join(work, f"shard-{index:05d}.tsv")


def _read_shard(path: str, start: int, count: int) -> Dict[int, str]:
    """A committed shard: ``{sentence id: translation}``; raises DistillError if it does not
    hold exactly ids ``start .. start+count-1``."""
    translations = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            idx, _, text = line.rstrip("\n").partition("\t")
            translations[int(idx)] = text
    if sorted(translations) != list(range(start, start + count)):
        raise DistillError(f"{path}: does not hold sentences {start}..{start + count - 1}; "
                           "remove the work folder to start again")
    return translations


def translate_in_shards(sources: List[str], translator: Translator, work: str, shard_size: int,
                        log: Callable[[str], None] = print) -> Dict[int, Optional[str]]:
    """Translate ``sources`` shard by shard, committing each shard atomically to ``work``;
    committed shards are read back, not translated again. Returns ``{id: translation or None}``
    (None or "" where the teacher gave none; such ids are stored as "" in the shard)."""
    translations: Dict[int, Optional[str]] = {}
    for index, start in enumerate(range(0, len(sources), shard_size)):
        lines = sources[start:start + shard_size]
        path = _shard_path(work, index)
        if os.path.exists(path):
            translations.update(_read_shard(path, start, len(lines)))
            continue
        scratch = os.path.join(work, f"shard-{index:05d}.scratch")  # the back-end's own files
        shutil.rmtree(scratch, ignore_errors=True)
        os.makedirs(scratch)
        try:
            with atomic_outputs(path) as (temp,):
                out = translator(lines, scratch)
                if len(out) != len(lines):
                    raise DistillError(f"shard {index}: {len(out)} translations for {len(lines)} sentences")
                with open(temp, "w", encoding="utf-8") as f:
                    for k, text in enumerate(out):
                        clean = " ".join((text or "").split())  # no tab or newline inside a line
                        f.write(f"{start + k}\t{clean}\n")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        translations.update(_read_shard(path, start, len(lines)))
        log(f"distill: shard {index} ({start}..{start + len(lines) - 1}) translated")
    return translations


def _check_manifest(work: str, manifest: dict) -> None:
    """Write ``work/manifest.json`` on the first run; refuse a resumed run whose settings differ
    (its committed shards would not be what these settings give)."""
    path = os.path.join(work, "manifest.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        if old != manifest:
            changed = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
            raise SettingsChanged(f"{work} holds shards of a run with other settings ({', '.join(changed)}); "
                               "use another output folder, or remove it to start again")
    else:
        write_json(path, manifest)


def distill(*, teacher: str, data_bin: str, out: str, source_lang: str, target_lang: str,
            backend: str = "auto", shard_size: int = 10000, beam: int = 5, batch_size: int = 64,
            max_len_a: float = 1.2, max_len_b: int = 10, lenpen: float = 1.0, cpu: bool = False,
            translate_args: Sequence[str] = (), train_args: Optional[Sequence[str]] = None,
            train_command: Optional[str] = None, translator: Optional[Translator] = None,
            log: Callable[[str], None] = print) -> DistillResult:
    """Distil the training split of ``data_bin`` through ``teacher`` into ``{out}/data-bin``.

    ``backend``: one of :data:`BACKENDS` (auto: ``fast`` for the teachers the fast command
    runs, see :func:`~fairseq_lrn.translate.loading.refusal`, else ``generate``). Decoding: ``beam``,
    ``batch_size``, ``max_len_a``/``max_len_b``, ``lenpen``, ``cpu``, and ``translate_args``
    (more flags for the back-end's command). ``translator`` replaces the back-end (tests).

    The distilled data-bin has the source of the training split, the teacher's translations as
    its target (the original target where there is none), the teacher's dictionaries (through
    ``fairseq-preprocess --srcdict/--tgtdict``) and the original valid/test splits. It appears
    complete or not at all. Then, with ``train_args``, runs ``fairseq-train {out}/data-bin
    *train_args``; with ``train_command``, runs that command line with ``{data_bin}`` replaced by
    the distilled data-bin's path (no shell)."""
    if shard_size < 1:
        raise DistillError(f"shard size must be >= 1, got {shard_size}")
    if not os.path.isfile(teacher):
        raise DistillError(f"teacher checkpoint {teacher!r} does not exist")
    sources, targets = read_train_split(data_bin, source_lang, target_lang)
    if not sources:
        raise DistillError(f"{data_bin!r}: the training split is empty")
    work = os.path.join(out, "work")
    os.makedirs(work, exist_ok=True)
    name = choose_backend(backend, teacher) if translator is None else "custom"
    decoding = decoding_args(beam, batch_size, max_len_a, max_len_b, lenpen, cpu)
    stat = os.stat(teacher)  # a teacher trained again at the same path does not resume the old one's shards
    _check_manifest(work, {"teacher": os.path.abspath(teacher), "teacher_bytes": stat.st_size,
                           "teacher_mtime_ns": stat.st_mtime_ns, "data_bin": os.path.abspath(data_bin),
                           "source_lang": source_lang, "target_lang": target_lang, "backend": name,
                           "shard_size": shard_size, "sentences": len(sources),
                           "decoding": decoding + list(translate_args)})
    if translator is None:
        make = fast_translator if name == "fast" else generate_translator
        translator = make(data_bin, teacher, source_lang, target_lang, decoding, translate_args)
    log(f"distill: {len(sources)} sentences, back-end {name}, shards of {shard_size}")
    translations = translate_in_shards(sources, translator, work, shard_size, log)

    fallback = [i for i in range(len(sources)) if not (translations.get(i) or "").strip()]
    kept_original = set(fallback)
    distilled = [targets[i] if i in kept_original else translations[i] for i in range(len(sources))]
    dest = os.path.join(out, "data-bin")
    prefix = os.path.join(work, "distilled")
    for lang, lines in ((source_lang, sources), (target_lang, distilled)):
        with atomic_outputs(f"{prefix}.{lang}") as (temp,):
            with open(temp, "w", encoding="utf-8") as f:
                f.writelines(line + "\n" for line in lines)
    kept = [os.path.join(data_bin, f) for f in sorted(os.listdir(data_bin))
            if f.startswith(("valid", "test")) and f.endswith((".bin", ".idx"))]
    build_data_bin(dest, train=prefix, source_lang=source_lang, target_lang=target_lang, replace=True,
                   extra_args=["--srcdict", os.path.join(data_bin, f"dict.{source_lang}.txt"),
                               "--tgtdict", os.path.join(data_bin, f"dict.{target_lang}.txt")],
                   extra_files=kept)
    report = os.path.join(out, REPORT)
    write_json(report, {"teacher": os.path.abspath(teacher), "data_bin": os.path.abspath(data_bin),
                        "distilled_data_bin": os.path.abspath(dest), "backend": name,
                        "sentences": len(sources), "fallback_count": len(fallback),
                        "fallback_ids": fallback,
                        "fallback_reason": "empty or missing translation: the original target was kept"})
    log(f"distill: {len(sources)} sentences written to {dest}; {len(fallback)} kept their original "
        f"target (empty or missing translation; ids in {report})")
    result = DistillResult(dest, len(sources), fallback, report, name)
    if train_args is not None:
        run_fairseq("train", dest, *train_args)
    if train_command:
        command = [arg.replace("{data_bin}", dest) for arg in shlex.split(train_command)]
        proc = subprocess.run(command)
        if proc.returncode != 0:
            raise DistillError(f"the student's training command failed ({proc.returncode}): {command}")
    return result


def build_parser():
    """The command line of ``scripts/distill.py``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="distill.py", description="Sequence-level distillation: translate the training source of "
        "DATA_BIN with TEACHER, binarize the translations as the new training target with the "
        "teacher's dictionaries (OUT/data-bin), optionally train a student on them. Resumable: run "
        "it again with the same arguments after an interruption. Arguments after -- are passed to "
        "fairseq-train (after the distilled data-bin).")
    add = parser.add_argument
    add("data_bin", help="the teacher's data-bin (its train split is distilled; its dictionaries are kept)")
    add("--teacher", required=True, help="the teacher checkpoint")
    add("--out", required=True, help="output folder: data-bin/, work/ (the shards), " + REPORT)
    add("--source-lang", "-s", required=True)
    add("--target-lang", "-t", required=True)
    add("--backend", choices=BACKENDS, default="auto",
        help="auto: the fast command (python -m fairseq_lrn.translate) for lrn/transformer_lrn "
             "teachers, else fairseq-generate")
    add("--shard-size", type=int, default=10000, help="sentences per committed shard")
    add("--beam", type=int, default=5)
    add("--batch-size", type=int, default=64)
    add("--max-len-a", type=float, default=1.2)
    add("--max-len-b", type=int, default=10)
    add("--lenpen", type=float, default=1.0)
    add("--cpu", action="store_true", help="translate on the CPU")
    add("--translate-args", default="", help="more flags for the translation command (one string)")
    add("--train-command", help="the student's training command, {data_bin} standing for the "
                                "distilled data-bin (run without a shell)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/distill.py``: parse ``argv`` (``sys.argv[1:]``), run :func:`distill`; errors
    are printed as one line and give exit status 1."""
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args = None
    if "--" in argv:
        cut = argv.index("--")
        argv, train_args = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    try:
        distill(teacher=args.teacher, data_bin=args.data_bin, out=args.out, source_lang=args.source_lang,
                target_lang=args.target_lang, backend=args.backend, shard_size=args.shard_size,
                beam=args.beam, batch_size=args.batch_size, max_len_a=args.max_len_a,
                max_len_b=args.max_len_b, lenpen=args.lenpen, cpu=args.cpu,
                translate_args=shlex.split(args.translate_args), train_args=train_args,
                train_command=args.train_command)
    except (DistillError, FileExistsError, RuntimeError) as error:
        print(f"distill.py: error: {error}", file=sys.stderr)
        return 1
    return 0
