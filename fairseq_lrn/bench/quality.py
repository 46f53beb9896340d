"""``--quality``: BLEU after training each system for the same wall-clock budget on the toy
reordering task (or ``--data``), with BLEU-vs-time curves."""

from typing import Dict, Optional

from . import data
from .systems import Batches


def bleu_on_split(system, task, batch_size: int = 64, beam: int = 5,
                  max_sentences: Optional[int] = None, split: str = "test") -> float:
    """sacreBLEU of the system's beam search on ``split`` (BPE '@@ ' removed)."""
    import sacrebleu
    from fairseq import utils

    dataset = task.dataset(split)
    n = len(dataset) if max_sentences is None else min(max_sentences, len(dataset))
    ids = sorted(range(n), key=lambda i: int(dataset.src_sizes[i]))
    tgt_dict = task.target_dictionary
    hyps, refs = [], []
    for k in range(0, n, batch_size):
        sample = dataset.collater([dataset[i] for i in ids[k:k + batch_size]])
        for hypos, target in zip(system.generate([sample], beam)[0], sample["target"]):
            hyps.append(tgt_dict.string(hypos[0]["tokens"].int().cpu(), "subword_nmt"))
            refs.append(tgt_dict.string(utils.strip_pad(target, tgt_dict.pad()).int().cpu(),
                                        "subword_nmt", escape_unk=True))
    return sacrebleu.corpus_bleu(hyps, [refs]).score


def run_quality(args, preset, work: str, skipped: Dict[str, str], build_systems) -> dict:
    """Train fresh systems for the same wall-clock budget, interleaved in slices of
    budget / points seconds, scoring BLEU on the test split after each slice (``build_systems``:
    the family's, :func:`.lrn.build_systems`)."""
    if args.data:
        data_bin, langs = args.data, (args.source_lang, args.target_lang)
        share_all = preset.share_all and data.dictionaries_joined(data_bin, langs[0] or data.SRC, langs[1] or data.TGT)
    else:
        data_bin, langs = data.toy_bin(work, seed=args.seed, joined=preset.share_all), (data.SRC, data.TGT)
        share_all = preset.share_all
    print(f"\n== quality: {args.budget_seconds:g} s of training per system on "
          f"{'--data ' + data_bin if args.data else 'the toy reordering task'}, "
          f"BLEU (beam 5) every {args.budget_seconds / args.quality_points:g} s", flush=True)
    systems = build_systems(args, preset, data_bin, langs, share_all, dict(skipped), args.quality_max_tokens)
    state = {name: {"batches": Batches(s.load_splits(), args.quality_max_tokens, args.seed), "seconds": 0.0,
                    "updates": 0, "tokens": 0, "curve": []} for name, s in systems.items()}
    slice_s = args.budget_seconds / args.quality_points
    for point in range(1, args.quality_points + 1):
        for name, s in systems.items():
            st = state[name]
            done = s.train_for(st["batches"], point * slice_s - st["seconds"])
            for key in ("seconds", "updates", "tokens"):
                st[key] += done[key]
            bleu = bleu_on_split(s, s.task)
            st["curve"].append({"seconds": st["seconds"], "updates": st["updates"],
                                "epoch": st["batches"].epoch_itr.epoch, "bleu": bleu})
            print(f"   {name:<14s} {st['seconds']:7.1f} s  {st['updates']:6d} updates  BLEU {bleu:6.2f}",
                  flush=True)
    out = {name: {"params": systems[name].params, "bleu": st["curve"][-1]["bleu"], "curve": st["curve"],
                  "updates": st["updates"], "tokens": st["tokens"]} for name, st in state.items()}
    for s in systems.values():
        s.close()
    return {"data": data_bin, "budget_seconds": args.budget_seconds, "max_tokens": args.quality_max_tokens,
            "systems": out}
