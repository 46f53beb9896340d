"""What a run killed (SIGKILL: no ``finally``, no ``except``) at a chosen point leaves on disk.

:func:`run_killed_at` runs a function in a forked child that kills itself just before its
n-th file operation, so that a test can walk every point of an output's replacement.
"""

import os
import pathlib
import shutil
import signal
import traceback

from fairseq_lrn import atomic_files

#: The operations counted as points: renames, removals, writes and the atomic exchange.
HOOKED = ((os, "replace"), (os, "rename"), (shutil, "rmtree"), (pathlib.Path, "write_text"),
          (atomic_files, "_exchange"))


def run_killed_at(point: int, fn) -> bool:
    """Run ``fn()`` in a forked child that is SIGKILLed just before its ``point``-th (from 0)
    call of an operation in :data:`HOOKED`. Returns True when it was killed, False when ``fn``
    returned first; AssertionError when ``fn`` raised (its traceback is on stderr)."""
    pid = os.fork()
    if pid == 0:  # the child: count the operations, die at the chosen one
        code = 0
        try:
            calls = [0]

            def counted(original):
                def operation(*args, **kwargs):
                    if calls[0] == point:
                        os.kill(os.getpid(), signal.SIGKILL)
                    calls[0] += 1
                    return original(*args, **kwargs)
                return operation

            for owner, name in HOOKED:
                setattr(owner, name, counted(getattr(owner, name)))
            fn()
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status) == signal.SIGKILL
    assert os.WEXITSTATUS(status) == 0, f"the child running {fn} raised (see stderr)"
    return False


def interrupted_output(final, contents: dict = None, text: str = None) -> None:
    """Leave what a run killed while writing ``final`` through ``atomic_outputs`` leaves: its
    temporary (a folder holding ``contents`` {name: text}, or a file holding ``text``)."""
    def write_and_die():
        with atomic_files.atomic_outputs(final) as (temp,):
            if contents is None:
                temp.write_text(text)
            else:
                temp.mkdir()
                for name, value in contents.items():
                    (temp / name).write_text(value)
            os.kill(os.getpid(), signal.SIGKILL)

    assert run_killed_at(-1, write_and_die)
