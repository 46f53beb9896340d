// Fused parts of a decoder step for int8 mode: the LRN cell after its projection, and the
// encoder attention of a sentence's beams against its keys and values.
//
// A decoder step at beam 5 is a few to a few hundred rows of small vectors (d = 256-512), and in
// PyTorch each of these parts is 6-12 operations (views, transposes, small batched matrix
// products, a mask, a softmax), each a pass over memory plus a few microseconds of dispatch. Here
// each is one pass, vectorized (by the compiler, with the float functions of vector_math.h, or by
// hand: the attention's register-blocked products).
// They compute what their PyTorch references compute up to float rounding (sums are taken in
// another order, the exponential is a polynomial): int8 mode changes the numbers anyway, and the
// tests bound the difference. The semantics and references: lrn_cell_reference and
// beam_attention_reference in fairseq_lrn/translate/fused_ops.py.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "native_ops.h"
#include "vector_math.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace fairseq_lrn_native {

void normalize(float* x, int64_t n, double eps) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / n;
  double squares = 0.0;
#pragma omp simd reduction(+ : squares)
  for (int64_t i = 0; i < n; ++i) squares += (x[i] - mean) * (x[i] - mean);
  const float m = static_cast<float>(mean), rstd = static_cast<float>(1.0 / std::sqrt(squares / n + eps));
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] = (x[i] - m) * rstd;
}

}  // namespace fairseq_lrn_native

namespace {

using fairseq_lrn_native::exp_nonpositive;
using fairseq_lrn_native::normalize;
using fairseq_lrn_native::sigmoid;

constexpr int64_t kNoNorm = 0, kNormPerGate = 1, kNormWhole = 2;  // lrn_cell's norm_style

// One row of lrn_cell: pqr (G * D), normalized in place when asked; h_prev (D) -> h (D).
void lrn_cell_row(float* pqr, const float* h_prev, float* h, int64_t D, int64_t G, int64_t norm_style,
                  const float* norm_weight, const float* norm_bias, double eps, bool tanh_activation) {
  if (norm_style != kNoNorm) {
    if (norm_style == kNormPerGate) {
      for (int64_t g = 0; g < G; ++g) normalize(pqr + g * D, D, eps);
    } else {
      normalize(pqr, G * D, eps);
    }
#pragma omp simd
    for (int64_t i = 0; i < G * D; ++i) pqr[i] = norm_bias[i] + pqr[i] * norm_weight[i];
  }
  const float *p = pqr, *q = pqr + D, *r = pqr + 2 * D, *s = pqr + 3 * D;
#pragma omp simd
  for (int64_t k = 0; k < D; ++k) {
    const float input_gate = sigmoid(p[k] + h_prev[k]), forget_gate = sigmoid(q[k] - h_prev[k]);
    h[k] = input_gate * r[k] + forget_gate * h_prev[k];
  }
  if (tanh_activation) {  // (separate loops: a branch around the polynomials keeps the loop scalar)
#pragma omp simd
    for (int64_t k = 0; k < D; ++k) h[k] = 2.0f * sigmoid(2.0f * h[k]) - 1.0f;
  }
  if (G == 4) {  // oLRN: the output gate
#pragma omp simd
    for (int64_t k = 0; k < D; ++k) h[k] = sigmoid(s[k] - h[k]) * h[k];
  }
}

}  // namespace

