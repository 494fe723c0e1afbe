#pragma once
// Greedy and beam search for any autoregressive decoder, batched over the samples.
//
// The model is a step function; at every step the search hands it the rows to extend:
//   const Matrix<T>& logits = step(parents, samples, tokens, attention)         (n, V)
//     parents (n)  the row of the previous call whose decoder state row i continues (at the
//                  first call: row b of the initial state, one row per sample b)
//     samples (n)  the sample row i belongs to
//     tokens  (n)  the token fed at row i: bos at the first call, then the last one chosen
//     attention    (n, width) filled with row i's attention weights (what the model looked at
//                  while predicting this token), or left empty
// A model keeps one state row per row of its last call: a GRU's h, a transformer's KV caches
// (reorder(parents)). Scores are sums of log-probabilities, no length normalisation.
//
// Beam search keeps beam_size hypotheses per sample: the best beam_size of all extensions of
// the live ones (ties: lower hypothesis, then lower token). One ending in eos is finished. A
// sample stops when no live hypothesis remains or its best finished one scores at least as
// well as every live one (scores only decrease); max_len ends the rest. beam_size 1 is greedy
// decoding: at each step the most probable token, the lowest id on ties.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../losses/cross_entropy.hpp"

namespace heed {

// One decoded sequence: tokens as produced, ending with eos unless max_len was reached;
// attention (tokens.size(), width): row i = the weights over the source when token i was
// predicted; log_prob = sum of the tokens' log-probabilities.
template <typename T>
struct Translation {
  std::vector<int> tokens;
  Matrix<T> attention;
  double log_prob = 0;
};

struct SearchOptions {
  Index beam_size = 1;
  Index max_len = 0;  // tokens per sample at most, eos included
  int bos_id = 1;
  int eos_id = 2;
};

// widths (B): columns of attention kept for sample b (its source length).
template <typename T, class Step>
std::vector<Translation<T>> beam_search(Index B, const LabelsRef& widths, const SearchOptions& o,
                                        Step&& step) {
  detail::require(o.beam_size >= 1, "beam_search",
                  "beam_size must be >= 1, got " + std::to_string(o.beam_size));
  detail::require(o.max_len >= 1, "beam_search",
                  "max_len must be >= 1, got " + std::to_string(o.max_len));
  detail::require(B >= 1 && widths.size() == B, "beam_search",
                  "expected B >= 1 and one width per sample, got B = " + std::to_string(B) +
                      " and " + std::to_string(widths.size()) + " widths");
  const Index max_width = widths.maxCoeff();
  detail::require(widths.minCoeff() >= 0, "beam_search", "widths must be >= 0");
  struct Hyp {
    std::vector<int> tokens;
    std::vector<RowVector<T>> att;
    double logp = 0;
    Index row = 0;  // the state row (of the last call) this hypothesis continues
  };
  struct Cand {
    double score;
    Index hyp, tok;
  };
  const auto sz = static_cast<std::size_t>(B);
  std::vector<std::vector<Hyp>> alive(sz), finished(sz);
  for (Index b = 0; b < B; ++b) alive[b].push_back(Hyp{{}, {}, 0.0, b});
  std::vector<char> done(sz, 0);
  std::vector<Index> parents, samples, first;  // first[b]: sample b's first row in this call
  Labels tokens;
  Matrix<T> att;
  std::vector<Cand> cands;
  for (Index t = 0; t < o.max_len; ++t) {
    parents.clear();
    samples.clear();
    first.assign(sz, 0);
    for (Index b = 0; b < B; ++b) {
      first[b] = Index(parents.size());
      if (done[b]) continue;
      for (const Hyp& h : alive[b]) parents.push_back(h.row), samples.push_back(b);
    }
    const Index n = Index(parents.size());
    if (n == 0) break;
    tokens.resize(n);
    for (Index b = 0, i = 0; b < B; ++b)
      if (!done[b])
        for (const Hyp& h : alive[b]) tokens(i++) = h.tokens.empty() ? o.bos_id : h.tokens.back();
    att.resize(0, 0);
    const Matrix<T>& logits = step(parents, samples, tokens, att);  // (n, V)
    if (logits.rows() != n || logits.cols() < 1)
      throw ShapeError("beam_search: step returned logits " +
                       detail::shape_str(logits.rows(), logits.cols()) + ", expected (" +
                       std::to_string(n) + ", V >= 1)");
    if (att.size() != 0 && (att.rows() != n || att.cols() < max_width))
      throw ShapeError("beam_search: step returned attention " +
                       detail::shape_str(att.rows(), att.cols()) + ", expected empty or (" +
                       std::to_string(n) + ", >= " + std::to_string(max_width) + ")");
    const Index V = logits.cols();
    for (Index b = 0; b < B; ++b) {
      if (done[b]) continue;
      std::vector<Hyp>& live = alive[b];
      const Index r0 = first[b], m = Index(live.size());
      cands.clear();
      for (Index i = 0; i < m; ++i) {
        const T lse = detail::logsumexp_row(logits.row(r0 + i));
        if (!std::isfinite(lse))  // NaN scores cannot be ranked (and +inf logits no better)
          throw NumericError("beam_search: non-finite logits at step " + std::to_string(t) +
                             " for sample " + std::to_string(b) + " (log-sum-exp " +
                             detail::num_repr(static_cast<double>(lse)) + ")");
        for (Index v = 0; v < V; ++v)
          cands.push_back({live[i].logp + static_cast<double>(logits(r0 + i, v) - lse), i, v});
      }
      const Index k = std::min<Index>(o.beam_size, Index(cands.size()));
      std::partial_sort(cands.begin(), cands.begin() + k, cands.end(),
                        [](const Cand& a, const Cand& c) {
                          if (a.score != c.score) return a.score > c.score;
                          return a.hyp != c.hyp ? a.hyp < c.hyp : a.tok < c.tok;
                        });
      std::vector<Hyp> next;
      for (Index j = 0; j < k; ++j) {
        const Cand& c = cands[j];
        Hyp nh = live[c.hyp];
        nh.tokens.push_back(static_cast<int>(c.tok));
        if (att.size() != 0) nh.att.push_back(att.row(r0 + c.hyp).head(widths(b)));
        nh.logp = c.score;
        nh.row = r0 + c.hyp;
        if (c.tok == o.eos_id) finished[b].push_back(std::move(nh));
        else next.push_back(std::move(nh));
      }
      live = std::move(next);
      if (live.empty()) done[b] = 1;
      if (!finished[b].empty() && !live.empty()) {
        double best_fin = -std::numeric_limits<double>::infinity();
        for (auto& f : finished[b]) best_fin = std::max(best_fin, f.logp);
        if (best_fin >= live.front().logp) done[b] = 1;  // live is sorted, best first
      }
    }
  }
  std::vector<Translation<T>> res(sz);
  for (Index b = 0; b < B; ++b) {
    for (auto& a : alive[b]) finished[b].push_back(std::move(a));  // max_len or stopped early
    const Hyp* best = &finished[b].front();
    for (auto& f : finished[b])
      if (f.logp > best->logp) best = &f;
    auto& r = res[b];
    r.tokens = best->tokens;
    r.log_prob = best->logp;
    r.attention.resize(Index(best->att.size()), widths(b));
    for (std::size_t i = 0; i < best->att.size(); ++i) r.attention.row(Index(i)) = best->att[i];
  }
  return res;
}

}  // namespace heed
