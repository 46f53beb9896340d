"""LRN (and oLRN) layers and attention: step() against the full sequence, projections, shapes."""

import pytest
import torch

from fairseq_lrn.modules import LRN, Attention, LRNBlock, LRNLayer
from fairseq_lrn.modules import lrn as lrn_module
from fairseq_lrn.ops import lrn_recurrence_reference


@pytest.mark.parametrize("output_gate", [False, True])
@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_step_equals_full_sequence(layer_norm, activation, output_gate):
    layer = LRNLayer(5, 7, activation=activation, layer_norm=layer_norm, output_gate=output_gate).double()
    x, h0 = torch.randn(6, 3, 5).double(), torch.randn(3, 7).double()
    out, last = layer(x, h0)
    h = h0
    for t in range(6):
        h = layer.step(x[t], h)
        torch.testing.assert_close(h, out[t], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, last)


def test_projection_is_one_gemm_and_matches_reference():
    layer = LRNLayer(4, 3, bidirectional=True).double()
    assert layer.proj.weight.shape == (3 * 2 * 3, 4)
    x = torch.randn(5, 2, 4).double()
    pqr = (x @ layer.proj.weight.t() + layer.proj.bias).view(5, 2, 3, 6)
    expected, expected_last = lrn_recurrence_reference(pqr, bidirectional=True)
    out, last = layer(x)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(last, expected_last)


