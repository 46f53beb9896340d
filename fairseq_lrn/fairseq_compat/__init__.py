"""Fixes fairseq-lrn applies to fairseq 0.12 (and to its use of torch and numpy), one module each.

``fairseq_lrn.models`` (so ``--user-dir fairseq_lrn``) calls :func:`install`, which applies
every fix of :data:`FIXES` unless the environment opts out of it:

``FAIRSEQ_LRN_FAIRSEQ_FIXES``
    ``on`` (the default) or ``off``: ``off`` applies none of them (fairseq runs as released).
``FAIRSEQ_LRN_SKIP_FIXES``
    Comma-separated names of fixes not to apply, e.g. ``numpy2,last_partial_batch``.

Both are read at each :func:`install` (in practice when the plugin is imported); an unknown
name or value is a ``ValueError`` naming the valid ones. A fix is applied only to the versions
it was written for (its module's ``FAIRSEQ_VERSIONS``, prefixes of ``fairseq.__version__``,
and ``MIN_TORCH`` where it has one); outside them :func:`install` logs a warning naming the
fix and the versions and skips it (this is the only version check: a fix module's ``install``
assumes its versions). Every fix module has ``SUMMARY`` and ``install(models) -> bool`` (True
when applied, False when not needed here). :func:`install` is idempotent; a fix once applied stays
applied in that process (opting out later does not undo it). :data:`STATUS` (and the return
value of :func:`install`) say what happened to each fix.

Importing this package is cheap: the fix modules are imported by :func:`install`, and they
import fairseq, torch and numpy only inside their functions.
"""

import importlib
import logging
import os
import re
from typing import Dict, Iterable, Mapping, Optional, Tuple

logger = logging.getLogger(__name__)

#: The fixes, in the order they are installed: name (as used in FAIRSEQ_LRN_SKIP_FIXES) -> module.
FIXES: Dict[str, str] = {
    "numpy2": f"{__name__}.numpy2",
    "last_partial_batch": f"{__name__}.last_partial_batch",
    "checkpoint_loading": f"{__name__}.checkpoint_loading",
    "literal_args": f"{__name__}.literal_args",
    "training_machine_args": f"{__name__}.training_machine_args",
    "checkpoint_copies": f"{__name__}.checkpoint_copies",
    "interactive_input": f"{__name__}.interactive_input",
    "hub_skip_alignment": f"{__name__}.hub_skip_alignment",
    "help_flags": f"{__name__}.help_flags",
}

#: Turns all fixes on (``on``, the default) or off (``off``).
SWITCH_VARIABLE = "FAIRSEQ_LRN_FAIRSEQ_FIXES"
#: Comma-separated names of fixes (keys of :data:`FIXES`) not to apply.
SKIP_VARIABLE = "FAIRSEQ_LRN_SKIP_FIXES"

APPLIED = "applied"
#: What :func:`install` did with each fix it was asked about: :data:`APPLIED`, or why not.
STATUS: Dict[str, str] = {}

_models: list = []  # the plugin's model classes (given by fairseq_lrn.models), handed to every fix
_warned: set = set()  # (fix, reason) pairs already warned about


def fixes_to_skip(environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The fixes the environment opts out of: name -> reason. Raises ValueError on an unknown
    value of :data:`SWITCH_VARIABLE` or an unknown name in :data:`SKIP_VARIABLE`."""
    environ = os.environ if environ is None else environ
    switch = environ.get(SWITCH_VARIABLE, "").strip().lower() or "on"
    if switch not in ("on", "off"):
        raise ValueError(f"{SWITCH_VARIABLE}={environ[SWITCH_VARIABLE]!r}: expected 'on' (the default: "
                         f"apply fairseq-lrn's fairseq fixes) or 'off' (apply none of them)")
    names = [name.strip() for name in environ.get(SKIP_VARIABLE, "").split(",") if name.strip()]
    unknown = [name for name in names if name not in FIXES]
    if unknown:
        raise ValueError(f"{SKIP_VARIABLE}: unknown fix name(s) {', '.join(map(repr, unknown))}; "
                         f"the valid names are: {', '.join(FIXES)}")
    if switch == "off":
        return {name: f"not applied ({SWITCH_VARIABLE}=off)" for name in FIXES}
    return {name: f"not applied ({SKIP_VARIABLE})" for name in names}


def version_tuple(version: str) -> Tuple[int, ...]:
    """(major, minor) of a version string such as ``"2.13.0+cpu"``."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


def installed_versions() -> Dict[str, str]:
    """The versions the fixes are checked against: ``{"fairseq": ..., "torch": ...}``."""
    import fairseq
    import torch

    return {"fairseq": fairseq.__version__, "torch": torch.__version__}


def outside_versions(module, versions: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """Why the installed fairseq (or torch; ``versions`` as :func:`installed_versions` gives them)
    is not one ``module``'s fix was written for, or None. The reason ends with the module's
    ``OUTSIDE_VERSIONS`` note (what then happens without the fix) where it has one."""
    versions = installed_versions() if versions is None else versions
    reason = None
    wanted = getattr(module, "FAIRSEQ_VERSIONS", None)
    min_torch = getattr(module, "MIN_TORCH", None)
    if wanted and not versions["fairseq"].startswith(tuple(wanted)):
        reason = (f"written for fairseq {' / '.join(v + 'x' if v.endswith('.') else v for v in wanted)}, "
                  f"installed fairseq is {versions['fairseq']}")
    elif min_torch and version_tuple(versions["torch"]) < tuple(min_torch):
        reason = (f"written for torch >= {'.'.join(map(str, min_torch))}, installed torch is "
                  f"{versions['torch']}")
    note = getattr(module, "OUTSIDE_VERSIONS", None)
    return f"{reason} ({note})" if reason and note else reason


def install(models: Iterable[type] = (), environ: Optional[Mapping[str, str]] = None) -> Tuple[str, ...]:
    """Apply the fixes of :data:`FIXES` that the environment does not opt out of and that were
    written for the installed versions (idempotent). ``models``: the plugin's model classes
    (remembered for later calls), handed to every fix (``help_flags`` adds their flags to
    ``--help``, ``training_machine_args`` reads their ``TRAINING_MACHINE_ARGS``). Returns the
    names of the fixes applied in this process; :data:`STATUS` has the reason for the others."""
    skip = fixes_to_skip(environ)
    _models.extend(model for model in models if model not in _models)
    for name, module_name in FIXES.items():
        if STATUS.get(name) == APPLIED:
            continue
        if name in skip:
            STATUS[name] = skip[name]
            continue
        module = importlib.import_module(module_name)
        reason = outside_versions(module)
        if reason:
            STATUS[name] = f"not applied: {reason}"
            if (name, reason) not in _warned:
                _warned.add((name, reason))
                logger.warning(f"fairseq-lrn: not applying the fairseq fix {name!r} ({module.SUMMARY}): "
                               f"it was {reason}. Set {SKIP_VARIABLE}={name} to silence this warning.")
            continue
        done = module.install(models=tuple(_models))
        STATUS[name] = APPLIED if done else "not needed here"
    return applied()


def applied() -> Tuple[str, ...]:
    """The names of the fixes applied in this process, in :data:`FIXES` order."""
    return tuple(name for name in FIXES if STATUS.get(name) == APPLIED)