namespace fairseq_lrn_native {

void lrn_cell_into(const at::Tensor& projected, const at::Tensor& h_prev, const c10::optional<at::Tensor>& norm_weight,
                   const c10::optional<at::Tensor>& norm_bias, int64_t norm_style, double eps, bool tanh_activation,
                   int64_t gates, at::Tensor& h) {
  TORCH_CHECK(gates == 3 || gates == 4, "lrn_cell: gates must be 3 (LRN) or 4 (oLRN), got ", gates);
  TORCH_CHECK(norm_style == kNoNorm || norm_style == kNormPerGate || norm_style == kNormWhole,
              "lrn_cell: norm_style must be 0 (none), 1 (per gate) or 2 (whole), got ", norm_style);
  TORCH_CHECK(projected.device().is_cpu() && projected.scalar_type() == at::kFloat && projected.dim() == 2,
              "lrn_cell: projected must be a (rows, gates * D) float32 CPU tensor");
  TORCH_CHECK(h_prev.device().is_cpu() && h_prev.scalar_type() == at::kFloat && h_prev.dim() == 2,
              "lrn_cell: h_prev must be a (rows, D) float32 CPU tensor");
  const int64_t N = h_prev.size(0), D = h_prev.size(1);
  TORCH_CHECK(projected.size(0) == N && projected.size(1) == gates * D, "lrn_cell: projected is (",
              projected.size(0), ", ", projected.size(1), "), expected (", N, ", ", gates * D, ")");
  TORCH_CHECK(h.scalar_type() == at::kFloat && h.dim() == 2 && h.size(0) == N && h.size(1) == D && h.stride(1) == 1,
              "lrn_cell: the output must be (", N, ", ", D, ") float32 with contiguous rows");
  const float *w = nullptr, *b = nullptr;
  if (norm_style != kNoNorm) {
    TORCH_CHECK(norm_weight.has_value() && norm_bias.has_value(), "lrn_cell: a norm needs norm_weight and norm_bias");
    for (const at::Tensor* t : {&*norm_weight, &*norm_bias})
      TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat && t->numel() == gates * D && t->is_contiguous(),
                  "lrn_cell: norm_weight and norm_bias must be ", gates * D, " contiguous float32 values");
    w = norm_weight->data_ptr<float>();
    b = norm_bias->data_ptr<float>();
  }
  const at::Tensor pqr = projected.contiguous();
  const at::Tensor hp = h_prev.stride(1) == 1 ? h_prev : h_prev.contiguous();
  const float* pqr_data = pqr.data_ptr<float>();
  const float* hp_data = hp.data_ptr<float>();
  const int64_t hp_stride = hp.stride(0), h_stride = h.stride(0);
  float* h_data = h.data_ptr<float>();
  const int64_t row = gates * D;
  at::parallel_for(0, N, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, row)), [&](int64_t first, int64_t last) {
    std::vector<float> buffer(norm_style != kNoNorm ? row : 0);
    for (int64_t n = first; n < last; ++n) {
      // a norm works in place on a copy; without one the row is read as it is
      float* pqr_row = const_cast<float*>(pqr_data) + n * row;
      if (norm_style != kNoNorm) {
        std::copy(pqr_row, pqr_row + row, buffer.begin());
        pqr_row = buffer.data();
      }
      lrn_cell_row(pqr_row, hp_data + n * hp_stride, h_data + n * h_stride, D, gates, norm_style, w, b, eps,
                   tanh_activation);
    }
  });
}

}  // namespace fairseq_lrn_native

