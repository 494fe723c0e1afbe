#pragma once
// GeneralScore (Luong "general"): s_ij = q_i^T W k_j, i.e. S = (Q W) K^T with learnable W (dq, dk),
// initialised U(-1/sqrt(dk), 1/sqrt(dk)) (fan_in of W k is dk).
#include <cmath>
#include <string>
#include <vector>

#include "../core/init.hpp"
#include "../core/module.hpp"
#include "../core/random.hpp"
#include "masks.hpp"

namespace heed {

template <typename T>
class GeneralScore : public ModuleBase<T> {
 public:
  static constexpr const char* kName = "General";
  std::string name() const override { return kName; }

  GeneralScore(Index query_dim, Index key_dim, Generator& gen = default_generator())
      : dq_(query_dim), dk_(key_dim) {
    detail::require(dq_ > 0 && dk_ > 0, "GeneralScore",
                    "query_dim and key_dim must be positive, got " + std::to_string(dq_) +
                        " and " + std::to_string(dk_));
    W_.resize(dq_, dk_);  // (dq, dk)
    dW_ = Matrix<T>::Zero(dq_, dk_);
    const double bound = init::linear_bound(dk_);
    init::uniform_(W_, -bound, bound, gen);
  }

  void check(const std::string& who, Index dq, Index dk) const {
    detail::check_score_widths(who, "general", dq, dk, dq_, dk_);
  }

  void forward(const ConstRef<T>& Q, const ConstRef<T>& K, Eigen::Ref<Matrix<T>> S) {
    QW_.resize(Q.rows(), dk_);
    QW_.noalias() = Q * W_;             // (1) QW = Q W          (Tq, dk)
    S.noalias() = QW_ * K.transpose();  // (2) S = QW K^T        (Tq, Tk)
  }

  void backward(const ConstRef<T>& Q, const ConstRef<T>& K, const ConstRef<T>& dS,
                Eigen::Ref<Matrix<T>> dQ, Eigen::Ref<Matrix<T>> dK) {
    QW_.resize(Q.rows(), dk_);
    QW_.noalias() = Q * W_;              // recompute (1): cheaper than keeping one per sample
    dK.noalias() = dS.transpose() * QW_; // d of (2) wrt K: (Tk, Tq)(Tq, dk)
    dQW_.resize(Q.rows(), dk_);
    dQW_.noalias() = dS * K;             // d of (2) wrt QW: (Tq, Tk)(Tk, dk)
    dW_.noalias() += Q.transpose() * dQW_;  // d of (1) wrt W: (dq, Tq)(Tq, dk)
    dQ.noalias() = dQW_ * W_.transpose();   // d of (1) wrt Q: (Tq, dk)(dk, dq)
  }

  std::vector<Parameter<T>> local_parameters() override { return {{"W", &W_, &dW_}}; }

  Matrix<T>& weight() { return W_; }  // (dq, dk)

 private:
  Index dq_, dk_;
  Matrix<T> W_, dW_;  // (dq, dk)
  Matrix<T> QW_;      // (Tq, dk) scratch
  Matrix<T> dQW_;     // (Tq, dk) scratch
};

}  // namespace heed
