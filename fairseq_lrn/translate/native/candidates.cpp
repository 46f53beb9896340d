// The candidate selection of one beam-search step, fused: log-softmax, fairseq's masks, the
// cumulative scores and the top k over each sentence's rows, in one pass over the logits.
//
// PyTorch does it in five passes over (N, V) floats (log_softmax, the masks, the addition of the
// scores, a top-k over (B, R * V)), and its CPU top-k sorts a partition of each row: about 5 ns per
// score at beam 5 on this project's benchmark machine. Here each row is read twice, vectorized by
// the compiler: the maximum of each block of 32 logits, then the sum of exponentials. The k-th
// largest block maximum is a lower bound of the row's k-th best logit, so only the few blocks that
// reach it are read a third time; the survivors of the R rows of a sentence are then merged. The semantics and the PyTorch reference it is tested against:
// select_candidates_reference in fairseq_lrn/translate/candidates.py.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <tuple>
#include <vector>

#include "vector_math.h"

namespace {

using fairseq_lrn_native::exp_nonpositive;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Candidate {
  float score;
  int64_t index;  // row-in-sentence * V + token
};

// Descending score, then ascending index (torch.topk leaves the order of ties unspecified).
inline bool better(const Candidate& a, const Candidate& b) {
  return a.score > b.score || (a.score == b.score && a.index < b.index);
}

constexpr int64_t kBlock = 32;

// The maximum of x[begin:end].
inline float max_of(const float* x, int64_t begin, int64_t end) {
  float m = kNegInf;
#pragma omp simd reduction(max : m)
  for (int64_t t = begin; t < end; ++t) m = x[t] > m ? x[t] : m;
  return m;
}

// The candidates of one row: at most `k`, appended to `out` with their final scores. `blocks`,
// `top`: scratch space.
void row_candidates(const float* x, int64_t V, int64_t k, float score, int64_t row_in_sentence,
                    int64_t pad, int64_t unk, float unkpen, int64_t eos, bool forbid_eos,
                    bool only_eos, std::vector<float>& blocks, std::vector<Candidate>& top,
                    std::vector<Candidate>& out) {
  // the maximum of each block of 32 logits, and of the row
  const int64_t n_blocks = (V + kBlock - 1) / kBlock;
  blocks.resize(2 * n_blocks);  // the maxima, then a copy that nth_element reorders
  for (int64_t i = 0; i < n_blocks; ++i) blocks[i] = max_of(x, i * kBlock, std::min(V, (i + 1) * kBlock));
  const float m = max_of(blocks.data(), 0, n_blocks);
  // 32 partial sums (a few vectors of independent additions), added in double at the end: as
  // accurate as PyTorch's log-softmax here, where one float per vector lane was 4x less accurate
  constexpr int kParts = 32;
  float part[kParts] = {0.0f};
  int64_t t = 0;
  for (; t + kParts <= V; t += kParts) {
#pragma omp simd
    for (int j = 0; j < kParts; ++j) part[j] += exp_nonpositive(x[t + j] - m);
  }
  double sum = 0.0;
  for (; t < V; ++t) sum += exp_nonpositive(x[t] - m);
  for (int j = 0; j < kParts; ++j) sum += part[j];
  const float log_sum = static_cast<float>(std::log(sum));
  auto log_prob = [&](int64_t t) { return (x[t] - m) - log_sum; };
  auto masked = [&](int64_t t) {
    return t == pad || (t == eos && forbid_eos) || (t != eos && only_eos);
  };
  auto special = [&](int64_t t) { return t == pad || t == unk || t == eos; };

  const int64_t kk = std::min(k, V);
  const size_t first = out.size();
  if (only_eos) {  // every other token is masked: -inf candidates, lowest ids first, as fillers
    for (int64_t t = 0; t < V && static_cast<int64_t>(out.size() - first) < kk; ++t)
      if (!special(t)) out.push_back({kNegInf, row_in_sentence * V + t});
  } else {
    // The kk best other tokens by logit (the same order as by log-probability). The kk-th largest
    // block maximum, the special columns left out, is a lower bound of the kk-th best logit (kk
    // blocks reach it), so only the few blocks that reach it are read again.
    for (int64_t s : {pad, unk, eos}) {
      if (s < 0) continue;
      const int64_t i = s / kBlock;
      float bm = kNegInf;
      for (int64_t t = i * kBlock; t < std::min(V, (i + 1) * kBlock); ++t)
        if (!special(t)) bm = x[t] > bm ? x[t] : bm;
      blocks[i] = bm;
    }
    float bound = kNegInf;
    if (n_blocks >= kk) {
      auto copy = blocks.begin() + n_blocks;
      std::copy(blocks.begin(), copy, copy);
      std::nth_element(copy, copy + (kk - 1), blocks.end(), std::greater<float>());
      bound = copy[kk - 1];
    }
    top.clear();
    for (int64_t i = 0; i < n_blocks; ++i) {
      if (!(blocks[i] >= bound)) continue;
      for (int64_t t = i * kBlock; t < std::min(V, (i + 1) * kBlock); ++t)
        if (x[t] >= bound && !special(t)) top.push_back({x[t], t});  // (logit, token)
    }
    const int64_t n_top = std::min<int64_t>(kk, top.size());
    std::partial_sort(top.begin(), top.begin() + n_top, top.end(), better);  // by logit, then token
    for (int64_t j = 0; j < n_top; ++j)
      out.push_back({log_prob(top[j].index) + score, row_in_sentence * V + top[j].index});
  }
  // the special columns, with fairseq's masks and the unknown-word penalty (-1: not in the vocabulary)
  const int64_t specials[3] = {pad, unk, eos};
  for (int i = 0; i < 3; ++i) {
    const int64_t t = specials[i];
    if (t < 0 || (i > 0 && t == specials[0]) || (i > 1 && t == specials[1])) continue;
    float lp = masked(t) ? kNegInf : log_prob(t);
    if (t == unk && unkpen != 0.0f) lp -= unkpen;
    out.push_back({lp + score, row_in_sentence * V + t});
  }
  std::sort(out.begin() + first, out.end(), better);
  out.resize(first + std::min<size_t>(out.size() - first, kk));
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> select_candidates(
    const at::Tensor& logits, const c10::optional<at::Tensor>& scores, int64_t sentences, int64_t k,
    int64_t pad, int64_t unk, double unkpen, int64_t eos, bool forbid_eos,
    const c10::optional<at::Tensor>& only_eos) {
  TORCH_CHECK(logits.dim() == 2 && logits.scalar_type() == at::kFloat, "logits must be (N, V) float32");
  const auto x = logits.contiguous();
  const int64_t N = x.size(0), V = x.size(1);
  TORCH_CHECK(sentences > 0 && N % sentences == 0, "rows ", N, " are not a multiple of sentences ", sentences);
  const int64_t R = N / sentences;
  TORCH_CHECK(k >= 1 && k <= R * V, "k must be in [1, rows per sentence * V]");
  at::Tensor s, e;
  if (scores.has_value()) {
    s = scores->contiguous();
    TORCH_CHECK(s.scalar_type() == at::kFloat && s.numel() == N, "scores must be (N,) float32");
  }
  if (only_eos.has_value()) {
    e = only_eos->contiguous();
    TORCH_CHECK(e.scalar_type() == at::kBool && e.numel() == N, "only_eos must be (N,) bool");
  }
  auto cand_scores = at::empty({sentences, k}, x.options());
  auto cand_index = at::empty({sentences, k}, x.options().dtype(at::kLong));
  const float* xp = x.data_ptr<float>();
  const float* sp = s.defined() ? s.data_ptr<float>() : nullptr;
  const bool* ep = e.defined() ? e.data_ptr<bool>() : nullptr;
  float* csp = cand_scores.data_ptr<float>();
  int64_t* cip = cand_index.data_ptr<int64_t>();
  const float penalty = static_cast<float>(unkpen);

  at::parallel_for(0, sentences, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> blocks;
    std::vector<Candidate> top;
    std::vector<Candidate> merged;
    for (int64_t b = begin; b < end; ++b) {
      merged.clear();
      for (int64_t r = 0; r < R; ++r) {
        const int64_t row = b * R + r;
        row_candidates(xp + row * V, V, k, sp ? sp[row] : 0.0f, r, pad, unk, penalty, eos, forbid_eos,
                       ep ? ep[row] : false, blocks, top, merged);
      }
      std::sort(merged.begin(), merged.end(), better);
      for (int64_t j = 0; j < k; ++j) {
        csp[b * k + j] = merged[j].score;
        cip[b * k + j] = merged[j].index;
      }
    }
  });
  return {cand_scores, cand_index};
}

TORCH_LIBRARY_FRAGMENT(fairseq_lrn, m) {
  m.def("select_candidates(Tensor logits, Tensor? scores, int sentences, int k, int pad, int unk, "
        "float unkpen, int eos, bool forbid_eos, Tensor? only_eos) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(fairseq_lrn, CPU, m) { m.impl("select_candidates", &select_candidates); }
