#pragma once
#include "activation.hpp"

namespace heed {

// Softmax over each row (dim=-1):  y_ij = exp(x_ij - m_i) / sum_k exp(x_ik - m_i),  m_i = max_k x_ik
// (subtracting the row max keeps exp from overflowing; the result is unchanged).
// Backward is the row Jacobian-vector product:  dx_ij = y_ij (dy_ij - sum_k dy_ik y_ik).
// For classification train on logits with CrossEntropyLoss (fused, more stable) instead.
template <typename T>
class Softmax : public Activation<T, Softmax<T>> {
 public:
  static constexpr bool kNeedsInput = false;
  static constexpr const char* kName = "Softmax";
  template <class X, class Y>
  void apply(const X& x, Y& y) const {
    for (Index i = 0; i < x.rows(); ++i) {
      const T m = x.row(i).maxCoeff();
      y.row(i) = (x.row(i).array() - m).exp().matrix();
      y.row(i) /= y.row(i).sum();
    }
  }
  template <class X, class Y, class G, class D>
  void grad(const X&, const Y& y, const G& dy, D& dx) const {
    for (Index i = 0; i < y.rows(); ++i) {
      const T dot = dy.row(i).dot(y.row(i));  // sum_k dy_ik y_ik
      dx.row(i) = (y.row(i).array() * (dy.row(i).array() - dot)).matrix();
    }
  }
};

}  // namespace heed
