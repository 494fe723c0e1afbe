#pragma once
// Confusion matrix with per-class precision / recall / F1, as sklearn.metrics.
//   counts(t, p) = number of samples of true class t predicted as p (rows true, cols predicted)
//   precision(c) = counts(c, c) / column sum c     recall(c) = counts(c, c) / row sum c
//   f1(c)        = 2 P R / (P + R)
// A zero denominator (class never predicted, class with no samples, P = R = 0) gives 0, as
// sklearn's zero_division=0. Macro averages are unweighted means over all num_classes classes
// (a class absent from both labels and predictions therefore counts as 0).
#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "accuracy.hpp"

namespace heed {

class ConfusionMatrix {
 public:
  using Counts = Eigen::Matrix<std::int64_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  explicit ConfusionMatrix(int num_classes) {
    if (num_classes < 1)
      throw ValueError("ConfusionMatrix: num_classes expected >= 1, got " +
                       std::to_string(num_classes));
    counts_ = Counts::Zero(num_classes, num_classes);
  }

  // Adds a batch. predictions (N) and labels (N) are class indices (note the order: predicted
  // first, like update(argmax_rows(logits), y)). Validates everything before counting, so a
  // bad batch leaves the matrix unchanged.
  void update(const LabelsRef& predictions, const LabelsRef& labels) {
    if (predictions.size() != labels.size())
      throw ShapeError("ConfusionMatrix::update: labels expected (" +
                       std::to_string(predictions.size()) + ") to match predictions, got (" +
                       std::to_string(labels.size()) + ")");
    detail::check_labels("ConfusionMatrix::update (predictions)", predictions, num_classes());
    detail::check_labels("ConfusionMatrix::update (labels)", labels, num_classes());
    for (Index i = 0; i < labels.size(); ++i) ++counts_(labels(i), predictions(i));
  }

  void reset() { counts_.setZero(); }

  int num_classes() const { return static_cast<int>(counts_.rows()); }
  const Counts& counts() const { return counts_; }
  std::int64_t operator()(int true_class, int predicted_class) const {
    check_class("operator()", true_class);
    check_class("operator()", predicted_class);
    return counts_(true_class, predicted_class);
  }
  std::int64_t total() const { return counts_.sum(); }

  double precision(int c) const {
    check_class("precision", c);
    return ratio(counts_(c, c), counts_.col(c).sum());
  }
  double recall(int c) const {
    check_class("recall", c);
    return ratio(counts_(c, c), counts_.row(c).sum());
  }
  double f1(int c) const {
    const double p = precision(c), r = recall(c);
    return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
  }
  // Samples of class c (row sum): sklearn's "support".
  std::int64_t support(int c) const {
    check_class("support", c);
    return counts_.row(c).sum();
  }

  double macro_precision() const { return macro(&ConfusionMatrix::precision); }
  double macro_recall() const { return macro(&ConfusionMatrix::recall); }
  double macro_f1() const { return macro(&ConfusionMatrix::f1); }

  // Trace / total; 0 when empty.
  double accuracy() const { return ratio(counts_.trace(), total()); }

  // Rows true class, columns predicted class, right-aligned:
  //   true\pred      0     1
  //           0     50     2
  //           1      3    45
  std::string to_string() const {
    const std::string corner = "true\\pred";
    int w = static_cast<int>(std::to_string(std::max<std::int64_t>(counts_.maxCoeff(), num_classes() - 1)).size());
    w = std::max(w, 3) + 2;
    std::ostringstream s;
    s.width(static_cast<std::streamsize>(corner.size()));
    s << corner;
    for (int c = 0; c < num_classes(); ++c) {
      s.width(w);
      s << c;
    }
    s << '\n';
    for (int t = 0; t < num_classes(); ++t) {
      s.width(static_cast<std::streamsize>(corner.size()));
      s << t;
      for (int p = 0; p < num_classes(); ++p) {
        s.width(w);
        s << counts_(t, p);
      }
      s << '\n';
    }
    return s.str();
  }

 private:
  static double ratio(std::int64_t a, std::int64_t b) {
    return b > 0 ? static_cast<double>(a) / static_cast<double>(b) : 0.0;
  }
  double macro(double (ConfusionMatrix::*f)(int) const) const {
    double s = 0;
    for (int c = 0; c < num_classes(); ++c) s += (this->*f)(c);
    return s / num_classes();
  }
  void check_class(const char* fn, int c) const {
    if (c < 0 || c >= num_classes())
      throw ValueError(std::string("ConfusionMatrix::") + fn + ": class expected in [0, " +
                       std::to_string(num_classes()) + "), got " + std::to_string(c));
  }

  Counts counts_;  // (C, C)
};

}  // namespace heed
