"""Run fairseq's command-line tools (``fairseq-train``, ``-preprocess``, ``-generate``, ...) in
a subprocess, with this Python interpreter, the way a user runs them."""

import os
import subprocess
import sys
from typing import Dict, List, Optional


def fairseq_command(tool: str, *args) -> List[str]:
    """The command line of ``fairseq-<tool> args...`` run by this Python interpreter."""
    return [sys.executable, "-m", f"fairseq_cli.{tool}", *map(str, args)]


def run_fairseq(tool: str, *args, capture: bool = False, input_text: Optional[str] = None,
                check: bool = True, env: Optional[Dict[str, str]] = None,
                timeout: Optional[float] = None) -> subprocess.CompletedProcess:
    """Run ``fairseq-<tool> args...``; with ``check``, raise RuntimeError with the tail of its
    stderr when it fails. Returns the CompletedProcess (text output captured when ``capture``).
    ``env`` adds to (does not replace) this process's environment."""
    proc = subprocess.run(fairseq_command(tool, *args), input=input_text, text=True,
                          capture_output=capture, env={**os.environ, **(env or {})}, timeout=timeout)
    if check and proc.returncode != 0:
        tail = (proc.stderr or "")[-3000:]
        raise RuntimeError(f"fairseq-{tool} failed with exit code {proc.returncode}\n{tail}")
    return proc
