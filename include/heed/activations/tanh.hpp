#pragma once
#include "activation.hpp"

namespace heed {

// Tanh(x);  d/dx = 1 - y^2.
template <typename T>
class Tanh : public Activation<T, Tanh<T>> {
 public:
  static constexpr bool kNeedsInput = false;
  static constexpr const char* kName = "Tanh";
  template <class X, class Y>
  void apply(const X& x, Y& y) const { y = x.array().tanh().matrix(); }
  template <class X, class Y, class G, class D>
  void grad(const X&, const Y& y, const G& dy, D& dx) const {
    dx = (dy.array() * (T(1) - y.array().square())).matrix();
  }
};

}  // namespace heed
