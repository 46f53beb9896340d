"""Text corpora -> a fairseq data-bin, through ``fairseq-preprocess`` (the one way this project
binarizes: the demo, the benchmarks, the data preparation and the tests all call
:func:`build_data_bin`)."""

import os
import shutil
from typing import Dict, Optional, Sequence, Tuple, Type

from ..atomic_files import atomic_outputs, recover
from .run import run_fairseq

SPLITS = ("train", "valid", "test")


def corpus_prefixes(folder: str, splits: Sequence[str] = SPLITS) -> Dict[str, str]:
    """``{"train": folder/train, ...}``: the file prefixes of a corpus written as
    ``{folder}/{split}.{lang}`` (e.g. by :func:`fairseq_lrn.toy_data.write_corpus`)."""
    return {split: os.path.join(folder, split) for split in splits}


def build_data_bin(dest: str, *, train: str, valid: Optional[str] = None, test: Optional[str] = None,
                   source_lang: Optional[str] = "src", target_lang: Optional[str] = "tgt",
                   joined_dictionary: bool = False, workers: int = 1, reuse: bool = False,
                   replace: bool = False, extra_files: Sequence[str] = (),
                   extra_args: Sequence[str] = (), in_process: bool = False) -> str:
    """Binarize ``{prefix}.{lang}`` text files (one sentence per line, tokens separated by
    spaces) into the data-bin folder ``dest`` with ``fairseq-preprocess``; returns ``dest``.

    ``train`` / ``valid`` / ``test``: file prefixes (``valid``/``test`` may be comma-separated
    lists, as fairseq allows). ``target_lang=None``: a monolingual corpus (``--only-source``,
    for ``--task language_modeling``; ``source_lang=None`` then reads the prefixes as file names).
    ``joined_dictionary``: one dictionary for both sides. ``extra_args``: more
    ``fairseq-preprocess`` flags (``--srcdict``, ``--nwordssrc``, ...). ``extra_files``: files
    copied into the folder (under their own names) before it appears, e.g. the BPE codes.

    The folder appears complete or not at all (:func:`~fairseq_lrn.atomic_files.atomic_outputs`):
    fairseq-preprocess writes a temporary folder of this call's own next to ``dest``, which is
    renamed to ``dest`` when it succeeds. An existing ``dest`` is returned as is with ``reuse``
    (it was written that way), rebuilt with ``replace`` (the old folder stays until the new one is
    complete, then the two are swapped: a kill at any point leaves the old or the new folder),
    else refused with FileExistsError (nothing is overwritten). What a killed earlier call left
    is cleaned up (or an old folder put back) first. A failing fairseq-preprocess raises
    RuntimeError with its stderr.

    ``in_process``: run fairseq-preprocess's ``main`` in this process instead of a subprocess
    (same arguments, same files; saves importing fairseq again, for callers that have it
    imported already: the tests and the benchmarks)."""
    recover(dest)
    if os.path.exists(dest) and not replace:
        if reuse:
            return dest
        raise FileExistsError(f"data-bin {dest!r} exists already; remove it, or pass reuse=True or replace=True")
    langs = ["--source-lang", source_lang] if source_lang else []
    langs += ["--target-lang", target_lang] if target_lang else ["--only-source"]
    splits = [("--trainpref", train), ("--validpref", valid), ("--testpref", test)]
    with atomic_outputs(dest) as (temp,):
        argv = [*langs, *[arg for flag, prefix in splits if prefix for arg in (flag, prefix)],
                "--destdir", str(temp), "--workers", str(workers),
                *(["--joined-dictionary"] if joined_dictionary else []), *map(str, extra_args)]
        if in_process:
            _preprocess_in_process(argv)
        else:
            run_fairseq("preprocess", *argv, capture=True)
        for path in extra_files:
            shutil.copyfile(path, os.path.join(temp, os.path.basename(path)))
    return dest


def _preprocess_in_process(argv: Sequence[str]) -> None:
    """``fairseq-preprocess argv`` as a call of its ``main``; raises RuntimeError as a failing
    subprocess would. The log file handler fairseq adds for ``preprocess.log`` is closed after."""
    from fairseq import options
    from fairseq_cli import preprocess

    handlers = list(preprocess.logger.handlers)
    try:
        preprocess.main(options.get_preprocessing_parser().parse_args(list(argv)))
    except SystemExit as error:  # argparse refused the arguments (its message is on stderr)
        raise RuntimeError(f"fairseq-preprocess failed: bad arguments {list(argv)} (exit {error.code})") from None
    except Exception as error:
        raise RuntimeError(f"fairseq-preprocess failed: {type(error).__name__}: {error}") from error
    finally:
        for handler in preprocess.logger.handlers[:]:
            if handler not in handlers:
                preprocess.logger.removeHandler(handler)
                handler.close()


def load_train_split(data_bin: str, source_lang: str, target_lang: str, *, error: Type[Exception] = ValueError,
                     hint: str = "") -> Tuple[tuple, tuple]:
    """The binarized training split of ``data_bin``: ``((source dictionary, target dictionary),
    (source dataset, target dataset))`` (fairseq ``Dictionary`` and indexed datasets of token ids,
    ``</s>`` appended). Raises ``error`` naming what is missing (a dictionary, with ``hint``
    appended; the .bin/.idx files) or the sides' sentence counts when they differ."""
    from fairseq.data import Dictionary, data_utils

    for lang in (source_lang, target_lang):
        if not os.path.isfile(os.path.join(data_bin, f"dict.{lang}.txt")):
            raise error(f"{data_bin!r} has no dictionary dict.{lang}.txt{hint}")
    dicts, sides = [], []
    for lang in (source_lang, target_lang):
        dictionary = Dictionary.load(os.path.join(data_bin, f"dict.{lang}.txt"))
        prefix = os.path.join(data_bin, f"train.{source_lang}-{target_lang}.{lang}")
        dataset = data_utils.load_indexed_dataset(prefix, dictionary)
        if dataset is None:
            raise error(f"{data_bin!r} has no binarized training split {prefix}.bin/.idx")
        dicts.append(dictionary)
        sides.append(dataset)
    if len(sides[0]) != len(sides[1]):
        raise error(f"{data_bin!r}: the training split has {len(sides[0])} source and "
                    f"{len(sides[1])} target sentences")
    return tuple(dicts), tuple(sides)
