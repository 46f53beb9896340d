"""fairseq's ``max_positions`` as the fixes need it (shared by ``interactive_input`` and
``hub_skip_alignment``)."""


def source_limit(max_positions):
    """The source length limit in fairseq's ``max_positions`` (a number, a (source, target)
    pair, or None for no limit)."""
    return max_positions[0] if isinstance(max_positions, (tuple, list)) else max_positions
