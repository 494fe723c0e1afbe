#pragma once
// Attention masks, PyTorch semantics, and the masked softmax shared by every attention path.
//
//   key_padding_mask  (B, Tk)  bool, true = this key is padding: no query of sample b attends to it
//   attn_mask         (Tq, Tk) bool, true = query i may NOT attend to key j (same for all samples)
//   attn_bias         (Tq, Tk) float, added to the scores (PyTorch's float attn_mask; -inf masks)
//   is_causal                  query i attends to keys j <= i (top-left aligned when Tq != Tk,
//                              as torch.nn.functional.scaled_dot_product_attention)
//
// Masks are passed by pointer so a call reads like
//   att.forward(q, k, v, B, {.key_padding_mask = &pad, .is_causal = true});
// and a temporary cannot dangle. A query row whose keys are all masked gets zero weights and a
// zero context (PyTorch returns NaN there), so padded queries never poison a batch.
#include <cmath>
#include <limits>
#include <string>
#include <string_view>

#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace heed {

template <typename T>
struct AttentionMasks {
  const BoolMatrix* key_padding_mask = nullptr;  // (B, Tk)  true = ignore key
  const BoolMatrix* attn_mask = nullptr;         // (Tq, Tk) true = not allowed
  const Matrix<T>* attn_bias = nullptr;          // (Tq, Tk) additive float mask
  bool is_causal = false;

  bool any() const { return key_padding_mask || attn_mask || attn_bias || is_causal; }
};

// lengths (B) -> key_padding_mask (B, T): entry (b, t) is true (padding) for t >= lengths[b].
// The mask of a padded batch whose sample b holds lengths[b] valid steps; ValueError for a
// length outside [0, T].
inline BoolMatrix key_padding_mask(const LabelsRef& lengths, Index T) {
  if (T < 0) throw ValueError("key_padding_mask: T must be >= 0, got " + std::to_string(T));
  BoolMatrix m(lengths.size(), T);
  for (Index b = 0; b < lengths.size(); ++b) {
    if (lengths(b) < 0 || lengths(b) > T)
      throw ValueError("key_padding_mask: lengths[" + std::to_string(b) + "] = " +
                       std::to_string(lengths(b)) + " out of range [0, " + std::to_string(T) + "]");
    for (Index t = 0; t < T; ++t) m(b, t) = t >= lengths(b);
  }
  return m;
}

