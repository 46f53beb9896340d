"""The systems raced (name -> fairseq-train architecture flags) and the training recipe they share,
as data; see ``scripts/quality_race.py`` for why the recipe is what it is."""

# The systems: name -> architecture flags. "args" is the real size, "tiny" the --tiny size.
_LRN = ["--arch", "lrn", "--encoder-layers", "2", "--decoder-layers", "2", "--encoder-embed-dim", "256",
        "--decoder-embed-dim", "256", "--encoder-hidden-size", "512", "--decoder-hidden-size", "512",
        "--decoder-out-embed-dim", "256", "--share-all-embeddings"]
_LRN_TINY = ["--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "32",
             "--decoder-embed-dim", "32", "--encoder-hidden-size", "64", "--decoder-hidden-size", "64",
             "--decoder-out-embed-dim", "32"]
_TRANSFORMER = ["--encoder-embed-dim", "256", "--decoder-embed-dim", "256", "--encoder-ffn-embed-dim", "1024",
                "--decoder-ffn-embed-dim", "1024", "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
                "--encoder-layers", "6", "--decoder-layers", "6", "--share-all-embeddings"]
_TRANSFORMER_TINY = ["--encoder-embed-dim", "32", "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
                     "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2",
                     "--decoder-attention-heads", "2", "--encoder-layers", "1", "--decoder-layers", "1"]
SYSTEMS = {
    "transformer": {
        "args": ["--arch", "transformer", *_TRANSFORMER],
        "tiny": _TRANSFORMER_TINY,
        "note": "fairseq transformer, d=256, ffn 1024, 4 heads, 6+6 layers (post-norm)"},
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
    "lstm": {
        "args": ["--arch", "lstm", "--encoder-layers", "2", "--decoder-layers", "2", "--encoder-embed-dim", "256",
                 "--decoder-embed-dim", "256", "--encoder-hidden-size", "512", "--decoder-hidden-size", "512",
                 "--decoder-out-embed-dim", "256", "--encoder-bidirectional", "--share-all-embeddings"],
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
