"""Input checks and the resumable preparation of the race's corpus: Moses tokenization, cleaning, joint
BPE and binarization into WORK/bin (each step's outputs written atomically, each finished step recorded
in WORK/.done/STEP.json with its settings)."""

from pathlib import Path

from ...prep import text
from ...prep.io import StepRunner, read_lines
from ...tools.data_bin import build_data_bin
from ...tools.scoring import detokenize, sacrebleu_score

from .common import RaceError, log


def split_files(args):
    """{split: {lang: Path}} of the raw input files."""
    return {split: {lang: Path(f"{getattr(args, split)}.{lang}") for lang in (args.src, args.tgt)}
            for split in ("train", "valid", "test")}


def _read_utf8(path, split):
    try:
        return list(read_lines(path))
    except UnicodeDecodeError:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise RaceError(f"{split} file {path} is not UTF-8 text (line {number}: {exc.reason})") from None
        raise


def check_inputs(files):
    """Raise RaceError for a missing or empty file or a source/target line-count mismatch.

    Returns {split: {"pairs": n, "empty_lines": [(line number, file), ...]}}."""
    for split, by_lang in files.items():
        for lang, path in by_lang.items():
            if not path.is_file():
                raise RaceError(f"missing {split} file: {path} (--{split} PREFIX reads PREFIX.{lang})")
    stats = {}
    for split, by_lang in files.items():
        (src_lang, src), (tgt_lang, tgt) = by_lang.items()
        src_lines, tgt_lines = _read_utf8(src, split), _read_utf8(tgt, split)
        if not src_lines:
            raise RaceError(f"{split} file {src} is empty")
        if len(src_lines) != len(tgt_lines):
            raise RaceError(f"{split}: line counts differ: {src} has {len(src_lines)} lines, "
                            f"{tgt} has {len(tgt_lines)}")
        empty = [(i + 1, str(path)) for i, (s, t) in enumerate(zip(src_lines, tgt_lines))
                 for path, line in ((src, s), (tgt, t)) if not line.strip()]
        stats[split] = {"pairs": len(src_lines), "empty_lines": empty}
        if empty and split != "train":
            where = ", ".join(f"{f} line {n}" for n, f in empty[:5]) + (" ..." if len(empty) > 5 else "")
            log(f"warning: {len(empty)} empty line(s) in the {split} set ({where}); they are kept "
                f"(an empty source is translated as an empty sentence)")
    return stats


def fingerprint(path):
    st = path.stat()
    return {"path": str(path.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def dictionary_size(data_bin, lang):
    """Entries of a fairseq dictionary: the dict file's lines plus <s>, <pad>, </s>, <unk>."""
    with open(data_bin / f"dict.{lang}.txt", encoding="utf-8") as f:
        return 4 + sum(1 for _ in f)


def prepare(args, files):
    """Build WORK/bin from the raw files (resumable); return a description of the data."""
    work = args.work_dir
    tok, bpe, data_bin = work / "tok", work / "bpe", work / "bin"
    langs = (args.src, args.tgt)
    input_stats = check_inputs(files)
    step = StepRunner(work, log=log, prefix="prepare ")
    workers = max(1, args.threads)

    def tokenize():
        for split, by_lang in files.items():
            for lang, path in by_lang.items():
                text.transform_file(text.MosesPreprocessor(lang), [path], tok / f"{split}.{lang}", workers,
                                    total=input_stats[split]["pairs"], desc=f"tokenize {split}.{lang}")

    def clean():
        kept, dropped = text.clean_corpus(*(tok / f"train.{lang}" for lang in langs),
                                          *(tok / f"train.clean.{lang}" for lang in langs),
                                          min_len=1, max_len=args.max_len, ratio=float("inf"))
        log(f"clean: kept {kept} training pairs, dropped {dropped} (an empty side or > {args.max_len} tokens)")
        if kept == 0:
            raise RaceError(f"no training pair left after cleaning {tok}/train.{{{','.join(langs)}}}")

    def learn_bpe():
        text.learn_bpe([tok / f"train.clean.{lang}" for lang in langs], bpe / "code", args.bpe_merges)

    def apply_bpe():
        segment = text.BpeSegmenter(bpe / "code")
        for split in files:
            name = "train.clean" if split == "train" else split
            for lang in langs:
                n = sum(1 for _ in read_lines(tok / f"{name}.{lang}"))
                text.transform_file(segment, [tok / f"{name}.{lang}"], bpe / f"{split}.{lang}", workers,
                                    total=n, desc=f"bpe {split}.{lang}")

    def binarize():  # a rerun swaps the new folder for the old one once it is complete
        try:
            build_data_bin(str(data_bin), **{split: str(bpe / split) for split in files}, source_lang=args.src,
                           target_lang=args.tgt, joined_dictionary=True, workers=workers, replace=True,
                           extra_files=[str(bpe / "code")])
        except RuntimeError as exc:
            raise RaceError(f"fairseq-preprocess failed on {bpe}/{{train,valid,test}}.{{{','.join(langs)}}}:\n"
                            f"{exc}") from None

    inputs = {split: {lang: fingerprint(p) for lang, p in by_lang.items()} for split, by_lang in files.items()}
    step("tokenize", {"inputs": inputs, "moses": "normalize+nonprinting+tokenize -a"}, tokenize)
    step("clean", {"max_len": args.max_len}, clean)
    step("learn-bpe", {"merges": args.bpe_merges}, learn_bpe)
    step("apply-bpe", {}, apply_bpe)
    step("binarize", {"joined_dictionary": True}, binarize)
    train_pairs = sum(1 for _ in read_lines(bpe / f"train.{args.src}"))
    # BLEU of the tokenized test references detokenized again against the raw ones: the ceiling that
    # Moses tokenization + detokenization leaves (below 100 where normalisation changes characters,
    # e.g. quotes, or the detokenizer cannot restore a split such as "%s" -> "% s").
    roundtrip = detokenize(list(read_lines(tok / f"test.{args.tgt}")), args.tgt)
    ceiling = sacrebleu_score(roundtrip, read_lines(files["test"][args.tgt]))
    return {"bin": str(data_bin), "vocab_size": dictionary_size(data_bin, args.src),
            "bpe_merges": args.bpe_merges, "train_pairs": train_pairs,
            "train_pairs_dropped": input_stats["train"]["pairs"] - train_pairs,
            "valid_pairs": input_stats["valid"]["pairs"], "test_pairs": input_stats["test"]["pairs"],
            "test_references": str(files["test"][args.tgt]), "reference_roundtrip_bleu": round(ceiling, 2)}
