#pragma once
// Attention<T, Score>: softmax attention with a pluggable score function.
//
//   S_b = score(Q_b, K_b)               (Tq, Tk)  per sample b, masks applied
//   P_b = softmax(S_b) row-wise         (Tq, Tk)  = weights(), what each query looked at
//   C_b = dropout(P_b) V_b              (Tq, dv)  = the context returned by forward
//
// Batch-first as everywhere in heed: queries (B*Tq, dq), keys (B*Tk, dk), values (B*Tk, dv),
// sample b's rows contiguous. It takes three inputs, so it is a ModuleBase<T> (parameters,
// zero_grad, train/eval) rather than a single-input Module<T>.
// weights() are the softmax probabilities *before* dropout (PyTorch returns them after).
#include <string>
#include <vector>

#include "../core/module.hpp"
#include "../core/parallel.hpp"
#include "../core/random.hpp"
#include "../layers/dropout.hpp"
#include "masks.hpp"
#include "scaled_dot_product_score.hpp"

namespace heed {

// Gradients returned by the 3-input attention modules: auto [dq, dk, dv] = att.backward(dc);
// When the same matrix was passed as queries, keys and values (self-attention), its gradient
// is dq + dk + dv: summing them is the caller's job.
namespace detail {
// Score::kStateless, false when the score does not declare it.
template <class S>
inline constexpr bool score_is_stateless = requires { requires S::kStateless; };
}  // namespace detail

template <typename T>
struct AttentionGrads {
  const Matrix<T>& dquery;
  const Matrix<T>& dkey;
  const Matrix<T>& dvalue;
};

template <typename T, template <typename> class Score = ScaledDotProductScore>
class Attention : public ModuleBase<T> {
 public:
  using ScoreType = Score<T>;

  // With dropout > 0 the module owns its dropout stream, seeded by one draw from `gen`;
  // `gen` is not kept (a module built from a local generator must not dangle).
  explicit Attention(Score<T> score = Score<T>(), double dropout = 0.0,
                     Generator& gen = default_generator())
      : score_(std::move(score)), p_(dropout),
        name_(std::string("Attention<") + Score<T>::kName + ">") {
    detail::require(dropout >= 0.0 && dropout < 1.0, name_,
                    "dropout must be in [0, 1), got " + std::to_string(dropout));
    if (p_ > 0.0) gen_.seed(gen.bits());
  }

  // forward      queries (B*Tq, dq), keys (B*Tk, dk), values (B*Tk, dv) -> context (B*Tq, dv)
  const Matrix<T>& forward(const ConstRef<T>& queries, const ConstRef<T>& keys,
                           const ConstRef<T>& values, Index B,
                           const AttentionMasks<T>& masks = {}) {
    const std::string& who = name_;
    detail::check_qkv_rows(who, queries.rows(), keys.rows(), values.rows(), B, Tq_, Tk_);
    score_.check(who, queries.cols(), keys.cols());
    detail::validate_masks(who, masks, B, Tq_, Tk_);
    B_ = B;
    Q_ = queries;  // (B*Tq, dq) kept for backward
    K_ = keys;     // (B*Tk, dk)
    V_ = values;   // (B*Tk, dv)
    const Index dv = values.cols();

    // The dropout mask is drawn first, serially, so the random stream does not depend on the
    // thread count; drawing it before the scores does not change which numbers are drawn.
    dropout_active_ = this->training_ && p_ > 0.0;
    if (dropout_active_) {
      detail::dropout_mask(M_, B * Tq_, Tk_, p_, gen_);  // (B*Tq, Tk): 0 or 1/(1-p)
      Pd_.resize(B * Tq_, Tk_);  // (B*Tq, Tk)
    }
    P_.resize(B * Tq_, Tk_);  // (B*Tq, Tk)
    C_.resize(B * Tq_, dv);   // (B*Tq, dv)
    for_each_sample(2.0 * dv, [&](Index b, Matrix<T>&) {
      auto Sb = P_.middleRows(b * Tq_, Tq_);  // (Tq, Tk)
      score_.forward(Q_.middleRows(b * Tq_, Tq_), K_.middleRows(b * Tk_, Tk_), Sb);  // (1) S
      detail::apply_masks<T>(masks, b, 0, 0, Sb);                                      // (2) mask
      detail::masked_softmax_rows<T>(Sb);  // (3) P = softmax(S)
      auto Cb = C_.middleRows(b * Tq_, Tq_);
      if (dropout_active_) {
        auto Pdb = Pd_.middleRows(b * Tq_, Tq_);
        Pdb = Sb.cwiseProduct(M_.middleRows(b * Tq_, Tq_));  // (4) Pd = P .* M
        Cb.noalias() = Pdb * V_.middleRows(b * Tk_, Tk_);    // (5) C = Pd V   (Tq,Tk)(Tk,dv)
      } else {
        Cb.noalias() = Sb * V_.middleRows(b * Tk_, Tk_);     // (5) C = P V
      }
    });
    return C_;
  }

