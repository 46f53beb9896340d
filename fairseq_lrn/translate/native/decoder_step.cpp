// The decoder layers of a transformer_lrn step (fairseq's Transformer encoder, LRN decoder layers)
// in one call, for int8 mode: for each layer, the LRN sub-layer (int8 projection, lrn_cell), the
// encoder attention (int8 q_proj, beam_attention, int8 out_proj) and the feed-forward sub-layer
// (int8 fc1, ReLU, int8 fc2), each with its residual connection and layer norm (after it, or before
// it with normalize_before), as TransformerLRNDecoderLayer composes them.
//
// The pieces are this extension's own operators, called as C++ functions: at beam 5 and batch 1 a
// step of 3 layers was ~45 PyTorch operations replayed by a TorchScript trace (layer norms,
// additions, ReLU, views, a slice and a stack of the states), each a few microseconds of dispatch
// and allocation for a few thousand floats. The residual additions and layer norms here are one
// pass over each row. The numbers are those of the per-operator path (fused_ops.py's
// transformer_lrn_layers_reference) up to float rounding (the layer norm's statistics are summed
// in double): tested.

#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <vector>

#include "native_ops.h"

namespace {

// The parameters of one layer in `params`, in this order (Python: fused_ops._layer_params); an empty
// tensor stands for an absent one.
enum Param : int64_t {
  kCellProj = 0,          // lrn.proj: int8 weight, weight_scale, weight_sum, bias?
  kCellNormWeight = 4,    // lrn.norm_weight?, lrn.norm_bias?
  kCellNormBias = 5,
  kCellLayerNorm = 6,     // lrn_layer_norm: weight, bias
  kQueryProj = 8,         // encoder_attn.q_proj (4)
  kOutProj = 12,          // encoder_attn.out_proj (4)
  kAttentionLayerNorm = 16,
  kFc1 = 18,              // fc1 (4)
  kFc2 = 22,              // fc2 (4)
  kFinalLayerNorm = 26,
  kParamsPerLayer = 28,
};
// The output features of the layer's five int8 layers in `out_features`, in this order.
enum Linear : int64_t { kCellProjOut = 0, kQueryProjOut, kOutProjOut, kFc1Out, kFc2Out, kLinearsPerLayer };

// One layer's parameters, read from the flat list.
struct LayerParams {
  at::TensorList params;
  at::IntArrayRef out_features;
  int64_t layer;

