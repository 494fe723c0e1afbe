#pragma once
// Top-1 accuracy from scores (logits or probabilities) via row argmax.
#include <cmath>
#include <string>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace heed {
namespace detail {

inline void check_labels(const char* fn, const LabelsRef& labels, Index num_classes) {
  for (Index i = 0; i < labels.size(); ++i)
    if (labels(i) < 0 || labels(i) >= num_classes)
      throw ValueError(std::string(fn) + ": label " + std::to_string(labels(i)) + " at index " +
                       std::to_string(i) + " out of range [0, " + std::to_string(num_classes) +
                       ")");
}

}  // namespace detail

// scores (N, C) -> the column of each row's maximum (N); ties go to the lowest index, as
// torch.argmax / numpy.argmax. A NaN score is a NumericError (no silent class 0).
template <typename Derived>
Labels argmax_rows(const Eigen::MatrixBase<Derived>& scores) {
  const Index N = scores.rows(), C = scores.cols();
  if (C < 1) throw ShapeError("argmax_rows: scores expected (N, C>=1), got " + detail::shape_str(N, C));
  Labels out(N);
  for (Index i = 0; i < N; ++i) {
    Index best = 0;
    for (Index j = 0; j < C; ++j) {
      const auto v = scores(i, j);
      if (std::isnan(static_cast<double>(v)))
        throw NumericError("argmax_rows: NaN score at (" + std::to_string(i) + ", " +
                           std::to_string(j) + ")");
      if (v > scores(i, best)) best = j;
    }
    out(i) = static_cast<std::int32_t>(best);
  }
  return out;
}

// Fraction of rows whose argmax equals the label, in [0, 1]. scores (N, C), labels (N).
template <typename Derived>
double accuracy(const Eigen::MatrixBase<Derived>& scores, const LabelsRef& labels) {
  const Index N = scores.rows();
  if (labels.size() != N)
    throw ShapeError("accuracy: labels expected (" + std::to_string(N) + ") to match scores " +
                     detail::shape_str(N, scores.cols()) + ", got (" +
                     std::to_string(labels.size()) + ")");
  if (N == 0) throw ValueError("accuracy: scores expected at least one row, got (0, " +
                               std::to_string(scores.cols()) + ")");
  detail::check_labels("accuracy", labels, scores.cols());
  const Labels pred = argmax_rows(scores);
  return static_cast<double>((pred.array() == labels.array()).count()) / static_cast<double>(N);
}

}  // namespace heed
