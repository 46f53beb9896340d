"""``--decoder-style conditional`` (the authors' decoder, zero's cond_rnn): against a step-by-step
reference written from the equations, incremental = full, beam scores = full forward (in-process),
and a tiny model trained and decoded with fairseq's command-line tools."""

import argparse

import pytest
import torch

from fairseq_lrn.models.lrn import LRNModel, base_architecture, lrn_wmt_en_de_paper
from fairseq_lrn.models.lrn_conditional_decoder import LRNConditionalDecoder
from fairseq_lrn.models.lrn_decoder import LRNDecoder
from fairseq_lrn.tools.generate_output import parse_generate_output
from tests.cli_utils import USER_DIR, run_cli, train_args
from tests.models.helpers import (assert_beam_scores_equal_full_forward, assert_incremental_equals_full, batch,
                                  build_model, prev_output)
from tests.models.test_cli_end_to_end import reversed_fraction

EPS = 1e-5  # torch's LayerNorm default (zero's is 1e-8)
PAPER = dict(decoder_style="conditional", decoder_init_state="zero", lrn_layer_norm_style="whole")


def norm(x, weight=None, bias=None, dims=1):
    """Layer norm over the last ``dims`` axes, written out."""
    axes = tuple(range(-dims, 0))
    mean = x.mean(axes, keepdim=True)
    var = ((x - mean) ** 2).mean(axes, keepdim=True)
    y = (x - mean) / torch.sqrt(var + EPS)
    return y if weight is None else y * weight + bias


def gates(layer, x):
    """p, q, r (, s) of an LRNLayer for x (B, in): x W, normalised per gate or over all gates."""
    G, H = layer.num_gates, layer.hidden_size
    y = x @ layer.proj.weight.t()
    if layer.norm_weight is None:
        return (y + layer.proj.bias).view(-1, G, H).unbind(1)
    y = y.view(-1, G, H)
    y = norm(y, dims=2 if layer.layer_norm_style == "whole" else 1)
    return (y * layer.norm_weight[:, 0] + layer.norm_bias[:, 0]).unbind(1)


def cell(layer, x, h):
    """i = sig(p + h), f = sig(q - h), c = g(i r + f h); oLRN: sig(s - c) c."""
    p, q, r, *s = gates(layer, x)
    c = torch.sigmoid(p + h) * r + torch.sigmoid(q - h) * h
    if layer.activation == "tanh":
        c = torch.tanh(c)
    return torch.sigmoid(s[0] - c) * c if s else c


