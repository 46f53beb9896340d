"""The systems raced (name -> fairseq-train architecture flags) and the training recipe they share,
as data; see ``scripts/quality_race.py`` for why the recipe is what it is."""

from ..shapes import rnn_flags, transformer_flags

# The systems: name -> architecture flags. "args" is the real size, "tiny" the --tiny size; "data":
# "distilled" trains on the teacher's translations of the training source (see run.py), not the references.
_LRN = ["--arch", "lrn", *rnn_flags(256, 512, 2, 2), "--share-all-embeddings"]
_LRN_TINY = rnn_flags(32, 64, 1, 1)
_TRANSFORMER = [*transformer_flags(256, 1024, 4, 3, 3), "--share-all-embeddings"]
_STUDENT = [*transformer_flags(256, 1024, 4, 6, 2), "--share-all-embeddings"]
_TRANSFORMER_TINY = transformer_flags(32, 64, 2, 1, 1)
_STUDENT_TINY = transformer_flags(32, 64, 2, 2, 1)
TEACHER = "transformer"  # whose translations the distilled students learn from
SYSTEMS = {
    "transformer": {
        "args": ["--arch", "transformer", *_TRANSFORMER],
        "tiny": _TRANSFORMER_TINY,
        "note": "fairseq transformer, d=256, ffn 1024, 4 heads, 3+3 layers (post-norm); the students' teacher"},
    "transformer_lrn": {  # the same command with only --arch switched
        "args": ["--arch", "transformer_lrn", *_TRANSFORMER],
        "tiny": _TRANSFORMER_TINY,
        "note": "as transformer, LRN in place of decoder self-attention (fairseq_lrn)"},
    "lrn-additive": {
        "args": [*_LRN, "--decoder-attention", "additive"],
        "tiny": _LRN_TINY,
        "note": "fairseq_lrn lrn, 2+2 layers, embed 256, hidden 512, additive attention"},
    "lrn-general": {
        "args": [*_LRN, "--decoder-attention", "general"],
        "tiny": _LRN_TINY,
        "note": "fairseq_lrn lrn, 2+2 layers, embed 256, hidden 512, general (Luong) attention"},
    "lrn-conditional": {
        "args": [*_LRN, "--decoder-attention", "additive", "--decoder-style", "conditional",
                 "--decoder-init-state", "zero", "--lrn-layer-norm-style", "whole"],
        "tiny": _LRN_TINY,
        "note": "as lrn-additive with the authors' decoder (zero's cond_rnn): one state chain through "
                "layer 0, zero initial state, layer norm over the whole projection"},
    "transformer-6-2": {
        "args": ["--arch", "transformer", *_STUDENT],
        "tiny": _STUDENT_TINY,
        "note": "fairseq transformer student, d=256, ffn 1024, 4 heads, 6+2 layers, original targets"},
    "transformer_lrn-6-2": {
        "args": ["--arch", "transformer_lrn", *_STUDENT],
        "tiny": _STUDENT_TINY,
        "note": "transformer_lrn student, 6+2 layers, original targets"},
    "transformer-6-2-distilled": {
        "args": ["--arch", "transformer", *_STUDENT],
        "tiny": _STUDENT_TINY, "data": "distilled",
        "note": f"transformer-6-2 trained on {TEACHER}'s beam-5 translations of the training source"},
    "transformer_lrn-6-2-distilled": {
        "args": ["--arch", "transformer_lrn", *_STUDENT],
        "tiny": _STUDENT_TINY, "data": "distilled",
        "note": f"transformer_lrn-6-2 trained on {TEACHER}'s beam-5 translations of the training source"},
    "lstm": {
        "args": ["--arch", "lstm", *rnn_flags(256, 512, 2, 2, bidirectional=True), "--share-all-embeddings"],
        "tiny": _LRN_TINY,
        "note": "fairseq lstm, 2+2 layers, embed 256, hidden 512 (per direction; bidirectional encoder), "
                "input feeding + attention"},
}


def recipe(args, budget_hours, cuda):
    """The fairseq-train flags every system shares (see the module docstring)."""
    return ["--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr", str(args.lr),
            "--lr-scheduler", "inverse_sqrt", "--warmup-updates", str(args.warmup_updates),
            "--warmup-init-lr", "1e-07", "--clip-norm", "1.0", "--dropout", str(args.dropout),
            "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
            "--max-tokens", str(args.max_tokens), "--stop-time-hours", f"{budget_hours:.8f}",
            "--validate-interval", "1", "--no-epoch-checkpoints", "--seed", "1",
            "--log-format", "simple", "--log-interval", str(args.log_interval), "--no-progress-bar",
            *([] if cuda else ["--cpu"])]


def _flag_groups(argv):
    """["--a", "1", "--b", "--c", "x"] -> [["--a", "1"], ["--b"], ["--c", "x"]] (a flag and its values)."""
    groups = []
    for token in argv:
        if token.startswith("--") or not groups:
            groups.append([token])
        else:
            groups[-1].append(token)
    return groups


def override(argv, extra):
    """`argv` with every flag of `extra` replaced by (or, when new, followed by) its value in `extra`."""
    extra_groups = _flag_groups(extra)
    replaced = {g[0] for g in extra_groups}
    return [t for g in _flag_groups(argv) if g[0] not in replaced for t in g] + [t for g in extra_groups for t in g]