namespace {

constexpr int64_t kKeyAlign = 8;  // the transposed keys' source positions are padded to 8 (one register)

#ifdef __AVX2__
// The independent partial sums score_rows and value_rows keep for RR rows: 8 registers of sums
// at most, at least 4 chains of additions.
template <int RR>
constexpr int kParts = RR >= 3 ? 2 : 4 / RR;

template <int RR>
inline __m256 sum_parts(const __m256 (&acc)[kParts<RR>][RR], int r) {
  __m256 total = acc[0][r];
  for (int part = 1; part < kParts<RR>; ++part) total = _mm256_add_ps(total, acc[part][r]);
  return total;
}
#endif

// scores[j][0:Sp] = q[j] . keys_t[:, s] for RR rows q (RR x d): for each block of 8 source
// positions, RR independent register sums over the d features (one load of the keys for all rows).
template <int RR>
void score_rows(const float* q, const float* keys_t, int64_t d, int64_t Sp, float* scores) {
  for (int64_t block = 0; block < Sp; block += kKeyAlign) {
#ifdef __AVX2__
    __m256 acc[kParts<RR>][RR];  // independent sums: the additions' latency is hidden
    for (int part = 0; part < kParts<RR>; ++part)
      for (int r = 0; r < RR; ++r) acc[part][r] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + kParts<RR> <= d; i += kParts<RR>)
      for (int part = 0; part < kParts<RR>; ++part) {
        const __m256 k = _mm256_loadu_ps(keys_t + (i + part) * Sp + block);
        for (int r = 0; r < RR; ++r)
          acc[part][r] = _mm256_add_ps(acc[part][r], _mm256_mul_ps(_mm256_set1_ps(q[r * d + i + part]), k));
      }
    for (; i < d; ++i) {
      const __m256 k = _mm256_loadu_ps(keys_t + i * Sp + block);
      for (int r = 0; r < RR; ++r) acc[0][r] = _mm256_add_ps(acc[0][r], _mm256_mul_ps(_mm256_set1_ps(q[r * d + i]), k));
    }
    for (int r = 0; r < RR; ++r) _mm256_storeu_ps(scores + r * Sp + block, sum_parts<RR>(acc, r));
#else
    for (int r = 0; r < RR; ++r)
      for (int64_t t = 0; t < kKeyAlign; ++t) {
        float sum = 0.0f;
        for (int64_t i = 0; i < d; ++i) sum += q[r * d + i] * keys_t[i * Sp + block + t];
        scores[r * Sp + block + t] = sum;
      }
#endif
  }
}

// out[r][0:d] = sum_s weights[r][s] values[s][0:d] for RR rows (d: the values' features): 8
// features of the RR rows in registers over the S values (one load of the values for all rows).
template <int RR>
void value_rows(const float* weights, int64_t Sp, const float* values, int64_t S, int64_t d, float* out,
                int64_t out_stride) {
  int64_t i = 0;
#ifdef __AVX2__
  for (; i + 8 <= d; i += 8) {
    __m256 acc[kParts<RR>][RR];
    for (int part = 0; part < kParts<RR>; ++part)
      for (int r = 0; r < RR; ++r) acc[part][r] = _mm256_setzero_ps();
    int64_t s = 0;
    for (; s + kParts<RR> <= S; s += kParts<RR>)
      for (int part = 0; part < kParts<RR>; ++part) {
        const __m256 v = _mm256_loadu_ps(values + (s + part) * d + i);
        for (int r = 0; r < RR; ++r)
          acc[part][r] = _mm256_add_ps(acc[part][r], _mm256_mul_ps(_mm256_set1_ps(weights[r * Sp + s + part]), v));
      }
    for (; s < S; ++s) {
      const __m256 v = _mm256_loadu_ps(values + s * d + i);
      for (int r = 0; r < RR; ++r) acc[0][r] = _mm256_add_ps(acc[0][r], _mm256_mul_ps(_mm256_set1_ps(weights[r * Sp + s]), v));
    }
    for (int r = 0; r < RR; ++r) _mm256_storeu_ps(out + r * out_stride + i, sum_parts<RR>(acc, r));
  }
#endif
  for (; i < d; ++i)
    for (int r = 0; r < RR; ++r) {
      float sum = 0.0f;
      for (int64_t s = 0; s < S; ++s) sum += weights[r * Sp + s] * values[s * d + i];
      out[r * out_stride + i] = sum;
    }
}

