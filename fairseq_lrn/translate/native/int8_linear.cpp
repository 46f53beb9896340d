// An int8 linear layer for the few rows of a decoder step: y = x W^T + b with W stored as int8
// (one scale per output feature, symmetric, -64..64) and each row of x quantized on the fly to
// 7 bits with its own range: q = round(x / s) + z in 0..127, s = (max(x, 0) - min(x, 0)) / 127,
// z = round(-min(x, 0) / s) (as fbgemm's activations with reduce_range, but per row rather than
// per tensor). The products are summed exactly in int32: y = s * w_scale * (sum q w - z sum w) + b.
// A row with an inf or a NaN gives NaN outputs, as a float product would.
//
// The weights are packed as fbgemm packs them for AVX2: for each group of 8 output features and
// each quad of 4 input features, 32 bytes (feature-major: byte 4 c + i is W[8 g + c][4 t + i]), so
// that one 4-byte broadcast of a row's q against one 32-byte load gives 8 outputs' partial sums
// in the 8 int32 lanes of a register, with no horizontal sums at the end. maddubs multiplies the
// unsigned q by the signed w and adds pairs into 16 bits (at most 2 * 127 * 64); the pair sums of
// two quads are added in 16 bits too (at most 4 * 127 * 64 = 32,512: never wrapped, which is why
// the weights stop at 64), then madd with ones adds pairs into the int32 lanes: 3 multiplications
// per 64 products where widening each quad takes 4 (1.2-1.45x the products per second at 32-160
// rows on the benchmark machine, AMD EPYC Zen 3). Tiles of 3 rows x 16 outputs (6 accumulators)
// run over a block of the weights small enough to stay in cache while every row reads it; each
// tile scales its int32 sums into floats in registers, 8 outputs at a time (with K = 256 the
// scalar loop over them took ~10%: 1.07-1.13x at 5-160 rows x 8,088). Without AVX2 a plain loop
// computes the same integers.
//
// The semantics and the PyTorch reference it is tested against: int8_linear_reference in
// fairseq_lrn/translate/int8_linear.py.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "native_ops.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace {

constexpr int64_t kQuad = 4;           // the input features of one 4-byte broadcast
constexpr int64_t kDepthAlign = 8;     // the input features are padded to pairs of quads
constexpr int64_t kColumnAlign = 8;    // the output features are padded to groups of 8 (one register)
constexpr int64_t kBlockBytes = 16384; // the packed weights read by every row before the next block
constexpr int64_t kPrefetchBytes = 8192; // how far ahead of its loads a tile fetches its weights

// Row `x[0:K]` quantized to q[0:Kp] (7 bits, zero padded, see the top); returns its scale and
// zero point. An all-zero row: scale 0. A row with an inf or a NaN: scale NaN.
struct RowQuantization {
  float scale;
  int32_t zero_point;
};

RowQuantization quantize_row(const float* x, int64_t K, int64_t Kp, uint8_t* q) {
  float lo = 0.0f, hi = 0.0f, poison = 0.0f;  // poison: NaN if x has an inf or a NaN
  int64_t k = 0;
#ifdef __AVX2__
  __m256 lo8 = _mm256_setzero_ps(), hi8 = _mm256_setzero_ps(), poison8 = _mm256_setzero_ps();
  const __m256 zero8 = _mm256_setzero_ps();
  for (; k + 8 <= K; k += 8) {
    const __m256 v = _mm256_loadu_ps(x + k);
    lo8 = _mm256_min_ps(lo8, v);
    hi8 = _mm256_max_ps(hi8, v);
    poison8 = _mm256_add_ps(poison8, _mm256_mul_ps(v, zero8));
  }
  float lanes[3][8];
  _mm256_storeu_ps(lanes[0], lo8);
  _mm256_storeu_ps(lanes[1], hi8);
  _mm256_storeu_ps(lanes[2], poison8);
  for (int i = 0; i < 8; ++i) {
    lo = std::min(lo, lanes[0][i]);
    hi = std::max(hi, lanes[1][i]);
    poison += lanes[2][i];
  }
#endif
  for (; k < K; ++k) {
    lo = std::min(lo, x[k]);
    hi = std::max(hi, x[k]);
    poison += x[k] * 0.0f;
  }
  std::fill(q + K, q + Kp, uint8_t{0});
  if (!(hi - lo > 0.0f) || poison != 0.0f) {
    std::fill(q, q + K, uint8_t{0});
    return {poison != 0.0f ? std::numeric_limits<float>::quiet_NaN() : 0.0f, 0};
  }
  const float inverse = 127.0f / (hi - lo);
  const float zero_point = std::nearbyint(-lo * inverse);
  k = 0;
#ifdef __AVX2__
  const __m256 inverse8 = _mm256_set1_ps(inverse), zero_point8 = _mm256_set1_ps(zero_point);
  const __m256 top8 = _mm256_set1_ps(127.0f);
  for (; k + 32 <= K; k += 32) {
    __m256i quarters[4];
    for (int i = 0; i < 4; ++i) {
      __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + k + 8 * i), inverse8),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      v = _mm256_min_ps(top8, _mm256_max_ps(zero8, _mm256_add_ps(v, zero_point8)));
      quarters[i] = _mm256_cvtps_epi32(v);
    }
    // packs work within 128-bit halves: the permute puts the 32 bytes back in order
    const __m256i words = _mm256_packs_epi32(quarters[0], quarters[1]);
    const __m256i words2 = _mm256_packs_epi32(quarters[2], quarters[3]);
    const __m256i bytes = _mm256_packus_epi16(words, words2);
    const __m256i ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k), ordered);
  }
