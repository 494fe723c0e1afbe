#pragma once
// ScaledDotProductScore: S = Q K^T * scale, scale = 1/sqrt(d_k) unless given (Vaswani et al.;
// the scaling keeps the softmax out of saturation as d_k grows). Needs dq == dk; no parameters.
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "../core/module.hpp"
#include "masks.hpp"

namespace heed {

template <typename T>
class ScaledDotProductScore : public ModuleBase<T> {
 public:
  static constexpr const char* kName = "ScaledDotProduct";
  std::string name() const override { return kName; }
  static constexpr bool kStateless = true;

  explicit ScaledDotProductScore(std::optional<double> scale = std::nullopt) : scale_(scale) {
    if (scale_ && !std::isfinite(*scale_))
      throw ValueError("ScaledDotProductScore: scale must be finite");
  }

  void check(const std::string& who, Index dq, Index dk) const {
    detail::check_equal_widths(who, "scaled dot-product", dq, dk);
  }

  // The scale used for keys of width dk.
  T scale(Index dk) const {
    return static_cast<T>(scale_ ? *scale_ : 1.0 / std::sqrt(static_cast<double>(dk)));
  }

  void forward(const ConstRef<T>& Q, const ConstRef<T>& K, Eigen::Ref<Matrix<T>> S) {
    S.noalias() = Q * K.transpose();  // (1) S = Q K^T * scale   (Tq, Tk)
    S *= scale(K.cols());
  }

  void backward(const ConstRef<T>& Q, const ConstRef<T>& K, const ConstRef<T>& dS,
                Eigen::Ref<Matrix<T>> dQ, Eigen::Ref<Matrix<T>> dK) {
    const T s = scale(K.cols());
    dQ.noalias() = dS * K;              // d of (1) wrt Q: (Tq, Tk)(Tk, d) * scale
    dQ *= s;
    dK.noalias() = dS.transpose() * Q;  // d of (1) wrt K: (Tk, Tq)(Tq, d) * scale
    dK *= s;
  }

  std::vector<Parameter<T>> local_parameters() override { return {}; }

 private:
  std::optional<double> scale_;
};

}  // namespace heed
