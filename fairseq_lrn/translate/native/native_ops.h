// The compiled operators' C++ functions that other operators of this extension call directly
// (without the dispatcher): decoder_step.cpp composes a whole transformer_lrn step from them.
// torch's extension loader hashes the .cpp sources, not this header: a change here needs a new
// extension name (native/__init__.py).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace fairseq_lrn_native {

// int8_linear.cpp: torch.ops.fairseq_lrn.int8_linear (y = x W^T + b, int8 weights, 7-bit rows).
at::Tensor int8_linear(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& weight_scale,
                       const at::Tensor& weight_sum, const c10::optional<at::Tensor>& bias, int64_t out_features);

// int8_linear.cpp: the same product of M rows of K contiguous floats `x` into `y`, M x out_features
// contiguous floats the caller owns: no tensor is made (at one row a tensor's views and allocation
// cost more than a 256 x 256 product).
void int8_linear_into(const float* x, int64_t M, int64_t K, const at::Tensor& weight, const at::Tensor& weight_scale,
                      const at::Tensor& weight_sum, const c10::optional<at::Tensor>& bias, int64_t out_features,
                      float* y);

// fused_step.cpp: torch.ops.fairseq_lrn.lrn_cell, writing the new state into `h` (rows, D), a
// float32 tensor whose rows may be strided (a layer's slice of a (rows, layers, D) state).
void lrn_cell_into(const at::Tensor& projected, const at::Tensor& h_prev, const c10::optional<at::Tensor>& norm_weight,
                   const c10::optional<at::Tensor>& norm_bias, int64_t norm_style, double eps, bool tanh_activation,
                   int64_t gates, at::Tensor& h);

// fused_step.cpp: torch.ops.fairseq_lrn.beam_attention.
at::Tensor beam_attention(const at::Tensor& query, const at::Tensor& keys_t, const at::Tensor& values,
                          const c10::optional<at::Tensor>& padding_mask, double scaling);

// fused_step.cpp: x[0:n] <- (x - mean) / sqrt(var + eps), the biased variance (F.layer_norm
// without affine); the statistics summed in double.
void normalize(float* x, int64_t n, double eps);

}  // namespace fairseq_lrn_native
