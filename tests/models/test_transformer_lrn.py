"""transformer_lrn in-process: incremental == full decoder, beam scores, reorder, constant
state, every parameter trained, bad options named."""

import argparse
from types import SimpleNamespace

import pytest
import torch
from fairseq.sequence_generator import SequenceGenerator

from fairseq_lrn.models.transformer_lrn import TransformerLRNModel, transformer_lrn_base
from tests.models.helpers import make_dictionary
from tests.models.test_lrn_model import batch, prev_output

TINY = dict(encoder_embed_dim=16, encoder_ffn_embed_dim=32, encoder_layers=2, encoder_attention_heads=2,
            decoder_embed_dim=16, decoder_ffn_embed_dim=32, decoder_layers=2, decoder_attention_heads=2,
            dropout=0.0)


def build(dictionary=None, **overrides):
    """A ``transformer_lrn`` with TINY sizes, updated by ``overrides``."""
    d = dictionary or make_dictionary()
    args = argparse.Namespace(**{**TINY, **overrides})
    transformer_lrn_base(args)
    return TransformerLRNModel.build_model(args, SimpleNamespace(source_dictionary=d, target_dictionary=d))


def state_tensors(incremental_state):
    return [v for saved in incremental_state.values() for v in saved.values() if torch.is_tensor(v)]