@pytest.mark.parametrize("impl", ["cpu", "reference"])
def test_output_gate_projects_four_gates_and_matches_reference(impl):
    layer = LRNLayer(4, 3, bidirectional=True, output_gate=True, impl=impl).double()
    assert layer.proj.weight.shape == (4 * 2 * 3, 4) and layer.proj.bias.shape == (4 * 2 * 3,)
    x = torch.randn(5, 2, 4).double()
    pqrs = (x @ layer.proj.weight.t() + layer.proj.bias).view(5, 2, 4, 6)
    expected, expected_last = lrn_recurrence_reference(pqrs, bidirectional=True, output_gate=True)
    out, last = layer(x)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(last, expected_last)
    assert "output_gate=True" in repr(layer)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_lrn_parameters_unchanged_by_the_output_gate_option(layer_norm):
    # Checkpoints of LRN layers (3 gates) load as before; oLRN has the same parameter names,
    # with a 4th gate in the projection and in the norm's (gate, direction, channel) parameters.
    lrn = LRNLayer(6, 5, bidirectional=True, layer_norm=layer_norm)
    olrn = LRNLayer(6, 5, bidirectional=True, layer_norm=layer_norm, output_gate=True)
    shapes = {name: tuple(p.shape) for name, p in lrn.state_dict().items()}
    expected = {"proj.weight": (3 * 10, 6)}
    expected.update({"norm_weight": (3, 2, 5), "norm_bias": (3, 2, 5)} if layer_norm else {"proj.bias": (30,)})
    assert shapes == expected
    assert {name: tuple(p.shape) for name, p in olrn.state_dict().items()} == {
        name: (4 * shape[0] // 3, *shape[1:]) if name.startswith("proj") else (4, *shape[1:])
        for name, shape in expected.items()}
    LRNLayer(6, 5, bidirectional=True, layer_norm=layer_norm).load_state_dict(lrn.state_dict())
    with pytest.raises(RuntimeError, match="size mismatch"):
        olrn.load_state_dict(lrn.state_dict())


def test_layer_norm_normalises_each_gate_and_direction():
    layer = LRNLayer(8, 4, bidirectional=True, layer_norm=True)
    assert layer.proj.bias is None  # the norm's shift is the bias
    pqr = layer.project(torch.randn(3, 2, 8) * 10)
    per_gate = pqr.view(3, 2, 3, 2, 4)
    torch.testing.assert_close(per_gate.mean(-1), torch.zeros(3, 2, 3, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_gate.var(-1, unbiased=False), torch.ones(3, 2, 3, 2), atol=1e-3, rtol=0)
    olrn = LRNLayer(8, 4, bidirectional=True, layer_norm=True, output_gate=True)
    assert olrn.norm_weight.shape == olrn.norm_bias.shape == (4, 2, 4)
    per_gate = olrn.project(torch.randn(3, 2, 8) * 10).view(3, 2, 4, 2, 4)
    torch.testing.assert_close(per_gate.mean(-1), torch.zeros(3, 2, 4, 2), atol=1e-5, rtol=0)


def test_forward_of_one_step_runs_the_chosen_implementation(monkeypatch):
    # T == 1 with a state and no gradients (what incremental decoding looks like) still runs the
    # layer's impl: only an explicit step() runs the cell step.
    layer = LRNLayer(5, 7, impl="reference").double()
    x, h0 = torch.randn(1, 3, 5).double(), torch.randn(3, 7).double()
    impls = []
    recurrence = lrn_module.lrn_recurrence

    def recording(*args, **kwargs):
        impls.append(args[5])
        return recurrence(*args, **kwargs)

    def no_step(*args, **kwargs):
        raise AssertionError("forward() must not take the step path")

    monkeypatch.setattr(lrn_module, "lrn_recurrence", recording)
    monkeypatch.setattr(lrn_module, "lrn_step", no_step)
    with torch.no_grad():
        out, last = layer(x, h0)
    assert impls == ["reference"]
    expected, expected_last = lrn_recurrence_reference(layer.project(x), h0)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(last, expected_last)


@pytest.mark.parametrize("output_gate", [False, True])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_block_step_equals_full_sequence(layer_norm, output_gate):
    block = LRNBlock(6, 5, 6, layer_norm=layer_norm, output_gate=output_gate).double()
    x = torch.randn(4, 3, 6).double()
    y, last = block(x, residual=x)  # from a zero state
    h = None  # step() from None: the zero state
    for t in range(4):
        y_t, h = block.step(x[t], residual=x[t], h_prev=h)
        torch.testing.assert_close(y_t, y[t], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, last, rtol=1e-12, atol=1e-12)


def test_bidirectional_layer_refuses_step():
    with pytest.raises(RuntimeError, match="unidirectional"):
        LRNLayer(3, 3, bidirectional=True).step(torch.zeros(1, 3), torch.zeros(1, 6))


@pytest.mark.parametrize("output_gate", [False, True])
def test_stacked_lrn_like_nn_lstm(output_gate):
    lrn = LRN(5, 6, num_layers=3, dropout=0.0, output_gate=output_gate).double()
    assert all(layer.output_gate == output_gate for layer in lrn.layers)
    x = torch.randn(7, 2, 5).double()
    out, h_n = lrn(x)
    assert out.shape == (7, 2, 6) and h_n.shape == (3, 2, 6)
    state = torch.zeros(3, 2, 6).double()
    for t in range(7):
        y, state = lrn.step(x[t], state)
        torch.testing.assert_close(y, out[t])
    torch.testing.assert_close(state, h_n)
    bi = LRN(5, 6, num_layers=2, bidirectional=True)
    out, h_n = bi(torch.randn(4, 2, 5))
    assert out.shape == (4, 2, 12) and h_n.shape == (2, 2, 12)


@pytest.mark.parametrize("output_gate", [False, True])
def test_padding_mask_reaches_recurrence(output_gate):
    layer = LRNLayer(3, 4, bidirectional=True, output_gate=output_gate).double()
    x = torch.randn(5, 2, 3).double()
    mask = torch.zeros(5, 2, dtype=torch.bool)
    mask[:2, 1] = True  # left padding
    out, last = layer(x, padding_mask=mask)
    alone, alone_last = layer(x[2:, 1:])
    torch.testing.assert_close(out[2:, 1:], alone)
    torch.testing.assert_close(last[1:], alone_last)
    assert torch.all(out[:2, 1] == 0)


@pytest.mark.parametrize("output_gate", [False, True])
def test_block_residual_and_norm(output_gate):
    block = LRNBlock(6, 5, 6, layer_norm=True, output_gate=output_gate)
    assert block.lrn.output_gate == output_gate and block.lrn.proj.out_features == (4 if output_gate else 3) * 5
    x, residual = torch.randn(4, 2, 6), torch.randn(4, 2, 6)
    y, last = block(x, residual=residual)
    assert y.shape == (4, 2, 6) and last.shape == (2, 5)
    h, h_last = block.lrn(x)  # the block's own LRN, then its output projection, + residual, norm
    torch.testing.assert_close(last, h_last)
    torch.testing.assert_close(y, block.norm(block.out_proj(h) + residual))
    torch.testing.assert_close(y.mean(-1), torch.zeros(4, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(block(x)[0], block.norm(block.out_proj(h)))  # no residual: none added
    assert not torch.allclose(block(x)[0], y)


@pytest.mark.parametrize("kind", ["additive", "general", "dot"])
@pytest.mark.parametrize("heads", [1, 2])
def test_attention_ignores_padding_and_sums_to_one(kind, heads):
    attn = Attention(8, 8, 6, kind, heads).double()
    enc = torch.randn(5, 2, 8).double()
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[1, :2] = True
    q = torch.randn(3, 2, 8).double()
    ctx, w = attn(q, attn.project_keys(enc), enc, mask)
    assert ctx.shape == (3, 2, 8) and w.shape == (2, 3, 5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3).double())
    assert torch.all(w[1, :, :2] == 0)
    # context of sentence 1 is unchanged when its padded positions hold other values
    enc2 = enc.clone()
    enc2[:2, 1] = 100.0
    ctx2, _ = attn(q, attn.project_keys(enc2), enc2, mask)
    torch.testing.assert_close(ctx2[:, 1], ctx[:, 1])
    # one query at a time gives the same contexts (incremental decoding)
    ctx_step, _ = attn(q[1:2], attn.project_keys(enc), enc, mask)
    torch.testing.assert_close(ctx_step[0], ctx[1])


@pytest.mark.parametrize("args, message", [
    (dict(kind="luong"), "--decoder-attention must be one of"),
    (dict(kind="dot", query_dim=4), "dot needs decoder hidden size"),
    (dict(heads=4, attention_dim=6), "divisible by --decoder-attention-heads"),
])
def test_attention_bad_options(args, message):
    kwargs = dict(query_dim=8, key_dim=8, attention_dim=8, kind="additive", heads=1)
    kwargs.update(args)
    with pytest.raises(ValueError, match=message):
        Attention(**kwargs)
