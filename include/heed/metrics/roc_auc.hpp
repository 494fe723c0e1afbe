#pragma once
// Area under the ROC curve and the curve itself, as sklearn.metrics.roc_auc_score / roc_curve.
// AUC is computed by the Mann-Whitney statistic with average ranks for tied scores, so a tie
// between a positive and a negative counts 1/2, exactly the area under the ROC polyline:
//   AUC = (sum of positives' ranks - P (P + 1) / 2) / (P * Q)   (P positives, Q negatives)
// AUC is undefined when only one class is present: roc_auc throws ValueError (sklearn raises
// too); roc_auc_ovr leaves such classes out of the average.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "accuracy.hpp"

namespace heed {

struct RocCurve {
  std::vector<double> fpr;         // false positive rate, non-decreasing from 0 to 1
  std::vector<double> tpr;         // true positive rate, non-decreasing from 0 to 1
  std::vector<double> thresholds;  // decreasing; point k predicts positive for score >= thresholds[k]
                                   // (thresholds[0] = +inf: nothing positive)
};

namespace detail {

// Scores and 0/1 targets as doubles/flags, validated. `scores` is any (N) or (1, N) vector.
template <typename Derived>
void binary_inputs(const char* fn, const Eigen::DenseBase<Derived>& scores, const LabelsRef& targets,
                   std::vector<double>& s, std::vector<char>& pos) {
  if (scores.rows() != 1 && scores.cols() != 1)
    throw ShapeError(std::string(fn) + ": scores expected a vector (N), got " +
                     shape_str(scores.rows(), scores.cols()));
  if (scores.size() != targets.size())
    throw ShapeError(std::string(fn) + ": targets expected (" + std::to_string(scores.size()) +
                     ") to match scores, got (" + std::to_string(targets.size()) + ")");
  s.resize(static_cast<std::size_t>(scores.size()));
  pos.resize(s.size());
  for (Index i = 0; i < scores.size(); ++i) {
    const double v = static_cast<double>(scores.derived().coeff(i));
    if (std::isnan(v)) throw NumericError(std::string(fn) + ": NaN score at index " + std::to_string(i));
    if (targets(i) != 0 && targets(i) != 1)
      throw ValueError(std::string(fn) + ": target expected 0 or 1, got " +
                       std::to_string(targets(i)) + " at index " + std::to_string(i));
    s[static_cast<std::size_t>(i)] = v;
    pos[static_cast<std::size_t>(i)] = static_cast<char>(targets(i));
  }
}

// Mann-Whitney AUC with average ranks; NaN if only one class is present. idx is scratch.
inline double auc_ranks(const std::vector<double>& s, const std::vector<char>& pos,
                        std::vector<std::size_t>& idx) {
  const std::size_t n = s.size();
  idx.resize(n);
  std::iota(idx.begin(), idx.end(), std::size_t(0));
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return s[a] < s[b]; });
  double P = 0, rank_sum = 0;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    double group_pos = 0;
    while (j < n && s[idx[j]] == s[idx[i]]) group_pos += pos[idx[j++]];
    // ranks i+1 .. j (1-based) share their average
    rank_sum += group_pos * (static_cast<double>(i + 1 + j) / 2.0);
    P += group_pos;
    i = j;
  }
  const double Q = static_cast<double>(n) - P;
  if (P == 0 || Q == 0) return std::numeric_limits<double>::quiet_NaN();
  return (rank_sum - P * (P + 1) / 2) / (P * Q);
}

}  // namespace detail

// Binary ROC AUC: scores (N), targets (N) in {0, 1}. Throws ValueError if targets hold only
// one class.
template <typename Derived>
double roc_auc(const Eigen::DenseBase<Derived>& scores, const LabelsRef& targets) {
  std::vector<double> s;
  std::vector<char> pos;
  std::vector<std::size_t> idx;
  detail::binary_inputs("roc_auc", scores, targets, s, pos);
  const double auc = detail::auc_ranks(s, pos, idx);
  if (std::isnan(auc))
    throw ValueError("roc_auc: targets expected both classes 0 and 1, got only one (" +
                     std::to_string(targets.size()) + " samples)");
  return auc;
}

// One-vs-rest macro AUC: scores (N, C), labels (N) in [0, C). Class c's AUC uses column c as
// the score of "label == c". Classes with no positive or no negative sample are skipped (and
// counted in *skipped if given); ValueError if every class is skipped.
template <typename Derived>
double roc_auc_ovr(const Eigen::MatrixBase<Derived>& scores, const LabelsRef& labels,
                   int* skipped = nullptr) {
  const Index N = scores.rows(), C = scores.cols();
  if (labels.size() != N)
    throw ShapeError("roc_auc_ovr: labels expected (" + std::to_string(N) + ") to match scores " +
                     detail::shape_str(N, C) + ", got (" + std::to_string(labels.size()) + ")");
  if (C < 2) throw ShapeError("roc_auc_ovr: scores expected (N, C>=2), got " + detail::shape_str(N, C));
  detail::check_labels("roc_auc_ovr", labels, C);
  std::vector<double> s(static_cast<std::size_t>(N));
  std::vector<char> pos(s.size());
  std::vector<std::size_t> idx;
  double sum = 0;
  int used = 0;
  for (Index c = 0; c < C; ++c) {
    for (Index i = 0; i < N; ++i) {
      const double v = static_cast<double>(scores(i, c));
      if (std::isnan(v))
        throw NumericError("roc_auc_ovr: NaN score at (" + std::to_string(i) + ", " +
                           std::to_string(c) + ")");
      s[static_cast<std::size_t>(i)] = v;
      pos[static_cast<std::size_t>(i)] = labels(i) == c;
    }
    const double auc = detail::auc_ranks(s, pos, idx);
    if (std::isnan(auc)) continue;
    sum += auc;
    ++used;
  }
  if (skipped) *skipped = static_cast<int>(C) - used;
  if (used == 0)
    throw ValueError("roc_auc_ovr: no class has both positive and negative samples (N = " +
                     std::to_string(N) + ")");
  return sum / used;
}

// ROC curve (sklearn's roc_curve with drop_intermediate=False): one point per distinct score,
// from (0, 0) at threshold +inf to (1, 1). Throws ValueError if targets hold only one class.
template <typename Derived>
RocCurve roc_curve(const Eigen::DenseBase<Derived>& scores, const LabelsRef& targets) {
  std::vector<double> s;
  std::vector<char> pos;
  detail::binary_inputs("roc_curve", scores, targets, s, pos);
  const double P = std::count(pos.begin(), pos.end(), char(1));
  const double Q = static_cast<double>(s.size()) - P;
  if (P == 0 || Q == 0)
    throw ValueError("roc_curve: targets expected both classes 0 and 1, got only one (" +
                     std::to_string(s.size()) + " samples)");
  std::vector<std::size_t> idx(s.size());
  std::iota(idx.begin(), idx.end(), std::size_t(0));
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return s[a] > s[b]; });
  RocCurve r;
  r.fpr.push_back(0);
  r.tpr.push_back(0);
  r.thresholds.push_back(std::numeric_limits<double>::infinity());
  double tp = 0, fp = 0;
  for (std::size_t i = 0; i < idx.size();) {
    const double t = s[idx[i]];
    for (; i < idx.size() && s[idx[i]] == t; ++i) (pos[idx[i]] ? tp : fp) += 1;
    r.fpr.push_back(fp / Q);
    r.tpr.push_back(tp / P);
    r.thresholds.push_back(t);
  }
  return r;
}

}  // namespace heed