#endif
  for (; k < K; ++k) {
    const float v = std::nearbyint(x[k] * inverse) + zero_point;
    q[k] = static_cast<uint8_t>(std::min(127.0f, std::max(0.0f, v)));
  }
  return {(hi - lo) / 127.0f, static_cast<int32_t>(zero_point)};
}

struct Problem {
  const uint8_t* q;              // (M, Kp) the rows quantized
  const RowQuantization* rows;   // (M) their scales and zero points
  const int8_t* w;               // (Np / 8, Kp / 4, 8, 4) packed
  const int32_t* w_sum;          // (Np) sum of each output feature's weights
  const float* w_scale;          // (Np)
  const float* bias;             // (N) or null
  int64_t Kp, N;
  float* y;                      // (M, N)
};

// Whether the group of 8 output features starting at j is whole (not cut by N): the AVX2 tile
// scales such a group's sums to floats in registers, the plain loop the others.
inline bool whole_group(const Problem& p, int64_t j) { return j + kColumnAlign <= p.N; }

// Output features [8 g, 8 (g + V)) of rows [m, m + R): the int32 dot products, then
// y = (acc - zero point * w_sum) * (row scale * feature scale) + bias. Writes only features < N.
// kFetchAhead: prefetch the weights kPrefetchBytes ahead of the loads (the tile that reads them first).
// Always inlined into row_block: compiled out of line, GCC 12 stored the accumulators to the stack at
// every step of the loop (0.7x in a probe).
template <int R, int V, bool kFetchAhead>
__attribute__((always_inline)) inline void tile(const Problem& p, int64_t m, int64_t g) {
  const int64_t quads = p.Kp / kQuad;  // even
  int32_t sums[R][V][kColumnAlign];
#ifdef __AVX2__
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = _mm256_setzero_si256();
  const int8_t* wg = p.w + g * quads * 32;
  const uint8_t* qm = p.q + m * p.Kp;
  for (int64_t t = 0; t < quads; t += 2) {  // two quads: 8 input features
    __m256i wa[V], wb[V];
    for (int v = 0; v < V; ++v) {
      if (kFetchAhead)
        _mm_prefetch(reinterpret_cast<const char*>(wg + (v * quads + t) * 32 + kPrefetchBytes), _MM_HINT_T0);
      wa[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + (v * quads + t) * 32));
      wb[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + (v * quads + t + 1) * 32));
    }
    for (int r = 0; r < R; ++r) {
      // the row's 4 bytes at t (and at t + 1) in every lane (a broadcast load: one instruction)
      const __m256i xa = _mm256_castps_si256(
          _mm256_broadcast_ss(reinterpret_cast<const float*>(qm + r * p.Kp + t * kQuad)));
      const __m256i xb = _mm256_castps_si256(
          _mm256_broadcast_ss(reinterpret_cast<const float*>(qm + r * p.Kp + (t + 1) * kQuad)));
      // |4 products| <= 4 * 127 * 64 = 32512: the two quads' pair sums add exactly in 16 bits
      for (int v = 0; v < V; ++v) {
        const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(xa, wa[v]), _mm256_maddubs_epi16(xb, wb[v]));
        acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(pairs, ones));
      }
    }
  }
  // a whole group of 8 outputs: the epilogue below in registers (the same operations, in the same
  // order, so the same floats); a group cut by N: through `sums`
  for (int v = 0; v < V; ++v) {
    const int64_t j = (g + v) * kColumnAlign;
    if (!whole_group(p, j)) {
      for (int r = 0; r < R; ++r) _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums[r][v]), acc[r][v]);
      continue;
    }
    const __m256i w_sum = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.w_sum + j));
    const __m256 w_scale = _mm256_loadu_ps(p.w_scale + j);
    const __m256 bias = p.bias != nullptr ? _mm256_loadu_ps(p.bias + j) : _mm256_setzero_ps();
    for (int r = 0; r < R; ++r) {
      const RowQuantization& row = p.rows[m + r];
      const __m256i exact = _mm256_sub_epi32(acc[r][v], _mm256_mullo_epi32(_mm256_set1_epi32(row.zero_point), w_sum));
      __m256 value = _mm256_mul_ps(_mm256_cvtepi32_ps(exact), _mm256_mul_ps(_mm256_set1_ps(row.scale), w_scale));
      if (p.bias != nullptr) value = _mm256_add_ps(value, bias);
      _mm256_storeu_ps(p.y + (m + r) * p.N + j, value);
    }
  }
