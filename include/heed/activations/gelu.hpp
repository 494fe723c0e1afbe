#pragma once
#include <cmath>

#include "activation.hpp"

namespace heed {

// GELU(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))   (PyTorch's default, exact form)
// d/dx = Phi(x) + x phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi).
template <typename T>
class GELU : public Activation<T, GELU<T>> {
 public:
  static constexpr bool kNeedsInput = true;
  static constexpr const char* kName = "GELU";
  template <class X, class Y>
  void apply(const X& x, Y& y) const {
    y = x.unaryExpr([](T v) { return T(0.5) * v * (T(1) + std::erf(v * T(M_SQRT1_2))); });
  }
  template <class X, class Y, class G, class D>
  void grad(const X& x, const Y&, const G& dy, D& dx) const {
    const T inv_sqrt_2pi = T(0.3989422804014327);
    dx = x.binaryExpr(dy, [inv_sqrt_2pi](T v, T g) {
      const T cdf = T(0.5) * (T(1) + std::erf(v * T(M_SQRT1_2)));
      const T pdf = inv_sqrt_2pi * std::exp(T(-0.5) * v * v);
      return g * (cdf + v * pdf);
    });
  }
};

}  // namespace heed
