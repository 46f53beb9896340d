"""The fields of a fairseq configuration as the fixes walk them (shared by ``literal_args`` and
``training_machine_args``)."""

from typing import Iterator, Tuple


def config_fields(cfg, prefix: str = "", depth: int = 2) -> Iterator[Tuple[object, str, str, object]]:
    """(container, key, dotted name, value) of every field of ``cfg`` (an ``argparse.Namespace``,
    an omegaconf ``DictConfig`` or a dict) and of the configurations nested in it
    (``encoder.embed_path``), ``depth`` levels down."""
    if hasattr(cfg, "items") and hasattr(cfg, "keys"):
        try:
            items = list(cfg.items())
        except Exception:  # noqa: BLE001  (an omegaconf interpolation that does not resolve)
            return
    elif hasattr(cfg, "__dict__") and not isinstance(cfg, type):
        items = list(vars(cfg).items())
    else:
        return
    for key, value in items:
        yield cfg, key, f"{prefix}{key}", value
        if depth > 0 and value is not None and not isinstance(value, (str, bytes, int, float, bool, list, tuple)):
            yield from config_fields(value, prefix=f"{prefix}{key}.", depth=depth - 1)


def set_field(container, key, value) -> None:
    """Set field ``key`` of a container :func:`config_fields` gave."""
    if hasattr(container, "keys"):
        container[key] = value
    else:
        setattr(container, key, value)