  // backward     dcontext (B*Tq, dv) -> dquery (B*Tq, dq), dkey (B*Tk, dk), dvalue (B*Tk, dv)
  // and += score-parameter gradients.
  AttentionGrads<T> backward(const ConstRef<T>& dcontext) {
    detail::require_forward(B_ > 0, name_);
    detail::check_shape(name_, "gradient", dcontext, C_.rows(), C_.cols());
    dQ_.resize(Q_.rows(), Q_.cols());
    dK_.resize(K_.rows(), K_.cols());
    dV_.resize(V_.rows(), V_.cols());
    const Matrix<T>& Pused = dropout_active_ ? Pd_ : P_;
    for_each_sample(4.0 * V_.cols(), [&](Index b, Matrix<T>& dP) {
      const auto dC = dcontext.middleRows(b * Tq_, Tq_);  // (Tq, dv)
      const auto Vb = V_.middleRows(b * Tk_, Tk_);        // (Tk, dv)
      dV_.middleRows(b * Tk_, Tk_).noalias() =
          Pused.middleRows(b * Tq_, Tq_).transpose() * dC;  // d of (5) wrt V: (Tk,Tq)(Tq,dv)
      dP.resize(Tq_, Tk_);                                  // (Tq, Tk) per-thread scratch
      dP.noalias() = dC * Vb.transpose();                   // d of (5) wrt Pd: (Tq,dv)(dv,Tk)
      if (dropout_active_) dP.array() *= M_.middleRows(b * Tq_, Tq_).array();  // d of (4)
      detail::masked_softmax_backward_rows<T>(P_.middleRows(b * Tq_, Tq_), dP);  // d of (3)
      // d of (2) is the identity on unmasked entries, and masked ones have dS = 0 already.
      score_.backward(Q_.middleRows(b * Tq_, Tq_), K_.middleRows(b * Tk_, Tk_), dP,
                      dQ_.middleRows(b * Tq_, Tq_), dK_.middleRows(b * Tk_, Tk_));  // d of (1)
    });
    return {dQ_, dK_, dV_};
  }

  // The score is a transparent child: its parameters are the module's own ("W_q", "W_k", "v"
  // for Additive).
  Children<T> children() override { return {{"", &score_}}; }
  std::string name() const override { return name_; }
  std::string extra_repr() const override {
    return p_ > 0.0 ? "dropout=" + detail::num_repr(p_) : std::string();
  }
  Generator* local_generator() override { return p_ > 0.0 ? &gen_ : nullptr; }

  // Attention weights of the last forward, (B*Tq, Tk): row b*Tq + i is how much query i of
  // sample b attended to each key; rows sum to 1 (0 for fully masked rows).
  const Matrix<T>& weights() const { return P_; }
  Score<T>& score() { return score_; }
  double dropout() const { return p_; }
  Generator& generator() { return gen_; }

 private:
  // Runs f(b, scratch) for every sample: on several threads when the score keeps no state
  // (kStateless), else serially (flops 0), with Eigen threading each product. `per_entry` =
  // multiply-adds per (query, key) pair beyond the score, to judge whether threads pay off.
  template <class F>
  void for_each_sample(double per_entry, F&& f) {
    const double flops = per_entry * static_cast<double>(B_ * Tq_) * static_cast<double>(Tk_);
    detail::for_each_slice(B_, detail::score_is_stateless<Score<T>> ? flops : 0.0, dP_, f);
  }

  Score<T> score_;
  double p_;
  std::string name_;  // "Attention<Additive>": built once, not per call
  Generator gen_;     // dropout stream
  bool dropout_active_ = false;
  Index B_ = 0, Tq_ = 0, Tk_ = 0;
  Matrix<T> Q_;       // (B*Tq, dq)
  Matrix<T> K_;       // (B*Tk, dk)
  Matrix<T> V_;       // (B*Tk, dv)
  Matrix<T> P_;       // (B*Tq, Tk) scores, then softmax weights
  Matrix<T> M_;       // (B*Tq, Tk) dropout mask, only in training with dropout > 0
  Matrix<T> Pd_;      // (B*Tq, Tk) dropped-out weights
  Matrix<T> C_;       // (B*Tq, dv)
  std::vector<Matrix<T>> dP_;  // (Tq, Tk) per-thread scratch
  Matrix<T> dQ_;      // (B*Tq, dq)
  Matrix<T> dK_;      // (B*Tk, dk)
  Matrix<T> dV_;      // (B*Tk, dv)
};

}  // namespace heed
