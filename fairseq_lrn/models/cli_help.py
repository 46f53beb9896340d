"""Make ``fairseq-train --user-dir fairseq_lrn --arch lrn --help`` list the model's flags.

fairseq parses ``--help`` before it adds the chosen architecture's flags, so its help never shows
them (for its own ``lstm`` neither). When the plugin is imported for a command line that asks for
help about an LRN architecture, the parser fairseq builds next gets the LRN flags first.
"""

import functools
import sys
from typing import Optional


def _requested_arch(argv) -> Optional[str]:
    for flag in ("--arch", "-a"):
        if flag in argv[:-1]:
            return argv[argv.index(flag) + 1]
    return next((arg.split("=", 1)[1] for arg in argv if arg.startswith("--arch=")), None)


def add_model_flags_to_help(model_cls, archs) -> None:
    """If ``sys.argv`` asks for help about one of ``archs``, make the next
    ``fairseq.options.parse_args_and_arch`` call add ``model_cls``'s flags before parsing."""
    argv = sys.argv[1:]
    if not {"-h", "--help"} & set(argv) or _requested_arch(argv) not in archs:
        return
    from fairseq import options

    parse_args_and_arch = options.parse_args_and_arch

    @functools.wraps(parse_args_and_arch)
    def with_model_flags(parser, *args, **kwargs):
        model_cls.add_args(parser.add_argument_group("Model-specific configuration"))
        return parse_args_and_arch(parser, *args, **kwargs)

    options.parse_args_and_arch = with_model_flags
