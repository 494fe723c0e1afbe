#pragma once
#include <cmath>

#include "activation.hpp"

namespace heed {

// LeakyReLU(x) = x if x > 0 else negative_slope * x  (PyTorch default slope 0.01).
// d/dx = 1 or negative_slope, decided on x: with a negative slope y's sign would not tell.
template <typename T>
class LeakyReLU : public Activation<T, LeakyReLU<T>> {
 public:
  static constexpr bool kNeedsInput = true;
  static constexpr const char* kName = "LeakyReLU";
  explicit LeakyReLU(T negative_slope = T(0.01)) : slope_(negative_slope) {
    detail::require(std::isfinite(static_cast<double>(negative_slope)), kName,
                    "negative_slope must be finite");
  }
  T negative_slope() const { return slope_; }
  template <class X, class Y>
  void apply(const X& x, Y& y) const { y = (x.array() > T(0)).select(x, slope_ * x.array()); }
  template <class X, class Y, class G, class D>
  void grad(const X& x, const Y&, const G& dy, D& dx) const {
    dx = (x.array() > T(0)).select(dy, slope_ * dy.array());
  }

 private:
  T slope_;
};

}  // namespace heed