// Sentence b, head h of beam_attention: its R query rows (d features) against its S keys
// (transposed and padded: d x Sp) and values (S x dv). q: R x d, scores: R x Sp floats of scratch.
void attend_head(const float* query, int64_t query_stride, const float* keys_t, const float* values, const bool* mask,
                 int64_t R, int64_t S, int64_t Sp, int64_t d, int64_t dv, float scaling, float* out,
                 int64_t out_stride, std::vector<float>& q, std::vector<float>& scores) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  // q k^T, scaled as fairseq (q_proj(x) * scaling, then q k^T): 8 scores of up to 4 rows at a time
  for (int64_t j = 0; j < R; ++j) {
    const float* qj = query + j * query_stride;
    float* scaled = q.data() + j * d;
    for (int64_t i = 0; i < d; ++i) scaled[i] = qj[i] * scaling;
  }
  int64_t j0 = 0;
  for (; j0 + 4 <= R; j0 += 4) score_rows<4>(q.data() + j0 * d, keys_t, d, Sp, scores.data() + j0 * Sp);
  switch (R - j0) {
    case 3: score_rows<3>(q.data() + j0 * d, keys_t, d, Sp, scores.data() + j0 * Sp); break;
    case 2: score_rows<2>(q.data() + j0 * d, keys_t, d, Sp, scores.data() + j0 * Sp); break;
    case 1: score_rows<1>(q.data() + j0 * d, keys_t, d, Sp, scores.data() + j0 * Sp); break;
    default: break;
  }
  for (int64_t j = 0; j < R; ++j) {
    float* row = scores.data() + j * Sp;
    float top = kNegInf;
    for (int64_t s = 0; s < S; ++s) {
      if (mask != nullptr && mask[s]) row[s] = kNegInf;
      top = std::max(top, row[s]);
    }
    if (!std::isfinite(top)) {  // every key masked, or a NaN/inf score: NaN, as PyTorch's softmax
      std::fill(row, row + S, std::numeric_limits<float>::quiet_NaN());
      continue;
    }
    float total = 0.0f;
#pragma omp simd reduction(+ : total)
    for (int64_t s = 0; s < S; ++s) {
      const float e = row[s] == kNegInf ? 0.0f : exp_nonpositive(row[s] - top);
      row[s] = e;
      total += e;
    }
    const float inverse = 1.0f / total;
    for (int64_t s = 0; s < S; ++s) row[s] *= inverse;
  }
  // the weighted sums of the values, up to 4 rows at a time
  j0 = 0;
  for (; j0 + 4 <= R; j0 += 4) value_rows<4>(scores.data() + j0 * Sp, Sp, values, S, dv, out + j0 * out_stride, out_stride);
  switch (R - j0) {
    case 3: value_rows<3>(scores.data() + j0 * Sp, Sp, values, S, dv, out + j0 * out_stride, out_stride); break;
    case 2: value_rows<2>(scores.data() + j0 * Sp, Sp, values, S, dv, out + j0 * out_stride, out_stride); break;
    case 1: value_rows<1>(scores.data() + j0 * Sp, Sp, values, S, dv, out + j0 * out_stride, out_stride); break;
    default: break;
  }
}

}  // namespace

