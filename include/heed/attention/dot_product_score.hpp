#pragma once
// Score policies for Attention<T, Score>. A score maps one sample's queries Q (Tq, dq) and keys
// K (Tk, dk) to scores S (Tq, Tk); its backward maps dS to dQ, dK and accumulates (+=) the
// gradients of its own parameters. The interface every score implements:
//
//   static constexpr const char* kName;                         // "DotProduct", ...
//   void check(const std::string& who, Index dq, Index dk);     // throws ShapeError
//   void forward(Q, K, Ref<Matrix<T>> S);                       // S  = score(Q, K)
//   void backward(Q, K, dS, Ref<Matrix<T>> dQ, Ref<Matrix<T>> dK);  // dQ, dK overwritten
//   a ModuleBase<T>: name() and local_parameters() (the score's learnable tensors);
//   static constexpr bool kStateless;   // optional, default false: true when forward/backward
//                                       // touch no member (no scratch, no gradients), so
//                                       // Attention may run samples on several threads
//
// DotProductScore: S = Q K^T (Luong "dot"). Needs dq == dk; no parameters.
#include <string>
#include <vector>

#include "../core/module.hpp"
#include "masks.hpp"

namespace heed {

template <typename T>
class DotProductScore : public ModuleBase<T> {
 public:
  static constexpr const char* kName = "DotProduct";
  std::string name() const override { return kName; }
  static constexpr bool kStateless = true;

  void check(const std::string& who, Index dq, Index dk) const {
    detail::check_equal_widths(who, "dot-product", dq, dk);
  }

  void forward(const ConstRef<T>& Q, const ConstRef<T>& K, Eigen::Ref<Matrix<T>> S) {
    S.noalias() = Q * K.transpose();  // (1) S = Q K^T          (Tq, Tk)
  }

  void backward(const ConstRef<T>& Q, const ConstRef<T>& K, const ConstRef<T>& dS,
                Eigen::Ref<Matrix<T>> dQ, Eigen::Ref<Matrix<T>> dK) {
    dQ.noalias() = dS * K;               // d of (1) wrt Q: (Tq, Tk)(Tk, d)
    dK.noalias() = dS.transpose() * Q;   // d of (1) wrt K: (Tk, Tq)(Tq, d)
  }

  std::vector<Parameter<T>> local_parameters() override { return {}; }
};

}  // namespace heed