def attention(att, s, memory, mask):
    """zero's additive attention of s (B, H) over memory (S, B, K): context (B, K)."""
    B, heads, hd = s.size(0), att.heads, att.head_dim
    q, k = s @ att.query_proj.weight.t(), memory @ att.key_proj.weight.t()
    if att.query_norm is None:
        q = q + att.query_proj.bias
    else:
        q = norm(q, att.query_norm.weight, att.query_norm.bias)
        k = norm(k, att.key_norm.weight, att.key_norm.bias)
    context = []
    for b in range(B):
        parts = []
        for h in range(heads):
            cols = slice(h * hd, (h + 1) * hd)
            score = torch.tanh(q[b, cols] + k[:, b, cols]) @ att.v  # (S,)
            if mask is not None:
                score = score.masked_fill(mask[b], float("-inf"))
            weight = torch.softmax(score, 0)
            kcols = slice(h * memory.size(-1) // heads, (h + 1) * memory.size(-1) // heads)
            parts.append(weight @ memory[:, b, kcols])
        context.append(torch.cat(parts))
    return torch.stack(context)


def reference_logits(dec, prev, enc):
    """The conditional decoder from its equations, one step and one layer at a time."""
    emb = dec.embed_tokens.weight[prev]  # (B, T, E)
    z = enc["final_state"]
    init = dec.init_state
    states = (z @ init.proj.weight.t()).view(z.size(0), init.num_states, -1)
    if init.style == "tanh_linear":
        states = torch.tanh(states + init.proj.bias.view(init.num_states, -1))
    elif init.norm_weight is None:
        states = states + init.proj.bias.view(init.num_states, -1)
    else:
        states = norm(states, init.norm_weight, init.norm_bias)
    memory, mask = enc["encoder_out"], enc["padding_mask"]
    h = states[:, 0]
    hs, contexts = [], []
    for t in range(prev.size(1)):
        s = cell(dec.conditional.lower, emb[:, t], h)  # s_t = lower(h_{t-1}, y_t)
        c = attention(dec.conditional.attention, s, memory, mask)  # from s_t
        h = cell(dec.conditional.higher, c, s)  # h_t = higher(s_t, c_t)
        hs.append(h)
        contexts.append(c)
    hs, contexts = torch.stack(hs, 1), torch.stack(contexts, 1)  # (B, T, .)
    y = hs @ dec.layer0_proj.weight.t() + dec.layer0_proj.bias
    if dec.layer0_residual:
        y = y + emb
    if dec.layer0_norm is not None:
        y = norm(y, dec.layer0_norm.weight, dec.layer0_norm.bias)
    for k, block in enumerate(dec.blocks, start=1):
        inp, hk, outs = torch.cat([y, contexts], -1), states[:, k], []
        for t in range(prev.size(1)):
            hk = cell(block.lrn, inp[:, t], hk)
            outs.append(hk)
        y = y + torch.stack(outs, 1) @ block.out_proj.weight.t() + block.out_proj.bias
        if block.norm is not None:
            y = norm(y, block.norm.weight, block.norm.bias)
    out = torch.cat([y, contexts], -1) @ dec.out_proj.weight.t()
    if dec.out_norm is None:
        out = out + dec.out_proj.bias
    else:
        out = norm(out, dec.out_norm.weight, dec.out_norm.bias)
    return torch.tanh(out) @ dec.embed_tokens.weight.t()


VARIANTS = [
    dict(decoder_style="conditional"),
    dict(PAPER, decoder_attention_heads=4),
    dict(PAPER, lrn_output_gate=True, decoder_layers=3),
    dict(PAPER, layer_norm=False, lrn_activation="tanh", decoder_layers=1),
    dict(decoder_style="conditional", decoder_init_state="zero", decoder_attention_heads=2,
         decoder_hidden_size=16, lrn_output_gate=True),  # embeddings = hidden: layer 0's residual
]


@pytest.mark.parametrize("overrides", VARIANTS)
def test_conditional_decoder_equals_step_by_step_reference(overrides):
    model = build_model(**overrides).double().eval()
    assert isinstance(model.decoder, LRNConditionalDecoder)
    d = model.decoder.dictionary
    src, src_len = batch(d, [5, 3, 4])
    prev = prev_output(d, 3, 5)
    enc = model.encoder(src, src_len)
    logits, _ = model.decoder(prev, enc)
    torch.testing.assert_close(logits, reference_logits(model.decoder, prev, enc), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("overrides", VARIANTS + [
    dict(decoder_style="conditional", decoder_attention="general", decoder_attention_heads=2),
    dict(PAPER, decoder_attention="dot", decoder_attention_dim=24),
])
def test_incremental_conditional_decoder_equals_full_decoder(overrides):
    assert_incremental_equals_full(build_model(**overrides).double().eval())


@pytest.mark.parametrize("output_gate", [False, True])
def test_conditional_beam_search_scores_equal_full_forward_scores(output_gate):
    torch.manual_seed(1)
    assert_beam_scores_equal_full_forward(
        build_model(**PAPER, decoder_attention_heads=2, lrn_output_gate=output_gate).double().eval())


def test_padded_target_steps_carry_the_state():
    """A left-padded target gives the real positions the numbers of the unpadded one."""
    model = build_model(**PAPER, decoder_layers=2).double().eval()
    d = model.decoder.dictionary
    src, src_len = batch(d, [5])
    prev = prev_output(d, 1, 4)
    padded = torch.cat([prev.new_full((1, 2), d.pad()), prev], 1)
    enc = model.encoder(src, src_len)
    torch.testing.assert_close(model.decoder(padded, enc)[0][:, 2:], model.decoder(prev, enc)[0])


def test_every_impl_gives_the_same_conditional_decoder():
    outputs = []
    for impl in ("reference", "cpu"):
        torch.manual_seed(3)
        model = build_model(**PAPER, decoder_layers=3, lrn_impl=impl).double().eval()
        d = model.decoder.dictionary
        torch.manual_seed(4)
        src, src_len = batch(d, [5, 2])
        prev = prev_output(d, 2, 4)
        outputs.append(model(src, src_len, prev)[0])
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("output_gate", [False, True])
def test_conditional_gradients_reach_every_parameter(output_gate):
    model = build_model(**PAPER, decoder_layers=2, lrn_output_gate=output_gate, decoder_hidden_size=16)
    d = model.decoder.dictionary
    src, src_len = batch(d, [5, 3])
    model(src, src_len, prev_output(d, 2, 4))[0].sum().backward()
    assert not [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


def test_defaults_and_old_checkpoint_args_build_the_parallel_decoder():
    parser = argparse.ArgumentParser()
    LRNModel.add_args(parser)
    args = parser.parse_args([])
    for name in ("decoder_style", "decoder_init_state", "lrn_layer_norm_style"):
        delattr(args, name)  # the args of a checkpoint saved before these flags existed
    base_architecture(args)
    assert (args.decoder_style, args.decoder_init_state, args.lrn_layer_norm_style) == (
        "parallel", "tanh_linear", "per_gate")
    assert type(build_model().decoder) is LRNDecoder


def test_paper_architecture():
    args = argparse.Namespace()
    lrn_wmt_en_de_paper(args)
    assert (args.decoder_style, args.decoder_init_state, args.lrn_layer_norm_style) == (
        "conditional", "zero", "whole")
    assert (args.encoder_layers, args.decoder_layers, args.decoder_hidden_size, args.decoder_embed_dim,
            args.decoder_attention_heads, args.layer_norm, args.lrn_activation, args.dropout) == (
        6, 6, 1024, 512, 8, True, "identity", 0.1)


@pytest.mark.parametrize("overrides, message", [
    (dict(decoder_style="serial"), "--decoder-style must be one of"),
    (dict(decoder_init_state="zero"), "--decoder-init-state zero needs --decoder-style conditional"),
    (dict(decoder_style="conditional", decoder_input_feeding=True), "--decoder-input-feeding is for"),
    (dict(lrn_layer_norm_style="gate"), "--lrn-layer-norm-style must be one of"),
    (dict(decoder_style="conditional", decoder_attention_heads=5), "divisible by --decoder-attention-heads"),
])
def test_bad_conditional_options_fail_naming_the_option(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_model(**overrides)


def test_conditional_decoder_learns_the_reversal_task_through_the_cli(trained, tmp_path):
    """fairseq-train + fairseq-generate (beam 5) with the authors' decoder, as a user runs them."""
    _, data_bin, _ = trained
    save_dir = str(tmp_path / "checkpoints")
    run_cli("train", *train_args(data_bin, save_dir, "--no-epoch-checkpoints", "--disable-validation",
                                 "--decoder-style", "conditional", "--decoder-init-state", "zero",
                                 "--lrn-layer-norm-style", "whole"))
    out = run_cli("generate", data_bin, "--user-dir", USER_DIR, "--path", f"{save_dir}/checkpoint_last.pt",
                  "--beam", "5", "--batch-size", "16", "--cpu").stdout
    sentences = parse_generate_output(out)
    assert len(sentences) == 40
    assert reversed_fraction([(s["S"], s["H"]) for s in sentences.values()]) >= 0.8
