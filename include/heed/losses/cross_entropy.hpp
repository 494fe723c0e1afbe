#pragma once
// CrossEntropyLoss on logits with integer class targets, as torch.nn.CrossEntropyLoss
// (mean reduction, optional class weights w, label smoothing eps, ignore_index).
//
//   logp_ic = z_ic - logsumexp_c(z_i)                          (fused log-softmax, stable)
//   a_ic    = (1 - eps) w_{y_i} [c = y_i] + (eps / C) w_c      (target mass on class c)
//   L       = sum_i sum_c a_ic (-logp_ic) / W,   W = sum_i w_{y_i}  over non-ignored rows
//   dL/dz_ic = ((sum_c a_ic) p_ic - a_ic) / W,   p = softmax(z)
// Without weights w = 1 and W is the number of counted rows, so L is the plain mean.
// If every row is ignored, L = 0 and the gradient is zero (PyTorch returns NaN). An empty batch
// (B = 0) is a ShapeError instead, as for every loss: there was nothing to ignore.
#include <cmath>
#include <cstddef>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "loss_common.hpp"

namespace heed {
namespace detail {

// log sum_j exp(z_j) of one row z, stably: m + log(sum_j exp(z_j - m)), m = max_j z_j. Given
// `e` (a row as wide as z), also leaves exp(z - m) there, so softmax(z) = e / e.sum() follows
// without a second exp. Seq2Seq's decoders use it; CrossEntropyLoss keeps m apart instead (the
// sum m + log(s) rounds away log(s) when m is large, see forward()).
template <class Z, class E = std::nullptr_t>
typename Z::Scalar logsumexp_row(const Z& z, E&& e = nullptr) {
  using T = typename Z::Scalar;
  const T m = z.maxCoeff();
  if constexpr (std::is_null_pointer_v<std::decay_t<E>>) {
    return m + std::log((z.array() - m).exp().sum());
  } else {
    e = (z.array() - m).exp().matrix();
    return m + std::log(e.sum());
  }
}

}  // namespace detail

template <typename T>
struct CrossEntropyLossOptions {
  std::vector<T> weight{};   // per-class weights (C), empty = all ones
  T label_smoothing = 0;     // in [0, 1]
  int ignore_index = -100;   // rows with this target contribute nothing
};

template <typename T>
class CrossEntropyLoss {
 public:
  explicit CrossEntropyLoss(CrossEntropyLossOptions<T> opt = {}) : opt_(std::move(opt)) {
    detail::require(opt_.label_smoothing >= 0 && opt_.label_smoothing <= 1, "CrossEntropyLoss",
                    "label_smoothing must be in [0, 1], got " + std::to_string(opt_.label_smoothing));
    for (T w : opt_.weight)
      detail::require(std::isfinite(static_cast<double>(w)) && w >= 0, "CrossEntropyLoss",
                      "class weights must be finite and non-negative");
  }

  // logits (B, C), target (B) -> mean loss; keeps dL/dlogits for backward().
  T forward(const ConstRef<T>& logits, const LabelsRef& target) {
    Matrix<T>& grad = grad_.begin();  // (B, C)
    const Index B = logits.rows(), C = logits.cols();
    if (target.size() != B)
      throw ShapeError("CrossEntropyLoss: target expected (" + std::to_string(B) + "), got (" +
                       std::to_string(target.size()) + ")");
    if (!opt_.weight.empty() && Index(opt_.weight.size()) != C)
      throw ShapeError("CrossEntropyLoss: weight expected (" + std::to_string(C) + "), got (" +
                       std::to_string(opt_.weight.size()) + ")");
    if (C == 0) throw ShapeError("CrossEntropyLoss: logits expected (B, C>0), got " + detail::shape_str(B, C));
    detail::check_nonempty("CrossEntropyLoss", logits);
    const bool weighted = !opt_.weight.empty();
    const T eps = opt_.label_smoothing;
    grad.resize(B, C);
    double total = 0, W = 0;
    for (Index i = 0; i < B; ++i) {
      const int y = target(i);
      if (y == opt_.ignore_index) {
        grad.row(i).setZero();
        continue;
      }
      if (y < 0 || y >= C)
        throw ValueError("CrossEntropyLoss: target " + std::to_string(y) + " at row " +
                         std::to_string(i) + " out of range [0, " + std::to_string(C) + ")");
      const auto z = logits.row(i);
      auto g = grad.row(i);
      // -logp_ic = lse - z_ic = log(s) - (z_ic - m), m = max z_i, s = sum exp(z_i - m): with m
      // taken out of both terms before they meet, a large shared offset (logits [c, c, c],
      // c = 1e8 in float) cannot round log 3 away, as m + log(s) - z_y would.
      const T m = z.maxCoeff();
      g = (z.array() - m).exp().matrix();                    // exp(z - m)        (1, C)
      const T lse = std::log(g.sum());                       // logsumexp(z) - m
      g /= g.sum();                                          // p = softmax(z)    (1, C)
      const T wy = weighted ? opt_.weight[y] : T(1);
      // Smoothing part of a_i: (eps / C) w_c, zero without smoothing.
      // -logp_ic = lse - z_ic, so sum_c a_ic (-logp_ic) splits into the target and smoothing terms.
      double li = (1 - eps) * wy * (lse - (z(y) - m));
      T a_sum = (1 - eps) * wy;                              // sum_c a_ic
      if (eps > 0) {
        if (weighted) {
          const Eigen::Map<const RowVector<T>> w(opt_.weight.data(), C);
          li += eps / C * (w.array() * (lse - (z.array() - m))).sum();
          a_sum += eps / C * w.sum();
          g = g * a_sum - w * (eps / C);                     // a_sum p - smoothing part
        } else {
          li += eps / C * (C * lse - (z.array() - m).sum());
          a_sum += eps;
          g.array() = g.array() * a_sum - eps / C;
        }
      } else {
        g *= a_sum;
      }
      g(y) -= (1 - eps) * wy;                                // - target part of a_i
      total += li;
      W += wy;
    }
    if (W == 0) {  // every row ignored
      grad.setZero();
      grad_.end();
      return T(0);
    }
    grad /= static_cast<T>(W);
    grad_.end();
    return static_cast<T>(total / W);
  }

  // dL/dlogits from the last forward (ValueError if none completed).                (B, C)
  const Matrix<T>& backward() const { return grad_.get(); }

  const CrossEntropyLossOptions<T>& options() const { return opt_; }

 private:
  CrossEntropyLossOptions<T> opt_;
  detail::LossGrad<T> grad_{"CrossEntropyLoss"};  // (B, C)
};

}  // namespace heed
