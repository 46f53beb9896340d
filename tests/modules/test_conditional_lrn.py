"""The pieces of the authors' decoder in modules/: layer norm over the whole projection, and the
conditional LRN's full pass against its own one-step method."""

import pytest
import torch

from fairseq_lrn.modules import ConditionalLRN, InitialStates, LRNLayer, ZeroAdditiveAttention


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("output_gate", [False, True])
def test_whole_layer_norm_normalises_all_gates_of_each_direction_together(bidirectional, output_gate):
    layer = LRNLayer(5, 4, bidirectional, layer_norm=True, layer_norm_style="whole",
                     output_gate=output_gate).double()
    with torch.no_grad():
        layer.norm_weight.uniform_(0.5, 1.5)
        layer.norm_bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 2, 5, dtype=torch.double)
    G, ndir = layer.num_gates, layer.num_directions
    y = (x @ layer.proj.weight.t()).view(3, 2, G, ndir, 4)
    for k in range(ndir):  # zero runs each direction as its own rnn with its own norm
        part = y[..., k, :]
        mean = part.mean((-2, -1), keepdim=True)
        var = ((part - mean) ** 2).mean((-2, -1), keepdim=True)
        y[..., k, :] = (part - mean) / torch.sqrt(var + 1e-5)
    y = y * layer.norm_weight + layer.norm_bias
    torch.testing.assert_close(layer.project(x), y.flatten(-2))


def test_unknown_layer_norm_style_is_refused():
    with pytest.raises(ValueError, match="layer_norm_style must be one of"):
        LRNLayer(5, 4, layer_norm=True, layer_norm_style="gate")


def test_conditional_lrn_full_pass_equals_its_steps():
    cond = ConditionalLRN(6, 8, ZeroAdditiveAttention(8, 10, 10, heads=2, layer_norm=True), 10,
                          layer_norm=True, layer_norm_style="whole", output_gate=True).double()
    x, memory = torch.randn(5, 3, 6, dtype=torch.double), torch.randn(7, 3, 10, dtype=torch.double)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[1, :2] = True
    keys = cond.attention.project_keys(memory)
    h0 = torch.randn(3, 8, dtype=torch.double)
    states, contexts, weights, last = cond(x, h0, keys, memory, mask)
    h = h0
    for t in range(5):
        h, context, weight = cond.step(x[t], h, keys, memory, mask)
        torch.testing.assert_close(states[t], h)
        torch.testing.assert_close(contexts[t], context)
        torch.testing.assert_close(weights[:, t], weight)
    torch.testing.assert_close(last, h)
    assert (weights[1, :, :2] == 0).all()  # padded source positions get no weight


def test_initial_states():
    z = torch.randn(2, 6)
    tanh = InitialStates(6, 4, 3, "tanh_linear")
    torch.testing.assert_close(tanh(z), torch.tanh(tanh.proj(z)).view(2, 3, 4).transpose(0, 1))
    zero = InitialStates(6, 4, 3, "zero", layer_norm=True)
    assert zero.proj.bias is None  # the norm's shift is the bias
    out = zero(z)
    torch.testing.assert_close(out.mean(-1), torch.zeros(3, 2), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="--decoder-init-state must be one of"):
        InitialStates(6, 4, 3, "mean")
