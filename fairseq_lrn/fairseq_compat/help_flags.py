"""Make ``fairseq-train --user-dir fairseq_lrn --arch lrn --help`` list the model's flags.

What fairseq does wrong: ``fairseq/options.py`` ``parse_args_and_arch`` (fairseq 0.12.x: 0.12.2
and the ``fairseq-fixed`` 0.12.3.x builds) parses the command line once with the general
parser, and ``--help`` prints and exits right there, before the chosen architecture's
``add_args`` runs: its help never shows the model's flags (for fairseq's own ``lstm`` neither).

The fix: when the plugin is imported for a command line that asks for help (``-h`` /
``--help``) about an architecture of one of the given model classes, ``options.parse_args_and_arch``
is wrapped so that it first adds that model's flags (``add_args``) to the parser, then runs
fairseq's own ``parse_args_and_arch``. Any other command line is left alone. No fairseq
function is copied.

Limits: only ``--arch NAME``, ``-a NAME`` and ``--arch=NAME`` on ``sys.argv`` are recognised;
the flags are added only for commands that call ``options.parse_args_and_arch`` after the plugin
is imported (``fairseq-train``, ``-generate``, ``-interactive``, ``-eval-lm``, ...).
"""

import functools
import sys
from typing import Optional, Tuple

SUMMARY = "--help with --arch of an LRN architecture lists the model's flags"
#: The fairseq versions (prefixes of ``fairseq.__version__``) this fix was written for.
FAIRSEQ_VERSIONS = ("0.12.",)


def _requested_arch(argv) -> Optional[str]:
    for flag in ("--arch", "-a"):
        if flag in argv[:-1]:
            return argv[argv.index(flag) + 1]
    return next((arg.split("=", 1)[1] for arg in argv if arg.startswith("--arch=")), None)


def install(models: Tuple[type, ...] = ()) -> bool:
    """If ``sys.argv`` asks for help about an architecture registered for one of ``models``,
    make ``fairseq.options.parse_args_and_arch`` add that model's flags before parsing
    (idempotent). Returns True when it is (now) wrapped, False when there is nothing to do."""
    from fairseq import options

    if getattr(options.parse_args_and_arch, "lrn_help_flags", False):
        return True
    argv = sys.argv[1:]
    if not {"-h", "--help"} & set(argv):
        return False
    from fairseq.models import ARCH_MODEL_REGISTRY

    model_cls = ARCH_MODEL_REGISTRY.get(_requested_arch(argv))
    if model_cls is None or model_cls not in models:
        return False

    parse_args_and_arch = options.parse_args_and_arch

    @functools.wraps(parse_args_and_arch)
    def with_model_flags(parser, *args, **kwargs):
        model_cls.add_args(parser.add_argument_group("Model-specific configuration"))
        return parse_args_and_arch(parser, *args, **kwargs)

    with_model_flags.lrn_help_flags = True
    options.parse_args_and_arch = with_model_flags
    return True
