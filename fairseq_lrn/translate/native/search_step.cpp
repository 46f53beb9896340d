// The bookkeeping of one beam-search step after its candidates are chosen, in one call: which
// candidates end their hypothesis (kept among the sentence's finished ones), which sentences are
// done, and the rows that go on (fairseq's active_hypos), with their tokens and scores.
//
// PyTorch does it in about thirty small tensor operations a step (about 260 us at beam 5 and batch
// 1 on this project's benchmark machine, 15% of the time); here it is one loop over the sentences.
// The semantics and the PyTorch reference it is tested against: advance_reference in
// fairseq_lrn/translate/search.py.

#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <vector>

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

}  // namespace

std::tuple<int64_t, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
advance_search(const at::Tensor& cand_scores, const at::Tensor& cand_index, const at::Tensor& tokens,
               const at::Tensor& ids, const at::Tensor& max_len, at::Tensor fin_tokens, at::Tensor fin_lengths,
               at::Tensor fin_scores, const at::Tensor& fin_count, const at::Tensor& cands_to_ignore,
               const at::Tensor& finished, int64_t V, int64_t beam, int64_t eos, int64_t step, bool last_step,
               bool check_max_len, double lenpen, bool drop_finished, const c10::optional<at::Tensor>& vocabulary) {
  const int64_t n = cand_scores.size(0), C = cand_scores.size(1);
  TORCH_CHECK(C >= beam, "fewer candidates than beams");
  TORCH_CHECK(cand_scores.is_contiguous() && cand_index.is_contiguous() && tokens.is_contiguous() &&
                  fin_tokens.is_contiguous() && fin_lengths.is_contiguous() && fin_scores.is_contiguous(),
              "advance_search takes contiguous tensors");
  const int64_t width = tokens.size(1), fin_width = fin_tokens.size(2);
  TORCH_CHECK(step + 2 <= width && step <= fin_width, "the token buffers are too short for step ", step);
  const float* cs = cand_scores.data_ptr<float>();
  const int64_t* ci = cand_index.data_ptr<int64_t>();
  const int64_t* tok = tokens.data_ptr<int64_t>();
  const auto ids_a = ids.accessor<int64_t, 1>();
  const auto max_len_a = max_len.accessor<int64_t, 1>();
  int64_t* ft = fin_tokens.data_ptr<int64_t>();
  int64_t* fl = fin_lengths.data_ptr<int64_t>();
  float* fs = fin_scores.data_ptr<float>();
  const int64_t slots = fin_scores.size(1);  // beam + 1
  auto count = fin_count.clone();
  auto ignore = cands_to_ignore.clone();
  auto done_flags = finished.clone();
  int64_t* count_p = count.data_ptr<int64_t>();
  bool* ignore_p = ignore.data_ptr<bool>();
  bool* done_p = done_flags.data_ptr<bool>();
  const float length_norm = static_cast<float>(std::pow(static_cast<double>(step + 1), lenpen));

  // hypotheses that end here: kept (in candidate order) while the sentence has fewer than `beam`
  int64_t done = 0;
  for (int64_t i = 0; i < n; ++i) {
    bool ending_any = false;
    for (int64_t j = 0; j < beam; ++j) {
      const int64_t c = i * C + j;
      const bool ends = ci[c] % V == eos && cs[c] != kNegInf && !ignore_p[i * beam + j] && !done_p[i];
      if (!ends) continue;
      ending_any = true;
      const int64_t slot = count_p[i];
      if (slot >= beam) continue;
      const int64_t b = ids_a[i], row = i * beam + ci[c] / V;
      int64_t* dest = ft + (b * slots + slot) * fin_width;
      for (int64_t t = 0; t < step; ++t) dest[t] = tok[row * width + 1 + t];
      fl[b * slots + slot] = step;
      fs[b * slots + slot] = cs[c] / length_norm;
      ++count_p[i];
    }
    if (ending_any && count_p[i] == beam) done_p[i] = true;
    if (check_max_len && max_len_a[i] <= step) done_p[i] = true;
    done += done_p[i];
  }
  if (last_step) done = n;
  auto empty = at::empty({0}, tokens.options());
  if (done == n) return {done, empty, empty, empty, empty, empty, empty, empty};

  // the sentences that go on, and for each the `beam` best candidates that do not end here
  std::vector<int64_t> keep;
  keep.reserve(n);
  const bool compact = drop_finished && done > 0;
  for (int64_t i = 0; i < n; ++i)
    if (!compact || !done_p[i]) keep.push_back(i);
  const int64_t m = keep.size();
  auto keep_t = at::empty({m}, ids.options());
  auto new_tokens = at::empty({m * beam, width}, tokens.options());
  auto rows = at::empty({m * beam}, tokens.options());
  auto scores = at::empty({m * beam}, cand_scores.options());
  auto new_count = at::empty({m}, fin_count.options());
  auto new_ignore = at::empty({m, beam}, cands_to_ignore.options());
  auto new_done = at::zeros({m}, finished.options());
  int64_t* keep_p = keep_t.data_ptr<int64_t>();
  int64_t* nt = new_tokens.data_ptr<int64_t>();
  int64_t* rows_p = rows.data_ptr<int64_t>();
  float* scores_p = scores.data_ptr<float>();
  int64_t* new_count_p = new_count.data_ptr<int64_t>();
  bool* new_ignore_p = new_ignore.data_ptr<bool>();
  bool* new_done_p = new_done.data_ptr<bool>();
  TORCH_CHECK(!vocabulary.has_value() || vocabulary->is_contiguous(), "the vocabulary must be contiguous");
  const int64_t* vocab = vocabulary.has_value() ? vocabulary->data_ptr<int64_t>() : nullptr;
  for (int64_t k = 0; k < m; ++k) {
    const int64_t i = keep[k];
    keep_p[k] = i;
    new_count_p[k] = count_p[i];
    if (!compact) new_done_p[k] = done_p[i];
    // candidates not ending (EOS, or ignored) first, then the others, each in candidate order
    int64_t filled = 0;
    for (int pass = 0; pass < 2 && filled < beam; ++pass) {
      for (int64_t j = 0; j < C && filled < beam; ++j) {
        const int64_t c = i * C + j;
        const bool eos_like = (ci[c] % V == eos && cs[c] != kNegInf) || (j < beam && ignore_p[i * beam + j]);
        if (eos_like != (pass == 1)) continue;
        const int64_t r = k * beam + filled;
        const int64_t src = i * beam + ci[c] / V;
        new_ignore_p[r] = eos_like;
        rows_p[r] = src;
        scores_p[r] = cs[c];
        const int64_t* from = tok + src * width;
        int64_t* to = nt + r * width;
        for (int64_t t = 0; t <= step; ++t) to[t] = from[t];
        const int64_t chosen = ci[c] % V;
        to[step + 1] = vocab ? vocab[chosen] : chosen;
        for (int64_t t = step + 2; t < width; ++t) to[t] = from[t];
        ++filled;
      }
    }
  }
  return {done, keep_t, new_tokens, rows, scores, new_count, new_ignore, new_done};
}

// fin_tokens, fin_lengths and fin_scores are written in place (not declared in the schema: the
// operator is called eagerly on CPU tensors only)
TORCH_LIBRARY_FRAGMENT(fairseq_lrn, m) {
  m.def("advance_search(Tensor cand_scores, Tensor cand_index, Tensor tokens, Tensor ids, Tensor max_len, "
        "Tensor fin_tokens, Tensor fin_lengths, Tensor fin_scores, Tensor fin_count, "
        "Tensor cands_to_ignore, Tensor finished, int V, int beam, int eos, int step, bool last_step, "
        "bool check_max_len, float lenpen, bool drop_finished, Tensor? vocabulary) "
        "-> (int, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(fairseq_lrn, CPU, m) { m.impl("advance_search", &advance_search); }
