#pragma once
// Fused, memory-efficient scaled dot-product attention (FlashAttention, Dao et al. 2022, on CPU).
//
// Forward walks key tiles with an online softmax: per query row it keeps the running max m and
// running sum l, rescaling the partial output whenever m grows, so the (Tq, Tk) score matrix is
// never formed. Only the per-row log-sum-exp L_i = m_i + log l_i is kept for backward, which
// recomputes each score tile as P = exp(S - L) and uses D_i = rowsum(dO_i .* O_i), the
// softmax-backward term rowsum(dP_i .* P_i) in disguise. Extra memory: O(B*Tq) plus two
// (tile, tile) scratch tiles. With is_causal, key tiles wholly right of the diagonal are skipped.
//
// Same masks and results as Attention<T, ScaledDotProductScore>, with its exact masked-row rule
// (all -inf rows -> 0, rows with a NaN or +inf score -> NaN, see online_softmax_step), but no
// dropout and no weights (use the plain path when you need either).
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "../core/module.hpp"
#include "../core/parallel.hpp"
#include "attention.hpp"
#include "masks.hpp"

namespace heed {

namespace detail {

template <typename T>
struct FlashScratch {
  Matrix<T> S;   // (tile, tile) score / probability tile
  Matrix<T> dP;  // (tile, tile) dP, then dS
  Vector<T> m;   // (tile) running row max
  Vector<T> l;   // (tile) running row sum
  Vector<T> D;   // (tile) rowsum(dO .* O)
  void reserve(Index tile) {
    S.resize(tile, tile);
    dP.resize(tile, tile);
    m.resize(tile);
    l.resize(tile);
    D.resize(tile);
  }
};

// The exact masked-row rule of masked_softmax_rows (masks.hpp), online: a row is "fully
// masked" (zero output, L = -inf) only when every score is -inf; a NaN or +inf score makes the
// row NaN (L = NaN); any other row is an ordinary softmax, also when all its scores are
// finite but very negative (a -1e9 bias).
template <typename T>
inline constexpr T kNaN = std::numeric_limits<T>::quiet_NaN();

// One online-softmax step over a masked score tile S (br, bc): updates the running max m and
// sum l of each row and turns S into P~ = exp(S - m_new); rescale(r, alpha) is called for each
// row whose earlier partials must be multiplied by alpha. The max propagates NaN, and a NaN m
// sticks (so a NaN next to -inf entries, or in an earlier tile, is never taken for masking).
template <typename T, class Rescale>
void online_softmax_step(Eigen::Ref<Matrix<T>> S, Eigen::Ref<Vector<T>> m,
                         Eigen::Ref<Vector<T>> l, Rescale&& rescale) {
  for (Index r = 0; r < S.rows(); ++r) {
    const T rmax = S.row(r).template maxCoeff<Eigen::PropagateNaN>();
    const T m_new = (std::isnan(m(r)) || rmax <= m(r)) ? m(r) : rmax;  // NaN-propagating max
    if (m_new == kNegInf<T>) {  // everything so far masked: nothing to add
      S.row(r).setZero();
      continue;
    }
    const T alpha = std::exp(m(r) - m_new);  // rescale old partials (0 when m was -inf)
    masked_exp_inplace<T>(S.row(r), m_new);  // (3) P~ = exp(S - m_new)
    l(r) = alpha * l(r) + S.row(r).sum();    // (4) l = alpha l + rowsum P~
    rescale(r, alpha);
    m(r) = m_new;
  }
}

// Masked, scaled score tile S = (Q[i0:i0+br] K[j0:j0+bc]^T) * scale, as forward and backward
// both compute it (the same bits).
template <typename T>
void flash_scores(const ConstRef<T>& Q, const ConstRef<T>& K, T scale,
                  const AttentionMasks<T>& masks, Index b, Index i0, Index j0,
                  Eigen::Ref<Matrix<T>> S) {
  S.noalias() = Q.middleRows(i0, S.rows()) * K.middleRows(j0, S.cols()).transpose();  // (1)
  S *= scale;                                                                          //  * scale
  apply_masks<T>(masks, b, i0, j0, S);                                                 // (2) mask
}

// One (sample, head) slice.  Q (Tq, d), K (Tk, d), V (Tk, dv) -> O (Tq, dv), lse (Tq).
// `b` selects the sample's row of key_padding_mask.
template <typename T>
void flash_forward(const ConstRef<T>& Q, const ConstRef<T>& K, const ConstRef<T>& V, T scale,
                   const AttentionMasks<T>& masks, Index b, Index tile, Eigen::Ref<Matrix<T>> O,
                   Eigen::Ref<Vector<T>> lse, FlashScratch<T>& s) {
  const Index Tq = Q.rows(), Tk = K.rows();
  s.reserve(tile);
  for (Index i0 = 0; i0 < Tq; i0 += tile) {
    const Index br = std::min(tile, Tq - i0);
    auto Oi = O.middleRows(i0, br);  // (br, dv) accumulates unnormalised output
    Oi.setZero();
    auto m = s.m.head(br);
    auto l = s.l.head(br);
    m.setConstant(kNegInf<T>);
    l.setZero();
    for (Index j0 = 0; j0 < Tk; j0 += tile) {
      if (masks.is_causal && j0 > i0 + br - 1) break;  // whole tile above the diagonal
      const Index bc = std::min(tile, Tk - j0);
      auto S = s.S.topLeftCorner(br, bc);
      flash_scores<T>(Q, K, scale, masks, b, i0, j0, S);  // (1), (2)
      online_softmax_step<T>(S, m, l, [&](Index r, T alpha) { Oi.row(r) *= alpha; });  // (3)-(5)
      Oi.noalias() += S * V.middleRows(j0, bc);  // (5) O = alpha O + P~ V   (br, bc)(bc, dv)
    }
    for (Index r = 0; r < br; ++r) {
      if (m(r) == kNegInf<T>) {  // fully masked row: zero output, L = -inf
        Oi.row(r).setZero();
        lse(i0 + r) = kNegInf<T>;
      } else if (!std::isfinite(m(r)) || std::isnan(l(r))) {  // a NaN or +inf score: NaN row
        Oi.row(r).setConstant(kNaN<T>);
        lse(i0 + r) = kNaN<T>;
      } else {
        Oi.row(r) /= l(r);                    // (6) O = O / l
        lse(i0 + r) = m(r) + std::log(l(r));  // (7) L = m + log l
      }
    }
  }
}

// Backward recomputes P = exp(S - L). L = m + log l keeps log l only to ulp(L): for |L| above
// this, P's relative error (|L| eps / 2) would pass the fused-vs-plain tolerance, and for a
// row masked by a -1e9 bias log l is lost altogether (P = 1 instead of 1/Tk). Query tiles with
// such a row first recompute the exact m and l (one extra pass, only for those tiles) and use
// P = exp(S - m) / l, as the plain path does.
template <typename T>
inline constexpr T kFlashExactLse = T(64);
// Backward of one slice: dO (Tq, dv) -> dQ (Tq, d), dK (Tk, d), dV (Tk, dv), overwritten.
template <typename T>
void flash_backward(const ConstRef<T>& Q, const ConstRef<T>& K, const ConstRef<T>& V,
                    const ConstRef<T>& O, const Eigen::Ref<const Vector<T>>& lse,
                    const ConstRef<T>& dO, T scale, const AttentionMasks<T>& masks, Index b,
                    Index tile, Eigen::Ref<Matrix<T>> dQ, Eigen::Ref<Matrix<T>> dK,
                    Eigen::Ref<Matrix<T>> dV, FlashScratch<T>& s) {
  const Index Tq = Q.rows(), Tk = K.rows();
  s.reserve(tile);
  dQ.setZero();
  dK.setZero();
  dV.setZero();
  for (Index i0 = 0; i0 < Tq; i0 += tile) {
    const Index br = std::min(tile, Tq - i0);
    const auto Qi = Q.middleRows(i0, br);    // (br, d)
    const auto dOi = dO.middleRows(i0, br);  // (br, dv)
    auto D = s.D.head(br);
    D = dOi.cwiseProduct(O.middleRows(i0, br)).rowwise().sum();  // D_i = rowsum(dO .* O)
    auto shift = s.m.head(br);  // per row: P = exp(S - shift) * mul
    auto mul = s.l.head(br);
    bool exact = false;
    for (Index r = 0; r < br; ++r) {
      const T L = lse(i0 + r);
      exact = exact || (std::isfinite(L) && std::abs(L) > kFlashExactLse<T>);
    }
    if (exact) {  // uncommon: recompute m and l of this query tile exactly as forward did
      shift.setConstant(kNegInf<T>);
      mul.setZero();
      for (Index j0 = 0; j0 < Tk; j0 += tile) {
        if (masks.is_causal && j0 > i0 + br - 1) break;
        auto S = s.S.topLeftCorner(br, std::min(tile, Tk - j0));
        flash_scores<T>(Q, K, scale, masks, b, i0, j0, S);
        online_softmax_step<T>(S, shift, mul, [](Index, T) {});
      }
    }
    for (Index r = 0; r < br; ++r) {
      const T L = lse(i0 + r);
      if (exact && std::isfinite(L) && std::abs(L) > kFlashExactLse<T>) {
        mul(r) = T(1) / mul(r);  // shift(r) = m
      } else {
        shift(r) = L;
        mul(r) = T(1);
      }
    }
    for (Index j0 = 0; j0 < Tk; j0 += tile) {
      if (masks.is_causal && j0 > i0 + br - 1) break;
      const Index bc = std::min(tile, Tk - j0);
      const auto Kj = K.middleRows(j0, bc);  // (bc, d)
      const auto Vj = V.middleRows(j0, bc);  // (bc, dv)
      auto P = s.S.topLeftCorner(br, bc);
      flash_scores<T>(Q, K, scale, masks, b, i0, j0, P);  // recompute (1), (2)
      for (Index r = 0; r < br; ++r) {  // P = exp(S - L): the final softmax, no renormalising
        const T L = lse(i0 + r);
        if (L == kNegInf<T>) {
          P.row(r).setZero();  // fully masked row
        } else if (std::isnan(L)) {
          P.row(r).setConstant(kNaN<T>);  // NaN row, as the plain path's weights
        } else {
          masked_exp_inplace<T>(P.row(r), shift(r));
          if (mul(r) != T(1)) P.row(r) *= mul(r);
        }
      }
      dV.middleRows(j0, bc).noalias() += P.transpose() * dOi;  // d of (5) wrt V: (bc,br)(br,dv)
      auto dS = s.dP.topLeftCorner(br, bc);
      dS.noalias() = dOi * Vj.transpose();                 // d of (5) wrt P: (br,dv)(dv,bc)
      dS.array() = P.array() * (dS.array().colwise() - D.array());  // d of softmax: P (dP - D)
      dS *= scale;                                         // d of (1) through "* scale"
      dQ.middleRows(i0, br).noalias() += dS * Kj;             // (br,bc)(bc,d)
      dK.middleRows(j0, bc).noalias() += dS.transpose() * Qi;  // (bc,br)(br,d)
    }
  }
}

}  // namespace detail

// FusedAttention<T>: batched scaled dot-product attention through the tiled kernel.
//   forward(queries (B*Tq, d), keys (B*Tk, d), values (B*Tk, dv), B, masks) -> (B*Tq, dv)
//   backward(dout (B*Tq, dv)) -> {dquery, dkey, dvalue}
template <typename T>
class FusedAttention : public ModuleBase<T> {
 public:

