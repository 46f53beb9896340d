"""int8 mode's self-attention of fairseq's Transformer encoder layers
(fairseq_lrn/translate/int8_self_attention.py): its packed projection against the three layers
quantized apart (bit for bit), the attention against fairseq's float module (within the
quantization's error) and against each sentence decoded alone (padding masked), the compiled
kernel against PyTorch's, what it refuses, and int8 mode replacing the encoder's self-attentions."""

import pytest
import torch
from fairseq.modules import MultiheadAttention

from fairseq_lrn.translate.int8_linear import Int8Linear
from fairseq_lrn.translate.int8_self_attention import Int8SelfAttention, replaceable
from fairseq_lrn.translate.native import native_available


@pytest.fixture(scope="module")
def compiled():
    assert native_available() is None, native_available()


def _attention(seed: int, **kwargs) -> MultiheadAttention:
    torch.manual_seed(seed)
    attention = MultiheadAttention(16, 4, self_attention=True, **kwargs).eval()
    with torch.no_grad():
        for p in attention.parameters():
            p.normal_(0, 0.3)
    return attention


def _padded_batch(seed: int):
    """(S=6, B=3, C=16) with the sentences' 6, 4 and 1 positions at the right (left padding)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 3, 16, generator=g)
    lengths = torch.tensor([6, 4, 1])
    padding = torch.arange(6).unsqueeze(0) < (6 - lengths).unsqueeze(1)  # (B, S), True at padding
    return x, padding, lengths


@pytest.mark.parametrize("use_compiled", [False, True])
def test_packed_projection_equals_the_three_layers_quantized_apart(compiled, use_compiled):
    attention = _attention(1)
    int8 = Int8SelfAttention.from_attention(attention, use_compiled)
    x, _, _ = _padded_batch(1)
    with torch.inference_mode():
        packed = int8.in_proj(x)
        apart = torch.cat([Int8Linear.from_linear(p, use_compiled)(x)
                           for p in (attention.q_proj, attention.k_proj, attention.v_proj)], -1)
    assert torch.equal(packed, apart)


def test_attention_is_fairseqs_within_the_quantization_error(compiled):
    attention = _attention(2)
    x, padding, lengths = _padded_batch(2)
    with torch.inference_mode():
        expected, _ = attention(query=x, key=x, value=x, key_padding_mask=padding, need_weights=False)
        got, weights = Int8SelfAttention.from_attention(attention, True)(
            query=x, key=x, value=x, key_padding_mask=padding, need_weights=False)
    assert weights is None and got.shape == expected.shape
    for b, n in enumerate(lengths.tolist()):  # the positions of words (padding's outputs are not read)
        error = (got[-n:, b] - expected[-n:, b]).norm() / expected[-n:, b].norm()
        assert error < 0.03, (b, float(error))


def test_a_padded_sentence_gets_what_it_gets_alone(compiled):
    attention = _attention(3)
    int8 = Int8SelfAttention.from_attention(attention, True)
    x, padding, lengths = _padded_batch(3)
    with torch.inference_mode():
        batched, _ = int8(x, x, x, key_padding_mask=padding)
        for b, n in enumerate(lengths.tolist()):
            alone, _ = int8(x[-n:, b: b + 1], None, None)
            torch.testing.assert_close(batched[-n:, b: b + 1], alone, rtol=1e-5, atol=1e-6)
        # a padded position's value changes nothing at the others
        x2 = x.clone()
        x2[0, 1] = 100.0  # sentence 1's first position is padding
        moved, _ = int8(x2, x2, x2, key_padding_mask=padding)
    torch.testing.assert_close(moved[2:, 1], batched[2:, 1], rtol=1e-5, atol=1e-6)


def test_compiled_equals_pytorch(compiled):
    attention = _attention(4)
    x, padding, _ = _padded_batch(4)
    with torch.inference_mode():
        outputs = [Int8SelfAttention.from_attention(attention, c)(x, x, x, key_padding_mask=padding)[0]
                   for c in (False, True)]
    assert torch.equal(*outputs)


def test_what_it_refuses():
    assert replaceable(_attention(5))
    assert not replaceable(MultiheadAttention(16, 4, encoder_decoder_attention=True))
    assert not replaceable(_attention(5, add_bias_kv=True))
    assert not replaceable(_attention(5, add_zero_attn=True))
    assert not replaceable(torch.nn.MultiheadAttention(16, 4))
    with pytest.raises(ValueError, match="plain fairseq self-attention"):
        Int8SelfAttention.from_attention(_attention(5, add_bias_kv=True), False)
    int8 = Int8SelfAttention.from_attention(_attention(5), False)
    x = torch.randn(3, 2, 16)
    with pytest.raises(ValueError, match="without attention weights or an attention mask"):
        int8(x, x, x, attn_mask=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="without attention weights or an attention mask"):
        int8(x, x, x, need_weights=True)


def test_int8_mode_replaces_the_encoders_self_attentions(compiled):
    from fairseq_lrn.translate.model_runner import runner_for
    from fairseq_lrn.translate.quantize import quantize_runner
    from tests.models.test_transformer_lrn import build

    model = build().eval()
    layers = len(model.encoder.layers)
    runner = quantize_runner(runner_for(model), "int8", compiled=True)
    assert all(isinstance(layer.self_attn, Int8SelfAttention) for layer in runner.model.encoder.layers)
    assert layers > 0
    # the decoder's encoder attention keeps its projections (the runner reads them), quantized
    assert all(isinstance(layer.encoder_attn.q_proj, Int8Linear) for layer in runner.model.decoder.layers)