  // an empty tensor stands for an absent one (a TorchScript trace cannot record lists of optional tensors)
  c10::optional<at::Tensor> get(int64_t i) const {
    const at::Tensor& t = params[layer * kParamsPerLayer + i];
    return t.numel() > 0 ? c10::optional<at::Tensor>(t) : c10::nullopt;
  }
  at::Tensor required(int64_t i) const {
    c10::optional<at::Tensor> t = get(i);
    TORCH_CHECK(t.has_value(), "transformer_lrn_layers: layer ", layer, " parameter ", i, " is missing");
    return *t;
  }
  int64_t out(int64_t which) const { return out_features[layer * kLinearsPerLayer + which]; }
  // y (N, out(which)) = the int8 layer at `first` applied to x (N, K): rows of contiguous floats
  void linear(const float* x, int64_t N, int64_t K, int64_t first, int64_t which, float* y) const {
    fairseq_lrn_native::int8_linear_into(x, N, K, required(first), required(first + 1), required(first + 2),
                                         get(first + 3), out(which), y);
  }
  // the float32 weight and bias of a layer norm, C values each
  std::pair<const float*, const float*> layer_norm(int64_t first, int64_t C) const {
    const at::Tensor w = required(first), b = required(first + 1);
    for (const at::Tensor* t : {&w, &b})
      TORCH_CHECK(t->scalar_type() == at::kFloat && t->numel() == C && t->is_contiguous(),
                  "transformer_lrn_layers: layer ", layer, "'s layer norms must have ", C, " contiguous float32 weights and biases");
    return {w.data_ptr<float>(), b.data_ptr<float>()};  // the tensors live in `params`
  }
};

// out[n] = layer_norm(x[n]) * w + b for rows of C floats (out and x may be the same rows).
void layer_norm_rows(const float* x, int64_t x_stride, float* out, int64_t N, int64_t C,
                     std::pair<const float*, const float*> affine, double eps) {
  const float *w = affine.first, *b = affine.second;
  for (int64_t n = 0; n < N; ++n) {
    float* row = out + n * C;
    if (row != x + n * x_stride) std::copy(x + n * x_stride, x + n * x_stride + C, row);
    fairseq_lrn_native::normalize(row, C, eps);
#pragma omp simd
    for (int64_t i = 0; i < C; ++i) row[i] = row[i] * w[i] + b[i];
  }
}

// A sub-layer's end: x <- x + y (rows of C floats, y's rows `y_stride` apart), then with
// `post_norm` the layer norm of x.
void add_residual(float* x, const float* y, int64_t y_stride, int64_t N, int64_t C, bool post_norm,
                  std::pair<const float*, const float*> affine, double eps) {
  for (int64_t n = 0; n < N; ++n) {
    float* row = x + n * C;
    const float* add = y + n * y_stride;
#pragma omp simd
    for (int64_t i = 0; i < C; ++i) row[i] += add[i];
  }
  if (post_norm) layer_norm_rows(x, C, x, N, C, affine, eps);
}

std::tuple<at::Tensor, at::Tensor> transformer_lrn_layers(
    const at::Tensor& input, const at::Tensor& h_prev, at::TensorList params,
    at::IntArrayRef out_features, at::TensorList keys_t, at::TensorList values,
    const c10::optional<at::Tensor>& padding_mask, bool normalize_before, double layer_norm_eps,
    int64_t cell_norm_style, double cell_norm_eps, bool tanh_activation, int64_t gates, double scaling) {
  TORCH_CHECK(input.device().is_cpu() && input.scalar_type() == at::kFloat && input.dim() == 2,
              "transformer_lrn_layers: input must be a (rows, C) float32 CPU tensor");
  const int64_t N = input.size(0), C = input.size(1), L = static_cast<int64_t>(keys_t.size());
  TORCH_CHECK(h_prev.scalar_type() == at::kFloat && h_prev.dim() == 3 && h_prev.size(0) == N && h_prev.size(1) == L &&
                  h_prev.size(2) == C,
              "transformer_lrn_layers: h_prev must be float32 (", N, ", ", L, ", ", C, "): rows, layers, channels");
  TORCH_CHECK(static_cast<int64_t>(values.size()) == L, "transformer_lrn_layers: ", L, " keys but ", values.size(), " values");
  TORCH_CHECK(static_cast<int64_t>(params.size()) == L * kParamsPerLayer, "transformer_lrn_layers: ",
              params.size(), " parameters for ", L, " layers, expected ", L * kParamsPerLayer);
  TORCH_CHECK(static_cast<int64_t>(out_features.size()) == L * kLinearsPerLayer, "transformer_lrn_layers: ",
              out_features.size(), " out_features for ", L, " layers, expected ", L * kLinearsPerLayer);
  const bool post_norm = !normalize_before;
  at::Tensor x = input.clone(at::MemoryFormat::Contiguous);  // (N, C): the layers' output, updated in place
  at::Tensor h_new = at::empty({N, L, C}, x.options());
  at::Tensor normed = normalize_before ? at::empty({N, C}, x.options()) : x;  // a sub-layer's input
  float* xp = x.data_ptr<float>();
  float* np = normed.data_ptr<float>();
  // a sub-layer's input: x, or with normalize_before its layer norm
  auto sublayer_input = [&](std::pair<const float*, const float*> affine) -> const float* {
    if (normalize_before) layer_norm_rows(xp, C, np, N, C, affine, layer_norm_eps);
    return np;
  };
  // the products' outputs, written in place rather than as new tensors: `wide` takes the cell's
  // projection, the query and the attention's and fc2's outputs (C each); `hidden` the
  // feed-forward's hidden layer
  int64_t wide_features = C, hidden_features = 0;
  for (int64_t l = 0; l < L; ++l) {
    const LayerParams p{params, out_features, l};
    TORCH_CHECK(p.out(kOutProjOut) == C && p.out(kFc2Out) == C, "transformer_lrn_layers: layer ", l,
                "'s out_proj and fc2 give ", p.out(kOutProjOut), " and ", p.out(kFc2Out), " features, not ", C);
    wide_features = std::max({wide_features, p.out(kCellProjOut), p.out(kQueryProjOut)});
    hidden_features = std::max(hidden_features, p.out(kFc1Out));
  }
  std::vector<float> wide(N * wide_features), hidden(N * hidden_features);
  const at::TensorOptions floats = x.options();
  for (int64_t l = 0; l < L; ++l) {
    const LayerParams p{params, out_features, l};
    const auto cell_norm = p.layer_norm(kCellLayerNorm, C), attention_norm = p.layer_norm(kAttentionLayerNorm, C),
               final_norm = p.layer_norm(kFinalLayerNorm, C);
    // the LRN: its new state is the sub-layer's output
    at::Tensor h = h_new.select(1, l);
    p.linear(sublayer_input(cell_norm), N, C, kCellProj, kCellProjOut, wide.data());
    fairseq_lrn_native::lrn_cell_into(at::from_blob(wide.data(), {N, p.out(kCellProjOut)}, floats), h_prev.select(1, l),
                                      p.get(kCellNormWeight), p.get(kCellNormBias), cell_norm_style, cell_norm_eps,
                                      tanh_activation, gates, h);
    add_residual(xp, h.data_ptr<float>(), h.stride(0), N, C, post_norm, cell_norm, layer_norm_eps);
    // the encoder attention
    p.linear(sublayer_input(attention_norm), N, C, kQueryProj, kQueryProjOut, wide.data());
    const at::Tensor context = fairseq_lrn_native::beam_attention(
        at::from_blob(wide.data(), {N, p.out(kQueryProjOut)}, floats), keys_t[l], values[l], padding_mask, scaling);
    p.linear(context.data_ptr<float>(), N, context.size(1), kOutProj, kOutProjOut, wide.data());
    add_residual(xp, wide.data(), C, N, C, post_norm, attention_norm, layer_norm_eps);
    // the feed-forward sub-layer
    p.linear(sublayer_input(final_norm), N, C, kFc1, kFc1Out, hidden.data());
    float* hp = hidden.data();
    const int64_t hidden_size = N * p.out(kFc1Out);
#pragma omp simd
    for (int64_t i = 0; i < hidden_size; ++i) hp[i] = hp[i] < 0.0f ? 0.0f : hp[i];  // as F.relu (NaN stays NaN)
    p.linear(hp, N, p.out(kFc1Out), kFc2, kFc2Out, wide.data());
    add_residual(xp, wide.data(), C, N, C, post_norm, final_norm, layer_norm_eps);
  }
  return {x, h_new};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(fairseq_lrn, m) {
  m.def("transformer_lrn_layers(Tensor input, Tensor h_prev, Tensor[] params, int[] out_features, "
        "Tensor[] keys_t, Tensor[] values, Tensor? padding_mask, bool normalize_before, float layer_norm_eps, "
        "int cell_norm_style, float cell_norm_eps, bool tanh_activation, int gates, float scaling) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(fairseq_lrn, CPU, m) { m.impl("transformer_lrn_layers", &transformer_lrn_layers); }
