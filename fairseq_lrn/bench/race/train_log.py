"""The numbers of a fairseq-train log (--log-format simple): parameters, updates, epochs, words/s, losses."""

import re
from datetime import datetime

_INNER = re.compile(r"\| train_inner \| epoch (\d+):\s+(\d+) / (\d+) (.*)$")
_SUMMARY = re.compile(r"\| (train|valid) \| epoch (\d+) \|(.*)$")
_PARAMS = re.compile(r"num\. (?:shared )?model params: ([\d,]+)")
_DONE = re.compile(r"done training in ([\d.]+) seconds")
_STOPPED = re.compile(r"Stopping training due to cumulative_training_time: ([\d.e+-]+) >")
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \|")
_NUM = re.compile(r"^-?[\d.]+(?:e[-+]?\d+)?$|^-?inf$|^nan$", re.I)


def _stats(text_, sep):
    """'k1 v1 | k2 v2' (sep '|') or 'k1=v1, k2=v2' (sep ',') -> {k: float}; non-numbers skipped."""
    out = {}
    for item in text_.split(sep):
        key, _, value = item.strip().replace("=", " ", 1).partition(" ")
        value = value.strip().replace(",", "")
        if key and _NUM.match(value):
            out[key] = float(value)
    return out


def parse_train_log(log_text):
    """Numbers of a fairseq-train log (--log-format simple): tolerant of missing lines.

    Returns params, train_seconds (the clock --stop-time-hours reads: from the trainer's start, validation
    included; "done training in" gives train_loop_seconds, the training loop alone), updates, epochs
    (fractional when the last one was cut short),
    wps (training words/s over the whole run: the epoch summaries' words/s weighted by their
    train_wall, i.e. all target words over all training time; the last train_inner line's when no
    summary was printed; a budget that ends a few updates into an epoch no longer decides it),
    wps_per_epoch, valid_loss (last validation), best_valid_loss, and valid_curve: one
    ``{"seconds", "updates", "loss"}`` per validation, seconds from the log's first time stamp
    (fairseq's logging format, one-second resolution; [] when the lines have none)."""
    train, valid, inner = {}, {}, {}
    batches_per_epoch, params, done, stopped = None, None, None, None
    first_stamp, curve = None, []
    for line in log_text.splitlines():
        stamp = _STAMP.match(line)
        stamp = datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S") if stamp else None
        if first_stamp is None:
            first_stamp = stamp
        if m := _INNER.search(line):
            epoch, total = int(m[1]), int(m[3])
            batches_per_epoch = total
            inner = {"epoch": epoch, **_stats(m[4], ",")}
        elif m := _SUMMARY.search(line):
            (train if m[1] == "train" else valid)[int(m[2])] = stats = _stats(m[3], "|")
            if m[1] == "valid" and stamp is not None and "loss" in stats:
                curve.append({"seconds": (stamp - first_stamp).total_seconds(),
                              "updates": stats.get("num_updates"), "loss": stats["loss"]})
        elif m := _PARAMS.search(line):
            params = int(m[1].replace(",", ""))
        elif m := _DONE.search(line):
            done = float(m[1])
        elif m := _STOPPED.search(line):
            stopped = round(float(m[1]) * 3600, 1)
    r = {"params": params, "train_seconds": stopped, "train_loop_seconds": done, "updates": None, "epochs": None,
         "wps": None, "wps_per_epoch": [train[e].get("wps") for e in sorted(train)],
         "valid_loss": None, "best_valid_loss": None, "valid_curve": curve}
    updates = [s["num_updates"] for s in (*train.values(), *valid.values(), inner) if "num_updates" in s]
    if updates:
        r["updates"] = int(max(updates))
    if train:
        last = max(train)
        r["wps"] = _overall_wps(train)
        if r["train_seconds"] is None:  # not stopped by the budget (e.g. --max-epoch in --train-args)
            r["train_seconds"] = train[last].get("wall", done)
        ends = {e: train[e].get("num_updates") for e in train}
        if batches_per_epoch is None and last > 1 and ends.get(1):
            batches_per_epoch = ends[1]
        start = ends.get(last - 1, 0 if last == 1 else None)
        if batches_per_epoch and start is not None and ends[last] is not None:
            r["epochs"] = round(last - 1 + min(1.0, (ends[last] - start) / batches_per_epoch), 3)
        else:
            r["epochs"] = float(last)
    elif inner:
        r["wps"] = inner.get("wps")
        r["epochs"] = float(inner["epoch"])
    if valid:
        last = valid[max(valid)]
        r["valid_loss"] = last.get("loss")
        r["best_valid_loss"] = last.get("best_loss", last.get("loss"))
    return r


def _overall_wps(train):
    """{epoch: summary} -> words/s over all epochs (weights: each summary's train_wall; equal
    weights when a summary lacks it), rounded to 0.1; None without any wps."""
    pairs = [(stats["wps"], stats.get("train_wall")) for stats in train.values() if "wps" in stats]
    if not pairs:
        return None
    if any(wall is None or wall <= 0 for _, wall in pairs):
        pairs = [(wps, 1.0) for wps, _ in pairs]
    return round(sum(wps * wall for wps, wall in pairs) / sum(wall for _, wall in pairs), 1)
