"""The fused decoder-step operations of compiled int8 mode (fairseq_lrn/translate/fused_ops.py and
native/fused_step.cpp) against the PyTorch computations they replace: the LRN cell after its
projection (every norm style, activation and the oLRN gate, from a strided state) and the encoder
attention of a sentence's beams (padding, odd sizes, a fully masked row), and the decoder layers
of a transformer_lrn step in one call (every layer form it takes, against the per-operation step),
within float rounding; bad arguments; and which decoders run it."""

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
from fairseq_lrn.translate.model_runner import runner_for
from fairseq_lrn.translate.native import native_available
from fairseq_lrn.translate.quantize import quantize_runner


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
    for h_prev in (torch.zeros(()), torch.zeros(15)):  # its sizes are read only after this check
        with pytest.raises(RuntimeError, match=rf"h_prev must be a \(rows, D\) .* got {h_prev.dim()} dimensions"):
            ops.lrn_cell(torch.zeros(3, 15), h_prev, None, None, 0, 1e-5, False, 3)
    query, keys, values, mask = _attention_inputs(2, 3, 2, 5, 8, seed=2)
    with pytest.raises(RuntimeError, match="keys_t must be float32 .* the keys transposed"):
        ops.beam_attention(query, keys, values, mask, 1.0)
    with pytest.raises(RuntimeError, match="5 query rows are not a multiple of 2 sentences"):
        ops.beam_attention(query[:5], attention_keys(keys, True), values, mask, 1.0)
    with pytest.raises(RuntimeError, match="padding_mask must be a bool"):
        ops.beam_attention(query, attention_keys(keys, True), values, mask.float(), 1.0)


def _fused_transformer_lrn_runner(seed, **overrides):
    """A tiny ``transformer_lrn`` (tests/models/test_transformer_lrn.py's sizes, 3 decoder layers,
    random layer norm weights) in compiled int8 mode, and the encoder memory of a padded batch."""
    from tests.models.helpers import batch
    from tests.models.test_transformer_lrn import build

    torch.manual_seed(seed)
    model = build(**{"decoder_layers": 3, **overrides}).eval()
    with torch.no_grad():
        for name, p in model.decoder.named_parameters():
            if "norm" in name:  # not the identity initialization
                p.normal_()
    runner = quantize_runner(runner_for(model), "int8", compiled=True)
    src_tokens, src_lengths = batch(model.decoder.dictionary, [5, 3, 4])  # padded: the mask is read
    with torch.inference_mode():
        memory = runner.encode(src_tokens, src_lengths)
    return runner, memory


@pytest.mark.parametrize("overrides", [
    {},
    dict(decoder_normalize_before=True, encoder_normalize_before=True),
    dict(lrn_activation="tanh", layer_norm=False),
    dict(lrn_output_gate=True, share_all_embeddings=True),
    dict(decoder_positional_embeddings=True, decoder_learned_pos=True),
])
def test_transformer_lrn_layers_equal_the_step_operation_by_operation(compiled, overrides):
    """The whole-layers call against the same int8 step run operation by operation (with the fused
    cell and attention), from a random state: the features and every layer's new state."""
    runner, memory = _fused_transformer_lrn_runner(len(overrides), **overrides)
    assert runner.fused_layers() is not None
    layers = len(runner.model.decoder.layers)
    N = 3 * 4
    state = (torch.randn(N, layers, 16) * 2,)
    tokens = torch.randint(4, 30, (N, 3))
    with torch.inference_mode():
        features, (h,) = runner.step_features(tokens, state, memory)
        runner._fused_layers = False  # operation by operation
        expected, (expected_h,) = runner.step_features(tokens, state, memory)
    assert h.shape == (N, layers, 16)
    _assert_close_but_for_a_rounding_flip(h, expected_h)
    _assert_close_but_for_a_rounding_flip(features, expected)


def _assert_close_but_for_a_rounding_flip(got, expected):
    """Equal within 1e-5, but for at most one row within 0.02: the two paths round floats in other
    orders (the compiled layer norm sums in double), so an input row of an int8 product may land
    on the other side of a rounding step of its 7-bit quantization (seen: one of 12 rows)."""
    far = (got - expected).abs().gt(1e-5 + 1e-5 * expected.abs()).flatten(1).any(1)
    assert int(far.sum()) <= 1, f"rows {far.nonzero().flatten().tolist()} differ"
    torch.testing.assert_close(got, expected, rtol=0, atol=0.02)


