"""The fairseq model in-process: incremental decoding, beam search scores, bad options."""

import argparse

import pytest
import torch

from fairseq_lrn.models.lrn import LRNModel, base_architecture
from fairseq_lrn.modules import LRNLayer
from tests.models.helpers import (assert_beam_scores_equal_full_forward, assert_incremental_equals_full, batch,
                                  build_model, make_dictionary, prev_output)


@pytest.mark.parametrize("overrides", [
    {},
    dict(decoder_input_feeding=True),
    dict(decoder_attention="general", decoder_attention_heads=2, decoder_layers=3),
    dict(decoder_attention="dot", lrn_activation="tanh", layer_norm=False),
    dict(encoder_bidirectional=False, encoder_layers=1, decoder_layers=1),
    dict(lrn_output_gate=True),
    dict(lrn_output_gate=True, lrn_activation="tanh", layer_norm=False, decoder_layers=3),
    dict(lrn_output_gate=True, decoder_input_feeding=True),
])
def test_incremental_decoder_equals_full_decoder(overrides):
    assert_incremental_equals_full(build_model(**overrides).double().eval())


@pytest.mark.parametrize("input_feeding", [False, True])
def test_incremental_decoding_runs_cell_steps(monkeypatch, input_feeding):
    model = build_model(decoder_input_feeding=input_feeding).double().eval()
    d = model.decoder.dictionary
    src, src_len = batch(d, [5, 3])
    prev = prev_output(d, 2, 3)
    enc = model.encoder(src, src_len)

    def no_recurrence(self, *args, **kwargs):
        raise AssertionError("an incremental step must call LRNLayer.step, not the recurrence")

    monkeypatch.setattr(LRNLayer, "forward", no_recurrence)
    with pytest.raises(AssertionError, match="must call LRNLayer.step"):
        model.decoder(prev, enc)  # the full decoder runs the recurrence
    state = {}
    for t in range(prev.size(1)):
        model.decoder(prev[:, :t + 1], enc, incremental_state=state)


def test_left_and_right_padding_give_the_same_encoding():
    model = build_model().double().eval()
    d = model.encoder.dictionary
    left, lengths = batch(d, [6, 2, 4], left_pad=True)
    right = torch.full_like(left, d.pad())
    for b, n in enumerate(lengths.tolist()):
        right[b, :n] = left[b, left.size(1) - n:]
    out_l, out_r = model.encoder(left, lengths), model.encoder(right, lengths)
    torch.testing.assert_close(out_l["final_state"], out_r["final_state"])
    for b, n in enumerate(lengths.tolist()):
        S = left.size(1)
        torch.testing.assert_close(out_l["encoder_out"][S - n:, b], out_r["encoder_out"][:n, b])
    prev = prev_output(d, 3, 4)
    torch.testing.assert_close(model.decoder(prev, out_l)[0], model.decoder(prev, out_r)[0])


@pytest.mark.parametrize("overrides", [{}, dict(decoder_input_feeding=True, decoder_layers=3)])
def test_left_padded_targets_train_as_each_sentence_alone(overrides):
    """--left-pad-target True: every real target step gets what the unpadded sentence gets
    (what beam search computes), so the padding in front changes nothing."""
    model = build_model(**overrides).double().eval()
    d = model.decoder.dictionary
    src, src_len = batch(d, [5, 3, 4])
    prev, lengths = batch(d, [6, 2, 4], left_pad=True)
    T = prev.size(1)
    for b, n in enumerate(lengths.tolist()):  # eos first, as fairseq feeds it, then words
        prev[b, T - n:] = torch.cat([torch.tensor([d.eos()]), torch.randint(d.nspecial, len(d), (n - 1,))])
    logits, attn = model(src, src_len, prev)
    for b, n in enumerate(lengths.tolist()):
        alone, alone_attn = model(src[b:b + 1], src_len[b:b + 1], prev[b:b + 1, T - n:])
        torch.testing.assert_close(logits[b, T - n:], alone[0], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(attn[b, T - n:], alone_attn[0], rtol=1e-9, atol=1e-9)


def test_beam_search_scores_equal_full_forward_scores():
    torch.manual_seed(1)
    assert_beam_scores_equal_full_forward(build_model().double().eval())


def test_shared_embeddings():
    d = make_dictionary()
    model = build_model(d, d, share_all_embeddings=True)
    assert model.encoder.embed_tokens is model.decoder.embed_tokens
    assert model.decoder.output_projection is None
    model = build_model(d, make_dictionary(31), share_decoder_input_output_embed=False)
    assert model.decoder.output_projection.weight.shape == (35, 16)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_output_gate_adds_a_fourth_gate_to_every_lrn(layer_norm):
    lrn = build_model(layer_norm=layer_norm)
    olrn = build_model(layer_norm=layer_norm, lrn_output_gate=True)
    layers = [m for m in lrn.modules() if isinstance(m, LRNLayer)]
    olrn_layers = [m for m in olrn.modules() if isinstance(m, LRNLayer)]
    # encoder: 2 layers; decoder: the lower cell and 2 blocks
    assert len(layers) == len(olrn_layers) == 5
    assert not any(m.output_gate for m in layers) and all(m.output_gate for m in olrn_layers)
    # one more gate per LRN: its share of the projection W, and of the bias (or of the norm's
    # weight and shift with layer norm)
    per_gate = sum(m.output_size * (m.input_size + (2 if layer_norm else 1)) for m in layers)
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    assert count(olrn) - count(lrn) == per_gate


def test_output_gate_flag():
    parser = argparse.ArgumentParser()
    LRNModel.add_args(parser)
    assert parser.parse_args(["--lrn-output-gate"]).lrn_output_gate is True
    args = parser.parse_args([])
    base_architecture(args)
    assert args.lrn_output_gate is False
    del args.lrn_output_gate  # the args of a checkpoint saved before the flag existed
    base_architecture(args)
    assert args.lrn_output_gate is False


@pytest.mark.parametrize("output_gate", [False, True])
def test_gradients_reach_every_parameter(output_gate):
    model = build_model(decoder_layers=2, encoder_layers=2, lrn_output_gate=output_gate)
    d = model.decoder.dictionary
    src, src_len = batch(d, [5, 3])
    logits, _ = model(src, src_len, prev_output(d, 2, 4))
    logits.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


@pytest.mark.parametrize("overrides, message", [
    (dict(decoder_attention="luong"), "--decoder-attention must be one of"),
    (dict(decoder_attention="False"), "--decoder-attention False"),
    (dict(decoder_attention="dot", decoder_hidden_size=32), "dot needs decoder hidden size"),
    (dict(decoder_attention_heads=5), "divisible by --decoder-attention-heads"),
    (dict(decoder_out_embed_dim=20), "--decoder-out-embed-dim"),
    (dict(share_all_embeddings=True, encoder_embed_dim=8), "--encoder-embed-dim"),
    (dict(encoder_layers=0), "--encoder-layers must be >= 1"),
    (dict(dropout=1.5, encoder_dropout_in=1.5), "must be in \\[0, 1\\)"),
    (dict(lrn_impl="cuda"), "--lrn-impl must be one of"),
    (dict(lrn_activation="relu"), "--lrn-activation must be one of"),
])
def test_bad_options_fail_at_build_naming_the_option(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_model(**overrides)


def test_share_all_embeddings_needs_joined_dictionary():
    with pytest.raises(ValueError, match="joined dictionary"):
        build_model(make_dictionary(), make_dictionary(31), share_all_embeddings=True)