#else
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v)
      for (int c = 0; c < kColumnAlign; ++c) {
        const int8_t* wc = p.w + (g + v) * quads * 32 + c * kQuad;
        const uint8_t* qr = p.q + (m + r) * p.Kp;
        int32_t s = 0;
        for (int64_t t = 0; t < quads; ++t)
          for (int i = 0; i < kQuad; ++i)
            s += static_cast<int32_t>(qr[t * kQuad + i]) * static_cast<int32_t>(wc[t * 32 + i]);
        sums[r][v][c] = s;
      }
#endif
  for (int v = 0; v < V; ++v) {
    const int64_t j = (g + v) * kColumnAlign, columns = std::min<int64_t>(kColumnAlign, p.N - j);
#ifdef __AVX2__
    if (whole_group(p, j)) continue;  // written above
#endif
    for (int r = 0; r < R; ++r) {
      const RowQuantization& row = p.rows[m + r];
      float* yr = p.y + (m + r) * p.N + j;
      for (int64_t c = 0; c < columns; ++c) {
        const int32_t exact = sums[r][v][c] - row.zero_point * p.w_sum[j + c];
        const float value = static_cast<float>(exact) * (row.scale * p.w_scale[j + c]);
        yr[c] = p.bias != nullptr ? value + p.bias[j + c] : value;
      }
    }
  }
}

// Rows [m, m + R) against the output groups [g_begin, g_end), two groups at a time.
template <int R, bool kFetchAhead>
void row_block(const Problem& p, int64_t m, int64_t g_begin, int64_t g_end) {
  int64_t g = g_begin;
  for (; g + 2 <= g_end; g += 2) tile<R, 2, kFetchAhead>(p, m, g);
  if (g < g_end) tile<R, 1, kFetchAhead>(p, m, g);
}

// All rows [0, M) against the output groups [g_begin, g_end): tiles of 3 rows (6 accumulators),
// then the 1-2 rows left. Tiles of 6 rows (12 accumulators, 2 weights, the broadcast row and the
// ones: all 16 AVX2 registers) read the weights half as often but ran at 0.7x the multiply-adds
// per second of 3-row tiles in a probe of the inner loop with its data in cache, on the benchmark
// machine (AMD EPYC, Zen 3); in this kernel 3-row tiles were 1.0-1.2x faster.
// The first tile of rows reads the block's weights from L3 or memory, the others from L1: it
// prefetches ahead (at 5 rows x 8,088 x 256 with the weights out of cache, as they are at batch
// 1: 1.23-1.29x in a probe on the benchmark machine, 2026-12-07; prefetching in every tile cost
// 3-12% at 160 rows).
void all_rows(const Problem& p, int64_t M, int64_t g_begin, int64_t g_end) {
  // 5 rows (one beam-5 sentence, batch 1): one tile, one pass over the weights, where 3 + 2 rows
  // read them from L3 and then again from L1 (the layers call at 5 rows 0.97-1.20x, median 1.12x,
  // in four alternated rounds; batch 1 end to end 1.02-1.19x; 2026-12-07). One group of 8 outputs
  // at a time: 5 accumulators, where two groups need 10 and, with their 4 weight registers, more
  // than AVX2's 16 (5 x 8,088 x 256 with the weights out of cache: 1.21-1.28x; in cache 0.95-1.08x).
  if (M == 5) {
    for (int64_t g = g_begin; g < g_end; ++g) tile<5, 1, true>(p, 0, g);
    return;
  }
  int64_t m = 0;
  if (M >= 3) {
    row_block<3, true>(p, 0, g_begin, g_end);
    m = 3;
  }
  for (; m + 3 <= M; m += 3) row_block<3, false>(p, m, g_begin, g_end);
  switch (M - m) {
    case 2: m == 0 ? row_block<2, true>(p, m, g_begin, g_end) : row_block<2, false>(p, m, g_begin, g_end); break;
    case 1: m == 0 ? row_block<1, true>(p, m, g_begin, g_end) : row_block<1, false>(p, m, g_begin, g_end); break;
    default: break;
  }
}

}  // namespace

