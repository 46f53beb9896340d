#!/usr/bin/env python3
"""Average the model weights of the newest N fairseq checkpoints (pip's fairseq lacks its own script).

Checkpoints are read with fairseq's load_checkpoint_to_cpu after importing --user-dir (default: this
repository's fairseq_lrn), which makes that loading work, safely, under torch >= 2.6. The output keeps
the newest checkpoint's configuration, holds the averaged weights and no optimizer state, and is
written under a temporary name, then renamed.

  python scripts/average_checkpoints.py --inputs CKPT_DIR --num-update-checkpoints 5 --output avg.pt
"""

import argparse
import re
import sys
from pathlib import Path

DEFAULT_USER_DIR = Path(__file__).resolve().parents[1] / "fairseq_lrn"
PATTERNS = {"updates": re.compile(r"checkpoint_\d+_(\d+)\.pt"), "epochs": re.compile(r"checkpoint(\d+)\.pt")}


class AverageError(Exception):
    """Checkpoints that cannot be averaged; the message names the file or folder."""


def newest_checkpoints(directory, n, by):
    """The n newest checkpoint_<epoch>_<updates>.pt (by="updates") or checkpoint<epoch>.pt (by="epochs")."""
    found = sorted(((int(m[1]), p) for p in Path(directory).iterdir() if (m := PATTERNS[by].fullmatch(p.name))),
                   reverse=True)
    if len(found) < n:
        raise AverageError(f"{directory} holds {len(found)} checkpoints saved by {by[:-1]}, {n} requested")
    return [p for _, p in found[:n]]


def average(paths):
    """The state of the newest (first) checkpoint, with the mean of all the checkpoints' weights."""
    from fairseq import checkpoint_utils
    from omegaconf import OmegaConf

    sums, newest = {}, None
    for path in paths:
        state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
        model = state["model"]
        if sums and model.keys() != sums.keys():
            raise AverageError(f"{path} holds other parameters than {paths[0]}")
        for name, tensor in model.items():
            if tensor.is_floating_point():
                sums[name] = sums[name] + tensor.double() if name in sums else tensor.double()
            else:
                sums.setdefault(name, tensor)
        newest = newest or state
    newest["model"] = {name: (total / len(paths)).to(newest["model"][name].dtype) if total.is_floating_point()
                       else total for name, total in sums.items()}
    newest.pop("last_optimizer_state", None)
    if OmegaConf.is_config(newest.get("cfg")):  # saved as fairseq saves it, so that it loads safely
        newest["cfg"] = OmegaConf.to_container(newest["cfg"], resolve=True, enum_to_str=True)
    return newest


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", required=True, nargs="+",
                   help="checkpoint files, or one folder with --num-update-checkpoints / --num-epoch-checkpoints")
    newest = p.add_mutually_exclusive_group()
    newest.add_argument("--num-update-checkpoints", type=int, metavar="N",
                        help="average the N newest checkpoint_<epoch>_<updates>.pt in the folder")
    newest.add_argument("--num-epoch-checkpoints", type=int, metavar="N",
                        help="average the N newest checkpoint<epoch>.pt in the folder")
    p.add_argument("--output", required=True, help="where to write the averaged checkpoint")
    p.add_argument("--user-dir", default=str(DEFAULT_USER_DIR), help="fairseq plugin folder (default: %(default)s)")
    args = p.parse_args(argv)

    try:
        n = args.num_update_checkpoints or args.num_epoch_checkpoints
        if n:
            if len(args.inputs) != 1 or not Path(args.inputs[0]).is_dir():
                raise AverageError("--num-*-checkpoints needs exactly one checkpoint folder as --inputs")
            paths = newest_checkpoints(args.inputs[0], n, "updates" if args.num_update_checkpoints else "epochs")
        else:
            paths = [Path(x) for x in args.inputs]
        print(f"averaging {len(paths)} checkpoints: {', '.join(map(str, paths))}", file=sys.stderr)
        from fairseq import checkpoint_utils, utils

        utils.import_user_module(argparse.Namespace(user_dir=args.user_dir))
        checkpoint_utils.torch_persistent_save(average(paths), args.output)  # writes <output>.tmp, then renames
    except AverageError as exc:
        print(f"average_checkpoints: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
