"""Decoding measurements through fairseq's SequenceGenerator: forced-length timing and the
decoder's incremental-state memory, measured on the tensors the generator actually holds."""

from typing import Dict, List, Sequence

import torch

# Parts of the incremental state (see :func:`state_memory`).
GROWS, CONSTANT, ENCODER = "grows", "constant", "encoder_static"
STATE_PARTS = (GROWS, CONSTANT, ENCODER)


def time_forced(system, batches: Sequence[dict], beam: int, length: int) -> float:
    """Sentences/s when every hypothesis is exactly ``length`` tokens (then EOS): what
    ``--min-len L --max-len-a 0 --max-len-b L`` does (SequenceGenerator min_len = max_len = L)."""
    return system.time_generation(batches, beam, [length] * len(batches))


def slice_batch(sample: dict, n: int) -> dict:
    """The first ``n`` sentences of a collated fairseq batch."""
    def cut(v):
        if isinstance(v, torch.Tensor):
            return v[:n]
        if isinstance(v, dict):
            return {k: cut(x) for k, x in v.items()}
        return v
    out = cut(sample)
    out["nsentences"] = n
    out["ntokens"] = int(out["target"].numel()) if out.get("target") is not None else n
    return out


def _tensors(value, path: str):
    """(path, tensor) of every tensor inside nested dicts / lists / tuples."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tensors(v, f"{path}/{k}")
    elif isinstance(value, (list, tuple)):
        for k, v in enumerate(value):
            yield from _tensors(v, f"{path}/{k}")


def state_bytes(state) -> Dict[str, int]:
    """Bytes of every tensor of an incremental state, per top-level key (a tensor held twice
    is counted once)."""
    out, seen = {}, set()
    for key, value in state.items():
        total = 0
        for _, t in _tensors(value, key):
            ident = (t.data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)
            if ident in seen:
                continue
            seen.add(ident)
            total += t.numel() * t.element_size()
        out[key] = total
    return out


def _owners(model) -> Dict[str, torch.nn.Module]:
    """incremental-state id (the key's prefix before the first dot) -> module."""
    return {m._incremental_state_id: m for m in model.modules() if hasattr(m, "_incremental_state_id")}


def _owner_kind(module) -> str:
    from fairseq.modules import MultiheadAttention

    if isinstance(module, MultiheadAttention):
        return "encoder-attention" if module.encoder_decoder_attention else "self-attention"
    return type(module).__name__ if module is not None else "?"


def state_memory(system, sample: dict, beam: int, length: int) -> dict:
    """Decode ``sample`` (beam ``beam``, every hypothesis forced to ``length`` tokens) and measure
    the generator's incremental state after every decoder step.

    Returns bytes per sentence-hypothesis (divided by batch * beam) at the last step, split into
    ``grows`` (entries larger at the last step than at the first: the self-attention key/value
    cache), ``encoder_static`` (constant entries of fairseq's encoder attention: its static
    key/value cache and padding mask) and ``constant`` (every other constant entry: LRN states),
    plus each entry with the module that owns it."""
    gen = system.generator(beam)
    ensemble = gen.model
    trace: List[Dict[str, int]] = []
    holder = {}
    original = ensemble.forward_decoder

    def traced(tokens, encoder_outs, incremental_states, *args, **kwargs):
        out = original(tokens, encoder_outs, incremental_states, *args, **kwargs)
        holder["state"] = incremental_states[0]
        holder["rows"] = tokens.size(0)
        trace.append(state_bytes(incremental_states[0]))
        return out

    ensemble.forward_decoder = traced
    try:
        system.generate([sample], beam, [length])
    finally:
        del ensemble.forward_decoder
    first, last = trace[0], trace[-1]
    rows = int(sample["nsentences"]) * beam
    owners = _owners(system.model)
    parts = {p: 0 for p in STATE_PARTS}
    entries = []
    for key, nbytes in last.items():
        owner = owners.get(key.split(".", 1)[0])
        kind = _owner_kind(owner)
        part = GROWS if nbytes > first.get(key, 0) else (ENCODER if kind == "encoder-attention" else CONSTANT)
        parts[part] += nbytes
        shapes = [tuple(t.shape) for _, t in _tensors(holder["state"][key], key)]
        entries.append({"key": key.split(".", 1)[-1], "owner": kind, "part": part,
                        "bytes_per_sentence": nbytes / rows, "shapes": shapes})
    assert holder["rows"] == rows, (holder["rows"], rows)  # no sentence finished before the last step
    return {"length": length, "beam": beam, "sentences": int(sample["nsentences"]),
            "steps": len(trace), "src_len": int(sample["net_input"]["src_tokens"].size(1)),
            **{p: parts[p] / rows for p in STATE_PARTS},
            "total": sum(parts.values()) / rows, "entries": entries}


def state_formula(decoder_layers: int, dim: int, length: int, src_len: int, lrn: bool,
                  bytes_per_value: int = 4) -> Dict[str, float]:
    """What :func:`state_memory` should find, per sentence-hypothesis: self-attention caches
    keys and values of the L+1 steps (BOS .. EOS), LRN one d-vector per layer; encoder
    attention keys, values (and a byte of padding mask) per source position."""
    enc = decoder_layers * src_len * (2 * dim * bytes_per_value + 1)
    if lrn:
        return {GROWS: 0.0, CONSTANT: float(decoder_layers * dim * bytes_per_value), ENCODER: float(enc)}
    return {GROWS: float(decoder_layers * 2 * (length + 1) * dim * bytes_per_value), CONSTANT: 0.0,
            ENCODER: float(enc)}
