"""``--quality``: BLEU after training each system for the same wall-clock budget on the toy
reordering task (or ``--data``), with BLEU-vs-time curves."""

import time
from typing import Dict, Optional

from . import data
from .lrn_systems import Preset, build_systems


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


def run_quality(args, preset: Preset, work: str, skipped: Dict[str, str]) -> dict:
    """Train fresh systems for the same wall-clock budget, interleaved in slices of
    budget / points seconds, scoring BLEU on the test split after each slice."""
    if args.data:
        data_bin = args.data
        share_all = preset.share_all and data.dictionaries_joined(
            data_bin, args.source_lang or data.SRC, args.target_lang or data.TGT)
    else:
        data_bin = data.toy_bin(work, seed=args.seed, joined=preset.share_all)
        share_all = preset.share_all
    print(f"\n== quality: {args.budget_seconds:g} s of training per system on "
          f"{'--data ' + data_bin if args.data else 'the toy reordering task'}, "
          f"BLEU (beam 5) every {args.budget_seconds / args.quality_points:g} s", flush=True)
    systems = build_systems(args, preset, data_bin, share_all, args.quality_max_tokens, dict(skipped))
    state = {}
    for name, s in systems.items():
        task = s.load_splits()
        epoch_itr = task.get_batch_iterator(
            dataset=task.dataset("train"), max_tokens=args.quality_max_tokens, max_positions=None,
            ignore_invalid_inputs=True, seed=args.seed, num_workers=0, epoch=1)
        state[name] = {"epoch_itr": epoch_itr, "itr": epoch_itr.next_epoch_itr(shuffle=True),
                       "seconds": 0.0, "updates": 0, "tokens": 0, "curve": []}
    slice_s = args.budget_seconds / args.quality_points
    for point in range(1, args.quality_points + 1):
        for name, s in systems.items():
            st = state[name]
            while st["seconds"] < point * slice_s:
                start = time.perf_counter()
                try:
                    sample = next(st["itr"])
                except StopIteration:
                    st["itr"] = st["epoch_itr"].next_epoch_itr(shuffle=True)
                    sample = next(st["itr"])
                s.train_steps([sample])
                st["seconds"] += time.perf_counter() - start
                st["updates"] += 1
                st["tokens"] += int(sample["ntokens"])
            bleu = bleu_on_split(s, s.task)
            st["curve"].append({"seconds": st["seconds"], "updates": st["updates"],
                                "epoch": st["epoch_itr"].epoch, "bleu": bleu})
            print(f"   {name:<14s} {st['seconds']:7.1f} s  {st['updates']:6d} updates  BLEU {bleu:6.2f}",
                  flush=True)
    out = {name: {"params": systems[name].params, "bleu": st["curve"][-1]["bleu"], "curve": st["curve"],
                  "updates": st["updates"], "tokens": st["tokens"]} for name, st in state.items()}
    for s in systems.values():
        s.close()
    return {"data": data_bin, "budget_seconds": args.budget_seconds, "max_tokens": args.quality_max_tokens,
            "systems": out}
