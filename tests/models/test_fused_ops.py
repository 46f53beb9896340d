"""The fused decoder-step operations of compiled int8 mode (fairseq_lrn/translate/fused_ops.py and
native/fused_step.cpp) against the PyTorch computations they replace: the LRN cell after its
projection (every norm style, activation and the oLRN gate, from a strided state) and the encoder
attention of a sentence's beams (padding, odd sizes, a fully masked row), within float rounding;
bad arguments; and a decoder step with and without them."""

import pytest
import torch

from fairseq_lrn.modules.lrn import LRNLayer
from fairseq_lrn.translate.fused_ops import (
    KEY_ALIGN,
    attention_keys,
    beam_attention,
    beam_attention_reference,
    lrn_cell_reference,
    lrn_layer_step,
)
from fairseq_lrn.translate.native import native_available


@pytest.fixture(scope="module")
def compiled():
    assert native_available() is None, native_available()


@pytest.mark.parametrize("layer_norm,style", [(False, "per_gate"), (True, "per_gate"), (True, "whole")])
@pytest.mark.parametrize("activation", ["identity", "tanh"])
@pytest.mark.parametrize("output_gate", [False, True])
def test_lrn_cell_equals_the_layer_step(compiled, layer_norm, style, activation, output_gate):
    torch.manual_seed(len(style) + 7 * output_gate)
    layer = LRNLayer(24, 20, activation=activation, layer_norm=layer_norm, output_gate=output_gate,
                     layer_norm_style=style)
    with torch.no_grad():
        if layer.norm_weight is not None:  # not the identity initialization
            layer.norm_weight.normal_()
            layer.norm_bias.normal_()
        x = torch.randn(7, 24) * 3
        states = torch.randn(7, 3, 20) * 2  # the runner's per-row states: a layer's is a strided view
        expected = layer.step(x, states[:, 1])
        got = lrn_layer_step(layer, x, states[:, 1], fused=True)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=2e-6)
        assert torch.equal(lrn_layer_step(layer, x, states[:, 1], fused=False), expected)
        projected = layer.proj(x)
        torch.testing.assert_close(lrn_cell_reference(layer, projected, states[:, 1]), expected, rtol=0, atol=0)


def test_lrn_cell_saturates_without_overflow(compiled):
    """Gates far in either tail: sigmoid 0 or 1 exactly as PyTorch's, no inf or NaN."""
    layer = LRNLayer(4, 4)
    projected = torch.tensor([[200.0, -200.0, 3.0, 1.0] * 3, [-200.0, 200.0, -3.0, 0.0] * 3]).view(2, 12)
    h_prev = torch.tensor([[1.0, 2.0, -1.0, 0.5], [-1.0, 0.0, 1.0, 4.0]])
    got = torch.ops.fairseq_lrn.lrn_cell(projected, h_prev, None, None, 0, 1e-5, False, 3)
    torch.testing.assert_close(got, lrn_cell_reference(layer, projected, h_prev), rtol=1e-6, atol=1e-6)


def _attention_inputs(B, R, H, S, d, seed, dv=None):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(B * R, H * d, generator=g)
    keys, values = torch.randn(B, H, S, d, generator=g), torch.randn(B, H, S, dv or d, generator=g)
    mask = torch.zeros(B, S, dtype=torch.bool)
    for b in range(B):
        mask[b, S - b % S:] = True  # sentence b: its last b positions padded
    mask[:, 0] = False
    return query, keys, values, mask


@pytest.mark.parametrize("B,R,H,S,d,dv", [(1, 1, 1, 1, 8, 8), (3, 5, 4, 7, 64, 64), (2, 7, 2, 17, 12, 12),
                                          (4, 2, 8, 33, 17, 17), (5, 4, 1, 9, 512, 512), (2, 6, 3, 8, 5, 5),
                                          (3, 5, 2, 11, 24, 40)])
def test_beam_attention_equals_the_reference(compiled, B, R, H, S, d, dv):
    """Against the reference, with keys of d and values of dv features per head (the lrn
    decoder's attention dimension and encoder states differ)."""
    query, keys, values, mask = _attention_inputs(B, R, H, S, d, seed=B * R * S + d, dv=dv)
    keys_t = attention_keys(keys, fused=True)
    assert keys_t.shape == (B, H, d, -(-S // KEY_ALIGN) * KEY_ALIGN) and not keys_t[..., S:].any()
    for padding in (mask, None):
        expected = beam_attention_reference(query, keys, values, padding, 0.125)
        got = beam_attention(query, keys_t, values, padding, 0.125, fused=True)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        assert torch.equal(beam_attention(query, keys, values, padding, 0.125, fused=False), expected)


def test_beam_attention_fully_masked_sentence_gives_nan(compiled):
    """As PyTorch's softmax over -inf only: NaN for that sentence's rows, the others unchanged."""
    query, keys, values, mask = _attention_inputs(2, 3, 2, 5, 8, seed=1)
    mask[1] = True
    got = beam_attention(query, attention_keys(keys, True), values, mask, 0.5, fused=True)
    expected = beam_attention_reference(query, keys, values, mask, 0.5)
    assert torch.isnan(expected[3:]).all() and torch.isnan(got[3:]).all()
    torch.testing.assert_close(got[:3], expected[:3], rtol=1e-5, atol=1e-5)


def test_bad_arguments_are_refused_with_the_reason(compiled):
    ops = torch.ops.fairseq_lrn
    with pytest.raises(RuntimeError, match=r"projected is \(3, 12\), expected \(3, 15\)"):
        ops.lrn_cell(torch.zeros(3, 12), torch.zeros(3, 5), None, None, 0, 1e-5, False, 3)
    with pytest.raises(RuntimeError, match="gates must be 3"):
        ops.lrn_cell(torch.zeros(3, 10), torch.zeros(3, 5), None, None, 0, 1e-5, False, 2)
    with pytest.raises(RuntimeError, match="a norm needs norm_weight and norm_bias"):
        ops.lrn_cell(torch.zeros(3, 15), torch.zeros(3, 5), None, None, 1, 1e-5, False, 3)
    query, keys, values, mask = _attention_inputs(2, 3, 2, 5, 8, seed=2)
    with pytest.raises(RuntimeError, match="keys_t must be float32 .* the keys transposed"):
        ops.beam_attention(query, keys, values, mask, 1.0)
    with pytest.raises(RuntimeError, match="5 query rows are not a multiple of 2 sentences"):
        ops.beam_attention(query[:5], attention_keys(keys, True), values, mask, 1.0)
    with pytest.raises(RuntimeError, match="padding_mask must be a bool"):
        ops.beam_attention(query, attention_keys(keys, True), values, mask.float(), 1.0)
