#pragma once
// LayerNorm over the last dimension F, as torch.nn.LayerNorm(F):
//   mu_b = mean_f x_bf,  var_b = mean_f (x_bf - mu_b)^2   (biased, as PyTorch; mu computed as
//          x_b0 + mean_f (x_bf - x_b0), so a constant row gives exactly beta)
//   xhat = (x - mu) * rstd,  rstd = 1 / sqrt(var + eps)
//   y = xhat .* gamma + beta
#include <cmath>
#include <limits>
#include <sstream>

#include "../core/module.hpp"

namespace heed {

template <typename T>
class LayerNorm : public Module<T> {
 public:
  explicit LayerNorm(Index normalized_shape, double eps = 1e-5, bool elementwise_affine = true)
      : F_(normalized_shape), eps_(eps), affine_(elementwise_affine) {
    detail::require(normalized_shape > 0, "LayerNorm", "normalized_shape must be positive");
    detail::require(eps > 0 && std::isfinite(eps), "LayerNorm", "eps must be positive");
    gamma_ = Matrix<T>::Ones(1, F_);  // (1, F)
    beta_ = Matrix<T>::Zero(1, F_);   // (1, F)
    dgamma_ = Matrix<T>::Zero(1, F_);
    dbeta_ = Matrix<T>::Zero(1, F_);
  }

  const Matrix<T>& forward(const ConstRef<T>& x) override {
    detail::check_shape("LayerNorm", "input", x, -1, F_);
    const Index B = x.rows();
    xhat_.resize(B, F_);  // (B, F)
    rstd_.resize(B);      // (B)
    y_.resize(B, F_);     // (B, F)
    // Rows whose squares could overflow (sum of F squares of |x - mu| <= 2 max|x|) are scaled
    // by k = 2^-e, max|x| < 2^e, first: exact, and xhat is the same with var k^2, eps k^2.
    const T big = std::sqrt(std::numeric_limits<T>::max() / static_cast<T>(F_)) / T(4);
    for (Index b = 0; b < B; ++b) {
      const auto xb = x.row(b).array();
      auto d = xhat_.row(b).array();                                       // x - mu, then xhat
      const T amax = xb.abs().maxCoeff();
      T k = 1;
      if (std::isfinite(amax) && amax > big) {
        int e = 0;
        std::frexp(amax, &e);
        k = std::ldexp(T(1), -e);
        d = xb * k - xb(0) * k;
      } else {
        d = xb - xb(0);
      }
      // (1) shifted by the row's first element: a constant row gives x - mu = 0 exactly, where
      // mean(x) rounds (float, |x| >= 1e4) and its error would be normalised up to +-1.
      d -= d.mean();                                                       // (1)
      const T var = d.square().mean();                                     // (2) times k^2
      const T den = std::sqrt(var + T(eps_) * k * k);
      if (den == 0) {  // var = 0 and eps k^2 underflowed: x - mu = 0, xhat = 0
        rstd_(b) = T(1) / std::sqrt(T(eps_));                              // (3)
      } else {
        const T rk = T(1) / den;
        rstd_(b) = rk * k;                                                 // (3)
        d *= rk;                                                           // (4)
      }
    }
    if (affine_) {
      y_ = (xhat_.array().rowwise() * gamma_.row(0).array()).rowwise() + beta_.row(0).array();  // (5)
    } else {
      y_ = xhat_;
    }
    return y_;
  }

  const Matrix<T>& backward(const ConstRef<T>& dy) override {
    detail::require_forward(xhat_.cols() == F_, "LayerNorm");
    detail::check_shape("LayerNorm", "gradient", dy, xhat_.rows(), F_);
    const Index B = dy.rows();
    if (affine_) {
      dgamma_.row(0) += dy.cwiseProduct(xhat_).colwise().sum();  // d(5) wrt gamma
      dbeta_.row(0) += dy.colwise().sum();                        // d(5) wrt beta
    }
    // d(5) wrt xhat, built in dx_'s storage (no per-row temporaries), then d(1)-(4) wrt x
    // folded into the standard closed form, row by row:
    //   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat .* xhat))
    dx_.resize(B, F_);
    if (affine_) dx_ = dy.array().rowwise() * gamma_.row(0).array();
    else dx_ = dy;
    const T inv_f = T(1) / static_cast<T>(F_);
    for (Index b = 0; b < B; ++b) {
      auto dxhat = dx_.row(b).array();
      const T m1 = dxhat.sum() * inv_f;
      const T m2 = dx_.row(b).dot(xhat_.row(b)) * inv_f;
      dxhat = rstd_(b) * (dxhat - m1 - xhat_.row(b).array() * m2);
    }
    return dx_;
  }

  std::vector<Parameter<T>> local_parameters() override {
    if (!affine_) return {};
    return {vector_parameter("weight", &gamma_, &dgamma_), vector_parameter("bias", &beta_, &dbeta_)};
  }
  std::string name() const override { return "LayerNorm"; }
  std::string extra_repr() const override {
    std::ostringstream s;  // (a chain of string + here trips g++ 12's -Wrestrict false positive)
    s << '(' << F_ << "), eps=" << eps_ << ", elementwise_affine=" << (affine_ ? "true" : "false");
    return s.str();
  }

 private:
  Index F_;
  double eps_;
  bool affine_;
  Matrix<T> gamma_, beta_, dgamma_, dbeta_;  // (1, F)
  Matrix<T> xhat_;                           // (B, F)
  Vector<T> rstd_;                           // (B)
  Matrix<T> y_, dx_;                         // (B, F)
};

}  // namespace heed
