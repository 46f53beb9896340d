"""The end of every benchmark run: wall time and load, the printed report, ``--json``, ``--plot``."""

import os
import time

from fairseq_lrn.atomic_files import write_json


def finish_report(report: dict, args, *, t_start: float, load_start, print_report, plot) -> dict:
    """The end of a benchmark run: record the load averages and wall time in ``report``, print
    it (``print_report``), write ``args.json`` and the ``args.plot`` PNG (``plot``); returns it."""
    if load_start:
        report["machine"]["loadavg_start"] = load_start
        report["machine"]["loadavg_end"] = os.getloadavg()
    report["wall_seconds"] = time.time() - t_start
    print_report(report)
    print(f"\n(total {report['wall_seconds']:.0f} s; load average at start "
          f"{report['machine'].get('loadavg_start')}, at end {report['machine'].get('loadavg_end')})")
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    if args.plot:
        plot(report, args.plot)
        print(f"wrote {args.plot}")
    return report