  explicit FusedAttention(std::optional<double> scale = std::nullopt, Index tile = 128)
      : scale_(scale), tile_(tile) {
    detail::require(tile > 0, "FusedAttention",
                    "tile must be positive, got " + std::to_string(tile));
    if (scale_ && !std::isfinite(*scale_))
      throw ValueError("FusedAttention: scale must be finite");
  }

  const Matrix<T>& forward(const ConstRef<T>& queries, const ConstRef<T>& keys,
                           const ConstRef<T>& values, Index B,
                           const AttentionMasks<T>& masks = {}) {
    const char* who = "FusedAttention";
    detail::check_qkv_rows(who, queries.rows(), keys.rows(), values.rows(), B, Tq_, Tk_);
    if (keys.cols() == 0)  // the default scale 1/sqrt(0) would make every score NaN
      throw ShapeError(std::string(who) + ": keys must have positive width");
    if (queries.cols() != keys.cols())
      throw ShapeError(std::string(who) + ": queries and keys must have equal width, got " +
                       std::to_string(queries.cols()) + " and " + std::to_string(keys.cols()));
    detail::validate_masks(who, masks, B, Tq_, Tk_);
    B_ = B;
    masks_ = masks;  // pointers: the mask matrices must outlive backward
    Q_ = queries;    // (B*Tq, d)
    K_ = keys;       // (B*Tk, d)
    V_ = values;     // (B*Tk, dv)
    O_.resize(B * Tq_, values.cols());  // (B*Tq, dv)
    lse_.resize(B * Tq_);               // (B*Tq)
    const T s = scale(keys.cols());
    detail::for_each_slice(B, flops(), scratch_, [&](Index b, detail::FlashScratch<T>& sc) {
      detail::flash_forward<T>(Q_.middleRows(b * Tq_, Tq_), K_.middleRows(b * Tk_, Tk_),
                               V_.middleRows(b * Tk_, Tk_), s, masks_, b, tile_,
                               O_.middleRows(b * Tq_, Tq_), lse_.segment(b * Tq_, Tq_), sc);
    });
    return O_;
  }