namespace fairseq_lrn_native {

void int8_linear_into(const float* x, int64_t M, int64_t K, const at::Tensor& weight, const at::Tensor& weight_scale,
                      const at::Tensor& weight_sum, const c10::optional<at::Tensor>& bias, int64_t out_features,
                      float* y) {
  TORCH_CHECK(weight.dim() == 4 && weight.size(2) == kColumnAlign && weight.size(3) == kQuad &&
              weight.size(1) % (kDepthAlign / kQuad) == 0 &&
              weight.scalar_type() == at::kChar && weight.is_contiguous(),
              "int8_linear: weight must be a contiguous int8 (groups, quads (even), 8, 4) tensor (int8_linear.quantize_weight)");
  const int64_t Np = weight.size(0) * kColumnAlign, Kp = weight.size(1) * kQuad;
  const int64_t N = out_features;
  TORCH_CHECK(N <= Np && Np - N < kColumnAlign,
              "int8_linear: weight (", Np, ", ", Kp, ") is not padded for ", N, " output features");
  TORCH_CHECK(Kp == (K + kDepthAlign - 1) / kDepthAlign * kDepthAlign, "int8_linear: input has ", K,
              " features, the weight's padded depth is ", Kp);
  TORCH_CHECK(weight_scale.scalar_type() == at::kFloat && weight_scale.numel() == Np && weight_scale.is_contiguous(),
              "int8_linear: weight_scale must be ", Np, " contiguous float32 values");
  TORCH_CHECK(weight_sum.scalar_type() == at::kInt && weight_sum.numel() == Np && weight_sum.is_contiguous(),
              "int8_linear: weight_sum must be ", Np, " contiguous int32 values");
  const float* b = nullptr;
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->scalar_type() == at::kFloat && bias->numel() == N && bias->is_contiguous(),
                "int8_linear: bias must be ", N, " contiguous float32 values");
    b = bias->data_ptr<float>();
  }
  if (M == 0 || N == 0) return;

  std::vector<uint8_t> q(M * Kp);
  std::vector<RowQuantization> rows(M);
  for (int64_t m = 0; m < M; ++m) rows[m] = quantize_row(x + m * K, K, Kp, q.data() + m * Kp);

  const int8_t* w = weight.data_ptr<int8_t>();
  const float* ws = weight_scale.data_ptr<float>();
  const int32_t* wsum = weight_sum.data_ptr<int32_t>();
  const int64_t groups = Np / kColumnAlign;
  const int64_t block = std::max<int64_t>(2, kBlockBytes / (Kp * kColumnAlign) / 2 * 2);  // groups, even
  const int64_t blocks = (groups + block - 1) / block;
  // each task at least ~1M multiply-adds: small products stay on the calling thread
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(1, M * block * kColumnAlign * Kp));
  const Problem problem{q.data(), rows.data(), w, wsum, ws, b, Kp, N, y};
  at::parallel_for(0, blocks, grain, [&](int64_t first, int64_t last) {
    for (int64_t blk = first; blk < last; ++blk)
      all_rows(problem, M, blk * block, std::min(groups, (blk + 1) * block));
  });
}

at::Tensor int8_linear(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& weight_scale,
                       const at::Tensor& weight_sum, const c10::optional<at::Tensor>& bias, int64_t out_features) {
  TORCH_CHECK(input.device().is_cpu() && input.scalar_type() == at::kFloat,
              "int8_linear: input must be a float32 CPU tensor, got ", input.scalar_type(), " on ", input.device());
  const int64_t K = input.size(-1);
  const at::Tensor x = input.reshape({-1, K}).contiguous();
  std::vector<int64_t> out_shape(input.sizes().begin(), input.sizes().end());
  out_shape.back() = out_features;
  at::Tensor out = at::empty({x.size(0), out_features}, input.options());
  int8_linear_into(x.data_ptr<float>(), x.size(0), K, weight, weight_scale, weight_sum, bias, out_features,
                   out.data_ptr<float>());
  return out.view(out_shape);
}

}  // namespace fairseq_lrn_native

TORCH_LIBRARY_FRAGMENT(fairseq_lrn, m) {
  m.def("int8_linear(Tensor input, Tensor weight, Tensor weight_scale, Tensor weight_sum, Tensor? bias, int out_features) -> Tensor");
}

TORCH_LIBRARY_IMPL(fairseq_lrn, CPU, m) {
  m.impl("int8_linear", fairseq_lrn_native::int8_linear);
}
