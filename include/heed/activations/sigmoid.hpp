#pragma once
#include "activation.hpp"

namespace heed {

// Sigmoid(x) = 1 / (1 + exp(-x));  d/dx = y (1 - y).
// Written as 0.5 * (1 + tanh(x/2)): the same function, with no overflow for large |x|.
template <typename T>
class Sigmoid : public Activation<T, Sigmoid<T>> {
 public:
  static constexpr bool kNeedsInput = false;
  static constexpr const char* kName = "Sigmoid";
  template <class X, class Y>
  void apply(const X& x, Y& y) const {
    y = (T(0.5) * ((T(0.5) * x.array()).tanh() + T(1))).matrix();
  }
  template <class X, class Y, class G, class D>
  void grad(const X&, const Y& y, const G& dy, D& dx) const {
    dx = (dy.array() * y.array() * (T(1) - y.array())).matrix();
  }
};

}  // namespace heed