def test_transformer_lrn_layers_run_only_where_they_compute_the_same(compiled):
    """GELU layers and fp32 or PyTorch-int8 runners keep the step operation by operation."""
    gelu, _ = _fused_transformer_lrn_runner(0, activation_fn="gelu")
    assert gelu.fused_layers() is None
    from tests.models.test_transformer_lrn import build

    for mode, compiled_int8 in (("none", True), ("int8", False)):
        runner = quantize_runner(runner_for(build().eval()), mode, compiled=compiled_int8)
        assert runner.fused_layers() is None


def test_transformer_lrn_layers_refuse_bad_arguments(compiled):
    runner, memory = _fused_transformer_lrn_runner(1)
    fused = runner.fused_layers()
    x, h = torch.randn(12, 16), torch.randn(12, 3, 16)
    ops = torch.ops.fairseq_lrn
    args = dict(normalize_before=False, layer_norm_eps=1e-5, cell_norm_style=1, cell_norm_eps=1e-5,
                tanh_activation=False, gates=3, scaling=0.25)
    with pytest.raises(RuntimeError, match="55 parameters for 3 layers, expected 84"):
        ops.transformer_lrn_layers(x, h, fused.params[:55], fused.out_features, memory.keys, memory.values,
                                   memory.padding_mask, **args)
    with pytest.raises(RuntimeError, match=r"h_prev must be float32 \(12, 3, 16\)"):
        ops.transformer_lrn_layers(x, h[:, :2], fused.params, fused.out_features, memory.keys, memory.values,
                                   memory.padding_mask, **args)
    with pytest.raises(RuntimeError, match="3 keys but 2 values"):
        ops.transformer_lrn_layers(x, h, fused.params, fused.out_features, memory.keys, memory.values[:2],
                                   memory.padding_mask, **args)
    narrow_fc2 = list(fused.out_features)
    narrow_fc2[4] = 8  # layer 0's fc2 (the fifth int8 layer of each)
    with pytest.raises(RuntimeError, match="layer 0's out_proj and fc2 give 16 and 8 features, not 16"):
        ops.transformer_lrn_layers(x, h, fused.params, narrow_fc2, memory.keys, memory.values,
                                   memory.padding_mask, **args)


def test_transformer_lrn_int8_translations_are_those_of_the_step_operation_by_operation(compiled,
                                                                                         trained_transformer_lrn):
    """A trained toy transformer_lrn in int8 mode: its layers run as one call, and translate as the
    per-operation step does (traced, as by default, at beam 5 and greedy)."""
    from fairseq_lrn.translate import Translator

    data_bin, checkpoint = trained_transformer_lrn
    fused = Translator.from_checkpoint(checkpoint, data_bin, quantize="int8")
    per_op = Translator.from_checkpoint(checkpoint, data_bin, quantize="int8")
    per_op.runner._fused_layers = False  # before its first step: the trace recorded while loading is dropped
    per_op.runner._traced.traces.clear()
    assert fused.step == "traced" and fused.runner.fused_layers() is not None
    lines = ["w1 w2 w3", "w4 w5", "w9 w8 w7 w6 w5 w4", "w0", "w3 w1 w4 w1 w5"]
    for beam in (5, 1):
        assert fused.translate(lines, beam=beam, batch_size=2) == per_op.translate(lines, beam=beam, batch_size=2)
    assert per_op.runner.fused_layers() is None


def test_traced_step_flattening_round_trips():
    """The traced step's flat arguments: tensors in order, None leaves kept in the structure,
    NamedTuples and lists rebuilt."""
    from fairseq_lrn.translate.traced_step import _flatten, _unflatten
    from fairseq_lrn.translate.transformer_lrn_runner import TransformerLRNMemory

    a, b, c, d = (torch.full((1,), float(i)) for i in range(4))
    tree = ((a, None), TransformerLRNMemory([b, c], [d], None))
    tensors, present, spec = _flatten(tree)
    assert [t.item() for t in tensors] == [0, 1, 2, 3] and present == (True, False, True, True, True, False)
    rebuilt = _unflatten([t + 10 for t in tensors], present, spec)
    assert isinstance(rebuilt[1], TransformerLRNMemory) and isinstance(rebuilt[1].keys, list)
    assert rebuilt[0][1] is None and rebuilt[1].padding_mask is None
    assert [t.item() for t in (rebuilt[0][0], *rebuilt[1].keys, *rebuilt[1].values)] == [10, 11, 12, 13]