@pytest.mark.parametrize("overrides", [
    {},
    dict(decoder_normalize_before=True, encoder_normalize_before=True),
    dict(lrn_activation="tanh", layer_norm=False, decoder_layers=3),
    dict(decoder_positional_embeddings=True, decoder_learned_pos=True),
    dict(lrn_output_gate=True, share_all_embeddings=True),
    dict(quant_noise_pq=0.1, quant_noise_pq_block_size=8, decoder_layerdrop=0.2),
])
def test_incremental_decoder_equals_full_decoder(overrides):
    model = build(**overrides).double().eval()
    d = model.decoder.dictionary
    src, src_len = batch(d, [5, 3, 4])
    prev = prev_output(d, 3, 7)
    enc = model.encoder(src, src_len)
    full, extra = model.decoder(prev, enc)
    state = {}
    for t in range(prev.size(1)):
        step, step_extra = model.decoder(prev[:, :t + 1], enc, incremental_state=state)
        torch.testing.assert_close(step[:, 0], full[:, t], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(step_extra["attn"][0][:, 0], extra["attn"][0][:, t])


def test_decoder_state_does_not_grow_with_the_output():
    model = build().eval()
    d = model.decoder.dictionary
    src, src_len = batch(d, [5, 3])
    enc = model.encoder(src, src_len)
    prev, state, sizes = prev_output(d, 2, 12), {}, []
    with torch.no_grad():
        for t in range(prev.size(1)):
            model.decoder(prev[:, :t + 1], enc, incremental_state=state)
            sizes.append(sum(v.numel() for v in state_tensors(state)))
    assert sizes[0] > 0 and len(set(sizes)) == 1, sizes


def test_reorder_incremental_state_selects_sentences():
    model = build().double().eval()
    d = model.decoder.dictionary
    src, src_len = batch(d, [5, 4, 3])
    prev = prev_output(d, 3, 5)
    enc = model.encoder(src, src_len)
    # fairseq's encoder attention leaves its static cache alone for a same-size order (beam
    # search only shuffles within a sentence); dropping a sentence changes the size.
    order = torch.tensor([2, 0])
    full, _ = model.decoder(prev[order], model.encoder.reorder_encoder_out(enc, order))
    state = {}
    for t in range(3):
        model.decoder(prev[:, :t + 1], enc, incremental_state=state)
    model.decoder.reorder_incremental_state_scripting(state, order)
    enc = model.encoder.reorder_encoder_out(enc, order)
    for t in range(3, 5):
        step, _ = model.decoder(prev[order, :t + 1], enc, incremental_state=state)
        torch.testing.assert_close(step[:, 0], full[:, t], rtol=1e-9, atol=1e-9)


def test_padded_targets_decode_as_each_sentence_alone(monkeypatch):
    """Left padding comes before the real steps: only a mask that reaches the LRN keeps it from
    changing them (every other sublayer works per position). Right padding cannot."""
    model = build().double().eval()
    d = model.decoder.dictionary
    src, src_len = batch(d, [5, 4, 3])
    enc = model.encoder(src, src_len)
    prev = prev_output(d, 3, 6)
    lengths = [6, 4, 2]
    left, right = torch.full_like(prev, d.pad()), torch.full_like(prev, d.pad())
    for b, n in enumerate(lengths):
        left[b, 6 - n:], right[b, :n] = prev[b, :n], prev[b, :n]
    alone = [model.decoder(prev[b:b + 1, :n], model.encoder(src[b:b + 1], src_len[b:b + 1]))[0][0]
             for b, n in enumerate(lengths)]
    out_left, out_right = model.decoder(left, enc)[0], model.decoder(right, enc)[0]
    for b, n in enumerate(lengths):
        torch.testing.assert_close(out_left[b, 6 - n:], alone[b], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(out_right[b, :n], alone[b], rtol=1e-9, atol=1e-9)

    layer_type = type(model.decoder.layers[0])
    run_lrn = layer_type.run_lrn
    monkeypatch.setattr(layer_type, "run_lrn", lambda self, x, h0, mask, single: run_lrn(self, x, h0, None, single))
    unmasked = model.decoder(left, enc)[0]  # the same batch with the mask kept from the LRN
    assert not torch.allclose(unmasked[2, 4:], alone[2])


@pytest.mark.parametrize("beam", [1, 5])
def test_beam_search_scores_equal_full_forward_scores(beam):
    torch.manual_seed(1)
    model = build().double().eval()
    d = model.decoder.dictionary
    src, src_len = batch(d, [5, 4, 2])
    generator = SequenceGenerator([model], d, beam_size=beam, max_len_b=8)
    hypos = generator.forward({"net_input": {"src_tokens": src, "src_lengths": src_len}})
    for b, hypotheses in enumerate(hypos):
        assert len(hypotheses) == beam
        for hypo in hypotheses:
            tokens = hypo["tokens"].unsqueeze(0)
            prev = torch.cat([tokens.new_full((1, 1), d.eos()), tokens[:, :-1]], 1)
            enc = model.encoder(src[b:b + 1], src_len[b:b + 1])
            lprobs = model.get_normalized_probs(model.decoder(prev, enc), log_probs=True)
            token_scores = lprobs[0].gather(-1, tokens[0].unsqueeze(-1)).squeeze(-1)
            torch.testing.assert_close(hypo["positional_scores"], token_scores, rtol=1e-6, atol=1e-6)


def test_gradients_reach_every_parameter():
    model = build(share_all_embeddings=True)
    d = model.decoder.dictionary
    src, src_len = batch(d, [5, 3])
    logits, _ = model(src, src_len, prev_output(d, 2, 4))
    logits.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


def test_the_decoder_has_no_self_attention_and_fewer_parameters_than_the_transformer():
    from fairseq.models.transformer import TransformerModel, base_architecture

    d = make_dictionary()
    args = argparse.Namespace(**TINY)
    base_architecture(args)
    transformer = TransformerModel.build_model(args, SimpleNamespace(source_dictionary=d, target_dictionary=d))
    model = build(d)
    names = [n for n, _ in model.decoder.named_parameters()]
    assert not [n for n in names if "self_attn" in n]
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # per decoder layer: self-attention 4 d^2 + 4 d (+ positions) vs LRN projection 3 d^2 (+ norms)
    assert count(model.encoder) == count(transformer.encoder)
    assert count(model.decoder) < count(transformer.decoder)


@pytest.mark.parametrize("overrides, message", [
    (dict(cross_self_attention=True), "--cross-self-attention does not apply"),
    (dict(no_cross_attention=True), "--no-cross-attention does not apply"),
    (dict(decoder_xformers_att_config="{}"), "--decoder-xformers-att-config does not apply"),
    (dict(decoder_learned_pos=True), "--decoder-learned-pos needs --decoder-positional-embeddings"),
    (dict(lrn_impl="cuda"), "--lrn-impl must be one of"),
    (dict(lrn_activation="relu"), "--lrn-activation must be one of"),
    (dict(decoder_attention_heads=3), "divisible by --decoder-attention-heads"),
    (dict(decoder_layers=0), "--decoder-layers must be >= 1"),
])
def test_bad_options_fail_at_build_naming_the_option(overrides, message):
    with pytest.raises(ValueError, match=message):
        build(**overrides)