namespace detail {

template <typename T>
inline constexpr T kNegInf = -std::numeric_limits<T>::infinity();

template <typename T>
void validate_masks(std::string_view who, const AttentionMasks<T>& m, Index B, Index Tq,
                    Index Tk) {
  if (m.key_padding_mask) check_shape(who, "key_padding_mask", *m.key_padding_mask, B, Tk);
  if (m.attn_mask) check_shape(who, "attn_mask", *m.attn_mask, Tq, Tk);
  if (m.attn_bias) check_shape(who, "attn_bias", *m.attn_bias, Tq, Tk);
}

// Applies the masks of sample b to the score tile S = scores[i0 : i0+rows, j0 : j0+cols]:
// adds attn_bias, sets not-allowed entries to -inf (exp(-inf) = 0 drops them from the softmax).
template <typename T>
void apply_masks(const AttentionMasks<T>& m, Index b, Index i0, Index j0,
                 Eigen::Ref<Matrix<T>> S) {
  const Index rows = S.rows(), cols = S.cols();
  if (m.attn_bias) S += m.attn_bias->block(i0, j0, rows, cols);
  if (m.attn_mask) {
    for (Index r = 0; r < rows; ++r)
      for (Index c = 0; c < cols; ++c)
        if ((*m.attn_mask)(i0 + r, j0 + c)) S(r, c) = kNegInf<T>;
  }
  if (m.key_padding_mask) {
    for (Index c = 0; c < cols; ++c)
      if ((*m.key_padding_mask)(b, j0 + c)) S.col(c).setConstant(kNegInf<T>);
  }
  if (m.is_causal) {
    for (Index r = 0; r < rows; ++r) {
      const Index first = i0 + r + 1 - j0;  // first masked column of this row: key j > i
      if (first < cols) S.row(r).tail(cols - std::max<Index>(first, 0)).setConstant(kNegInf<T>);
    }
  }
}

// exp(s - shift) with exact zeros for masked (-inf) entries: Eigen's vectorised exp clamps its
// argument, so exp(-inf) would come out as a tiny nonzero instead of 0. A functor with a packet
// path, because Eigen 3.4's select() is scalar-only: with it the exp ran ~5x slower and was
// half the fused kernel's time.
template <typename T>
struct MaskedExpOp {
  T shift;
  T operator()(const T& s) const { return s == kNegInf<T> ? T(0) : std::exp(s - shift); }
  template <class Packet>
  Packet packetOp(const Packet& s) const {
    using namespace Eigen::internal;
    const Packet e = pexp(psub(s, pset1<Packet>(shift)));
    return pandnot(e, pcmp_eq(s, pset1<Packet>(kNegInf<T>)));  // e where s != -inf, else 0
  }
};

template <typename T, class Block>
void masked_exp_inplace(Block&& block, T shift) {
  block = block.unaryExpr(MaskedExpOp<T>{shift});
}

// In place, row by row: P = softmax(S) with -inf entries -> 0 and all -inf rows -> all 0.
// The exact rule, shared with the fused kernel: a row gets zero weights only when every entry
// is -inf; a row holding a NaN or a +inf is all NaN (the max propagates NaN, so a NaN beside
// -inf entries cannot be taken for a masked row); any other row is an ordinary softmax, also
// when all its entries are finite but very negative (a -1e9 bias): uniform over equal values.
template <typename T>
void masked_softmax_rows(Eigen::Ref<Matrix<T>> S) {
  for (Index i = 0; i < S.rows(); ++i) {
    const T mx = S.row(i).template maxCoeff<Eigen::PropagateNaN>();
    if (mx == kNegInf<T>) {  // every key masked: no attention at all, not NaN
      S.row(i).setZero();
      continue;
    }
    if (!std::isfinite(mx)) {  // NaN or +inf score: softmax undefined
      S.row(i).setConstant(std::numeric_limits<T>::quiet_NaN());
      continue;
    }
    masked_exp_inplace<T>(S.row(i), mx);  // subtract max: no overflow
    S.row(i) /= S.row(i).sum();
  }
}

// d of: P = softmax(S) row-wise.  In place: dP -> dS = P .* (dP - rowsum(dP .* P)).
// Masked entries have P = 0, so their score gradient is 0.
template <typename T>
void masked_softmax_backward_rows(const Eigen::Ref<const Matrix<T>>& P, Eigen::Ref<Matrix<T>> dP) {
  for (Index i = 0; i < P.rows(); ++i) {
    const T dot = dP.row(i).dot(P.row(i));
    dP.row(i) = (P.row(i).array() * (dP.row(i).array() - dot)).matrix();
  }
}

// Shared input validation of the 3-input attention entry points.
//   queries (B*Tq, *), keys (B*Tk, *), values (B*Tk, *)  ->  sets Tq, Tk.
inline void check_qkv_rows(std::string_view who, Index q_rows, Index k_rows, Index v_rows,
                           Index B, Index& Tq, Index& Tk) {
  check_batch_rows(who, "queries", q_rows, B);
  check_batch_rows(who, "keys", k_rows, B);
  if (v_rows != k_rows)
    throw ShapeError(std::string(who) + ": values expected " + std::to_string(k_rows) +
                     " rows (as keys), got " + std::to_string(v_rows));
  Tq = q_rows / B;
  Tk = k_rows / B;
}

// The ShapeErrors of Score::check (dot_product_score.hpp), one wording for every score.
// A score with weights takes the widths it was built for:
inline void check_score_widths(std::string_view who, const char* score, Index dq, Index dk,
                               Index want_dq, Index want_dk) {
  if (dq != want_dq || dk != want_dk)
    throw ShapeError(std::string(who) + ": " + score + " score expects queries of width " +
                     std::to_string(want_dq) + " and keys of width " + std::to_string(want_dk) +
                     ", got " + std::to_string(dq) + " and " + std::to_string(dk));
}
// and a score without takes queries and keys of one width:
// Keys of width 0 are refused: the default scale 1/sqrt(0) would make every score NaN.
inline void check_equal_widths(std::string_view who, const char* score, Index dq, Index dk) {
  if (dk == 0)
    throw ShapeError(std::string(who) + ": " + score + " score needs keys of positive width");
  if (dq != dk)
    throw ShapeError(std::string(who) + ": " + score +
                     " score needs queries and keys of equal width, got " + std::to_string(dq) +
                     " and " + std::to_string(dk));
}

}  // namespace detail
}  // namespace heed

template <typename T>
struct Eigen::internal::functor_traits<heed::detail::MaskedExpOp<T>> {
  enum {
    Cost = functor_traits<scalar_exp_op<T>>::Cost + 2 * NumTraits<T>::AddCost,
    PacketAccess = packet_traits<T>::HasExp && packet_traits<T>::HasCmp
  };
};
