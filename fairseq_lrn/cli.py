"""Helpers for driving fairseq's command-line tools, and ``fairseq-lrn-dir``."""

import os
import re
import subprocess
import sys
from typing import Dict, List


def user_dir() -> str:
    """Absolute path of the installed ``fairseq_lrn`` package: the ``--user-dir`` value."""
    return os.path.dirname(os.path.abspath(__file__))


def print_user_dir() -> None:
    """Entry point of ``fairseq-lrn-dir``."""
    print(user_dir())


def fairseq_command(tool: str, *args) -> List[str]:
    """The command line of ``fairseq-<tool> args...`` run by this Python interpreter."""
    return [sys.executable, "-m", f"fairseq_cli.{tool}", *map(str, args)]


def run_fairseq(tool: str, *args, capture: bool = False, input_text: str = None,
                check: bool = True, env: Dict[str, str] = None, timeout: float = None):
    """Run ``fairseq-<tool>``; raise RuntimeError with the tail of its stderr when it fails
    (and ``check``). Returns the CompletedProcess (text output captured when ``capture``)."""
    proc = subprocess.run(fairseq_command(tool, *args), input=input_text, text=True,
                          capture_output=capture, env={**os.environ, **(env or {})}, timeout=timeout)
    if check and proc.returncode != 0:
        tail = (proc.stderr or "")[-3000:]
        raise RuntimeError(f"fairseq-{tool} failed with exit code {proc.returncode}\n{tail}")
    return proc


def parse_generate_output(text: str) -> Dict[int, Dict[str, str]]:
    """Sentences of fairseq-generate/-interactive output: ``{id: {"S": src, "T": ref, "H": hyp,
    "D": detokenized hyp}}`` (only the keys present; the first hypothesis of each id)."""
    sentences: Dict[int, Dict[str, str]] = {}
    for kind, idx, rest in re.findall(r"^([STHD])-(\d+)\t(.*)$", text, re.M):
        if kind in "HD":  # H-/D- lines carry a score column before the text
            rest = rest.split("\t", 1)[1] if "\t" in rest else ""
        sentences.setdefault(int(idx), {}).setdefault(kind, rest)
    return sentences
