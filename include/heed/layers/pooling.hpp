#pragma once
// MaskedMeanPool: the mean of each sample's valid steps, the usual way to turn a padded
// sequence batch into one vector per sample.
//
//   x (B*T, E), key_padding_mask (B, T) true = padding (nullptr: every step valid) -> y (B, E)
//   y_b = (1 / n_b) sum_{t valid} x_{b*T+t}       n_b = number of valid steps of b      (1)
//   dx_{b*T+t} = dy_b / n_b for valid t, 0 for padding                               d(1)
//
// A sample with no valid step gives y_b = 0 (not NaN), as the attention layers give zero
// weights to fully masked rows. Padding is never read, so NaN there does not leak.
#include <string>

#include "../attention/masks.hpp"
#include "../core/module.hpp"

namespace heed {

template <typename T>
class MaskedMeanPool : public ModuleBase<T> {
 public:
  // forward                       x (B*T, E), mask (B, T) or nullptr -> y (B, E)
  // The mask is copied: it need not outlive the call.
  const Matrix<T>& forward(const ConstRef<T>& x, Index B, const BoolMatrix* key_padding_mask = nullptr) {
    if (B <= 0) throw ValueError("MaskedMeanPool: batch size must be positive, got " + std::to_string(B));
    if (x.rows() == 0 || x.rows() % B != 0)
      throw ShapeError("MaskedMeanPool: input rows " + std::to_string(x.rows()) +
                       " not a positive multiple of batch size " + std::to_string(B));
    const Index T_ = x.rows() / B, E = x.cols();
    if (key_padding_mask)
      detail::check_shape("MaskedMeanPool", "key_padding_mask", *key_padding_mask, B, T_);
    B_ = B;
    T_steps_ = T_;
    inv_n_.resize(B);  // (B) 1/n_b, 0 for a sample with no valid step
    valid_.resize(B, T_);
    y_.setZero(B, E);
    for (Index b = 0; b < B; ++b) {
      Index n = 0;
      for (Index t = 0; t < T_; ++t) {
        valid_(b, t) = !key_padding_mask || !(*key_padding_mask)(b, t);
        if (valid_(b, t)) {
          y_.row(b) += x.row(b * T_ + t);  // (1), the sum
          ++n;
        }
      }
      inv_n_(b) = n > 0 ? T(1) / static_cast<T>(n) : T(0);
      y_.row(b) *= inv_n_(b);              // (1), the mean
    }
    return y_;
  }

  // backward                      dy (B, E) -> dx (B*T, E)
  const Matrix<T>& backward(const ConstRef<T>& dy) {
    detail::require_forward(B_ > 0, "MaskedMeanPool");
    detail::check_shape("MaskedMeanPool", "gradient", dy, B_, y_.cols());
    dx_.resize(B_ * T_steps_, dy.cols());
    for (Index b = 0; b < B_; ++b)
      for (Index t = 0; t < T_steps_; ++t) {
        auto r = dx_.row(b * T_steps_ + t);
        if (valid_(b, t)) r = dy.row(b) * inv_n_(b);  // d(1)
        else r.setZero();
      }
    return dx_;
  }

  std::string name() const override { return "MaskedMeanPool"; }

 private:
  Index B_ = 0, T_steps_ = 0;
  Vector<T> inv_n_;   // (B)
  BoolMatrix valid_;  // (B, T) true = step entered the mean
  Matrix<T> y_;       // (B, E)
  Matrix<T> dx_;      // (B*T, E)
};

}  // namespace heed