namespace fairseq_lrn_native {

at::Tensor beam_attention(const at::Tensor& query, const at::Tensor& keys_t, const at::Tensor& values,
                          const c10::optional<at::Tensor>& padding_mask, double scaling) {
  TORCH_CHECK(query.device().is_cpu() && query.scalar_type() == at::kFloat && query.dim() == 2,
              "beam_attention: query must be a (rows, heads * head_dim) float32 CPU tensor");
  TORCH_CHECK(values.device().is_cpu() && values.scalar_type() == at::kFloat && values.dim() == 4,
              "beam_attention: values must be a float32 (sentences, heads, source length, value dim) CPU tensor");
  const int64_t B = values.size(0), H = values.size(1), S = values.size(2), dv = values.size(3), N = query.size(0);
  TORCH_CHECK(H > 0 && query.size(1) % H == 0, "beam_attention: query has ", query.size(1),
              " features, not a multiple of ", H, " heads");
  const int64_t d = query.size(1) / H;
  const int64_t Sp = (S + kKeyAlign - 1) / kKeyAlign * kKeyAlign;
  TORCH_CHECK(keys_t.device().is_cpu() && keys_t.scalar_type() == at::kFloat && keys_t.dim() == 4 &&
                  keys_t.size(0) == B && keys_t.size(1) == H &&
                  keys_t.size(2) == d && keys_t.size(3) == Sp,
              "beam_attention: keys_t must be float32 (", B, ", ", H, ", ", d, ", ", Sp,
              "): the keys transposed, source positions padded to a multiple of ", kKeyAlign);
  TORCH_CHECK(B > 0 && N % B == 0, "beam_attention: ", N, " query rows are not a multiple of ", B, " sentences");
  const bool* mask = nullptr;
  at::Tensor mask_c;
  if (padding_mask.has_value() && padding_mask->defined()) {
    TORCH_CHECK(padding_mask->device().is_cpu() && padding_mask->scalar_type() == at::kBool &&
                    padding_mask->dim() == 2 && padding_mask->size(0) == B && padding_mask->size(1) == S,
                "beam_attention: padding_mask must be a bool (", B, ", ", S, ") CPU tensor");
    mask_c = padding_mask->contiguous();
    mask = mask_c.data_ptr<bool>();
  }
  const at::Tensor q = query.contiguous(), k = keys_t.contiguous(), v = values.contiguous();
  at::Tensor out = at::empty({N, H * dv}, query.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t R = N / B, C = H * d, Cv = H * dv;
  const float *q_data = q.data_ptr<float>(), *k_data = k.data_ptr<float>(), *v_data = v.data_ptr<float>();
  float* out_data = out.data_ptr<float>();
  const float scale = static_cast<float>(scaling);
  const int64_t work = std::max<int64_t>(1, R * S * (d + dv));
  at::parallel_for(0, B * H, std::max<int64_t>(1, (int64_t{1} << 16) / work), [&](int64_t first, int64_t last) {
    std::vector<float> q(R * d), scores(R * Sp);
    for (int64_t task = first; task < last; ++task) {
      const int64_t b = task / H, h = task % H;
      attend_head(q_data + b * R * C + h * d, C, k_data + task * Sp * d, v_data + task * S * dv,
                  mask == nullptr ? nullptr : mask + b * S, R, S, Sp, d, dv, scale, out_data + b * R * Cv + h * dv, Cv,
                  q, scores);
    }
  });
  return out;
}

}  // namespace fairseq_lrn_native

namespace {

at::Tensor lrn_cell(const at::Tensor& projected, const at::Tensor& h_prev, const c10::optional<at::Tensor>& norm_weight,
                    const c10::optional<at::Tensor>& norm_bias, int64_t norm_style, double eps, bool tanh_activation,
                    int64_t gates) {
  // lrn_cell_into checks every argument; this one only needs h_prev's two sizes first
  TORCH_CHECK(h_prev.dim() == 2, "lrn_cell: h_prev must be a (rows, D) float32 CPU tensor, got ", h_prev.dim(),
              " dimensions");
  at::Tensor h = at::empty({h_prev.size(0), h_prev.size(1)}, h_prev.options().memory_format(at::MemoryFormat::Contiguous));
  fairseq_lrn_native::lrn_cell_into(projected, h_prev, norm_weight, norm_bias, norm_style, eps, tanh_activation, gates, h);
  return h;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(fairseq_lrn, m) {
  m.def("lrn_cell(Tensor projected, Tensor h_prev, Tensor? norm_weight, Tensor? norm_bias, int norm_style, "
        "float eps, bool tanh_activation, int gates) -> Tensor");
  m.def("beam_attention(Tensor query, Tensor keys_t, Tensor values, Tensor? padding_mask, float scaling) -> Tensor");
}

TORCH_LIBRARY_IMPL(fairseq_lrn, CPU, m) {
  m.impl("lrn_cell", &lrn_cell);
  m.impl("beam_attention", &fairseq_lrn_native::beam_attention);
}
