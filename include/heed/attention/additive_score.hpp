#pragma once
// AdditiveScore (Bahdanau): s_ij = v^T tanh(W_q q_i + W_k k_j), learnable W_q (H, dq),
// W_k (H, dk), v (H) stored as (1, H); each U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
//
// Q and K are projected once per sample (A = Q W_q^T, C = K W_k^T); the (Tq, Tk, H) tensor of
// tanh(a_i + c_j) is never stored: forward and backward walk the query rows, each reusing one
// (Tk, H) scratch, and backward recomputes the tanh rather than keeping it.
#include <cmath>
#include <string>
#include <vector>

#include "../core/init.hpp"
#include "../core/module.hpp"
#include "../core/random.hpp"
#include "masks.hpp"

namespace heed {

template <typename T>
class AdditiveScore : public ModuleBase<T> {
 public:
  static constexpr const char* kName = "Additive";
  std::string name() const override { return kName; }

  AdditiveScore(Index query_dim, Index key_dim, Index hidden, Generator& gen = default_generator())
      : dq_(query_dim), dk_(key_dim), H_(hidden) {
    detail::require(dq_ > 0 && dk_ > 0 && H_ > 0, "AdditiveScore",
                    "query_dim, key_dim and hidden must be positive, got " + std::to_string(dq_) +
                        ", " + std::to_string(dk_) + " and " + std::to_string(H_));
    Wq_.resize(H_, dq_);  // (H, dq)
    Wk_.resize(H_, dk_);  // (H, dk)
    v_.resize(1, H_);     // (1, H)
    for (Matrix<T>* m : {&Wq_, &Wk_, &v_}) {  // in state_dict order; fan_in = cols
      const double bound = init::linear_bound(init::fan_in(*m));
      init::uniform_(*m, -bound, bound, gen);
    }
    dWq_ = Matrix<T>::Zero(H_, dq_);
    dWk_ = Matrix<T>::Zero(H_, dk_);
    dv_ = Matrix<T>::Zero(1, H_);
  }

  void check(const std::string& who, Index dq, Index dk) const {
    detail::check_score_widths(who, "additive", dq, dk, dq_, dk_);
  }

  void forward(const ConstRef<T>& Q, const ConstRef<T>& K, Eigen::Ref<Matrix<T>> S) {
    project(Q, K);
    hid_.resize(K.rows(), H_);
    for (Index i = 0; i < Q.rows(); ++i) {
      hid_ = (C_.rowwise() + A_.row(i)).array().tanh().matrix();  // (3) h_ij = tanh(a_i + c_j)
      S.row(i).noalias() = v_ * hid_.transpose();                  // (4) s_ij = v . h_ij
    }
  }

  void backward(const ConstRef<T>& Q, const ConstRef<T>& K, const ConstRef<T>& dS,
                Eigen::Ref<Matrix<T>> dQ, Eigen::Ref<Matrix<T>> dK) {
    project(Q, K);  // recompute (1), (2)
    hid_.resize(K.rows(), H_);
    dA_.resize(Q.rows(), H_);
    dC_.resize(K.rows(), H_);
    dC_.setZero();
    for (Index i = 0; i < Q.rows(); ++i) {
      hid_ = (C_.rowwise() + A_.row(i)).array().tanh().matrix();  // recompute (3)   (Tk, H)
      dv_.noalias() += dS.row(i) * hid_;                           // d of (4) wrt v: (1,Tk)(Tk,H)
      // d of (4) then (3): g_ij = ds_ij v (1 - h_ij^2), in place in hid_
      hid_.array() = T(1) - hid_.array().square();
      hid_.array().colwise() *= dS.row(i).transpose().array();
      hid_.array().rowwise() *= v_.row(0).array();
      dA_.row(i) = hid_.colwise().sum();  // a_i feeds every pair (i, j)
      dC_ += hid_;                        // c_j feeds every pair (i, j)
    }
    dWq_.noalias() += dA_.transpose() * Q;  // d of (1) wrt W_q: (H, Tq)(Tq, dq)
    dQ.noalias() = dA_ * Wq_;               // d of (1) wrt Q:   (Tq, H)(H, dq)
    dWk_.noalias() += dC_.transpose() * K;  // d of (2) wrt W_k: (H, Tk)(Tk, dk)
    dK.noalias() = dC_ * Wk_;               // d of (2) wrt K:   (Tk, H)(H, dk)
  }

  std::vector<Parameter<T>> local_parameters() override {
    return {{"W_q", &Wq_, &dWq_}, {"W_k", &Wk_, &dWk_}, {"v", &v_, &dv_}};
  }

  Index hidden_size() const { return H_; }

 private:
  void project(const ConstRef<T>& Q, const ConstRef<T>& K) {
    A_.resize(Q.rows(), H_);
    A_.noalias() = Q * Wq_.transpose();  // (1) A = Q W_q^T   (Tq, H)
    C_.resize(K.rows(), H_);
    C_.noalias() = K * Wk_.transpose();  // (2) C = K W_k^T   (Tk, H)
  }

  Index dq_, dk_, H_;
  Matrix<T> Wq_, dWq_;  // (H, dq)
  Matrix<T> Wk_, dWk_;  // (H, dk)
  Matrix<T> v_, dv_;    // (1, H)
  Matrix<T> A_, dA_;    // (Tq, H) per-sample scratch
  Matrix<T> C_, dC_;    // (Tk, H) per-sample scratch
  Matrix<T> hid_;       // (Tk, H) per-query-row scratch
};

}  // namespace heed
