#pragma once
// Activations are element-wise (or row-wise, for Softmax) functions written once as a policy
//   apply(x, y)             y = f(x)                       x, y: (B, F)
//   grad(x, y, dy, dx)      dx = f'(x) .* dy  (or the row Jacobian-vector product)
// and turned into a standalone Module by Activation<T, Policy>. Each activation class *is* that
// module (ReLU<T> : Activation<T, ReLU<T>>), so the same name serves as a module in a
// Sequential and as a policy in Dense<T, ReLU>.
#include <string>

#include "../core/module.hpp"

namespace heed {

template <typename T, typename Derived>
class Activation : public Module<T> {
 public:
  // forward: y = f(x)                                                          // (B, F)
  const Matrix<T>& forward(const ConstRef<T>& x) override {
    if constexpr (Derived::kNeedsInput) x_ = x;  // only kept when f' needs x, not just y
    y_.resize(x.rows(), x.cols());
    self().apply(x, y_);
    return y_;
  }

  // backward: dx = df/dx applied to dy, using the cached y (and x when needed)  // (B, F)
  const Matrix<T>& backward(const ConstRef<T>& dy) override {
    detail::require_forward(y_.cols() != 0 || y_.rows() != 0, Derived::kName);
    detail::check_shape(Derived::kName, "gradient", dy, y_.rows(), y_.cols());
    dx_.resize(dy.rows(), dy.cols());
    self().grad(x_, y_, dy, dx_);
    return dx_;
  }

  std::string name() const override { return Derived::kName; }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
  Matrix<T> x_;   // (B, F) input, kept only if Derived::kNeedsInput
  Matrix<T> y_;   // (B, F) output
  Matrix<T> dx_;  // (B, F)
};

}  // namespace heed