  AttentionGrads<T> backward(const ConstRef<T>& dout) {
    detail::require_forward(B_ > 0, "FusedAttention");
    detail::check_shape("FusedAttention", "gradient", dout, O_.rows(), O_.cols());
    dQ_.resize(Q_.rows(), Q_.cols());
    dK_.resize(K_.rows(), K_.cols());
    dV_.resize(V_.rows(), V_.cols());
    const T s = scale(K_.cols());
    detail::for_each_slice(B_, 2 * flops(), scratch_, [&](Index b, detail::FlashScratch<T>& sc) {
      detail::flash_backward<T>(
          Q_.middleRows(b * Tq_, Tq_), K_.middleRows(b * Tk_, Tk_), V_.middleRows(b * Tk_, Tk_),
          O_.middleRows(b * Tq_, Tq_), lse_.segment(b * Tq_, Tq_), dout.middleRows(b * Tq_, Tq_),
          s, masks_, b, tile_, dQ_.middleRows(b * Tq_, Tq_), dK_.middleRows(b * Tk_, Tk_),
          dV_.middleRows(b * Tk_, Tk_), sc);
    });
    return {dQ_, dK_, dV_};
  }

  T scale(Index d) const {
    return static_cast<T>(scale_ ? *scale_ : 1.0 / std::sqrt(static_cast<double>(d)));
  }
  // Per-row log-sum-exp of the masked, scaled scores, (B*Tq); -inf for fully masked rows.
  const Vector<T>& logsumexp() const { return lse_; }
  Index tile() const { return tile_; }
  std::string name() const override { return "FusedAttention"; }

 private:
  // Multiply-adds of one forward, to decide whether threads pay off.
  double flops() const {
    return 2.0 * static_cast<double>(B_ * Tq_) * static_cast<double>(Tk_) *
           static_cast<double>(Q_.cols() + V_.cols());
  }

  std::optional<double> scale_;
  Index tile_;
  Index B_ = 0, Tq_ = 0, Tk_ = 0;
  AttentionMasks<T> masks_;
  Matrix<T> Q_;    // (B*Tq, d)
  Matrix<T> K_;    // (B*Tk, d)
  Matrix<T> V_;    // (B*Tk, dv)
  Matrix<T> O_;    // (B*Tq, dv)
  Vector<T> lse_;  // (B*Tq)
  Matrix<T> dQ_;   // (B*Tq, d)
  Matrix<T> dK_;   // (B*Tk, d)
  Matrix<T> dV_;   // (B*Tk, dv)
  std::vector<detail::FlashScratch<T>> scratch_;  // one per thread
};

}  // namespace heed
