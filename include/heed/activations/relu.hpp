#pragma once
#include "activation.hpp"

namespace heed {

// ReLU(x) = max(x, 0);  d/dx = [x > 0] = [y > 0], so only y is kept.
template <typename T>
class ReLU : public Activation<T, ReLU<T>> {
 public:
  static constexpr bool kNeedsInput = false;
  static constexpr const char* kName = "ReLU";
  template <class X, class Y>
  void apply(const X& x, Y& y) const { y = x.cwiseMax(T(0)); }
  template <class X, class Y, class G, class D>
  void grad(const X&, const Y& y, const G& dy, D& dx) const {
    dx = (y.array() > T(0)).select(dy, T(0));
  }
};

}  // namespace heed
