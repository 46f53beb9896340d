"""What every part of the quality race shares: its error and its log line."""

import sys


class RaceError(Exception):
    """Bad input or a failed step the user can act on; the message names the file involved."""


def log(msg):
    print(f"quality_race: {msg}", file=sys.stderr, flush=True)
