#pragma once
#include <cmath>
#include <numbers>

#include "activation.hpp"

namespace heed {

// GELU(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))   (PyTorch's default, exact form)
// d/dx = Phi(x) + x phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi).
template <typename T>
class GELU : public Activation<T, GELU<T>> {
  // 1/sqrt 2 and 1/sqrt(2 pi) from <numbers>, computed in double then rounded to T once (the
  // same values as the POSIX M_SQRT1_2 and the 16-digit literal they replace).
  static constexpr T kInvSqrt2 = T(std::numbers::sqrt2 / 2);
  static constexpr T kInvSqrt2Pi = T(std::numbers::inv_sqrtpi * std::numbers::sqrt2 / 2);

 public:
  static constexpr bool kNeedsInput = true;
  static constexpr const char* kName = "GELU";
  template <class X, class Y>
  void apply(const X& x, Y& y) const {
    y = x.unaryExpr([](T v) { return T(0.5) * v * (T(1) + std::erf(v * kInvSqrt2)); });
  }
  template <class X, class Y, class G, class D>
  void grad(const X& x, const Y&, const G& dy, D& dx) const {
    dx = x.binaryExpr(dy, [](T v, T g) {
      const T cdf = T(0.5) * (T(1) + std::erf(v * kInvSqrt2));
      const T pdf = kInvSqrt2Pi * std::exp(T(-0.5) * v * v);
      return g * (cdf + v * pdf);
    });
  }
};

}  // namespace heed
