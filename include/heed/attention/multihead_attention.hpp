#pragma once
// MultiheadAttention<T>: torch.nn.MultiheadAttention with batch_first=True.
//
//   Qp = query W_q^T + b_q        (B*Tq, E)     W_q, W_k, W_v: rows of in_proj_weight (3E, E),
//   Kp = key   W_k^T + b_k        (B*Tk, E)     or q/k/v_proj_weight when kdim or vdim != E
//   Vp = value W_v^T + b_v        (B*Tk, E)
//   head h uses columns [h*hd, (h+1)*hd) of Qp, Kp, Vp, hd = E / num_heads:
//   ctx_h = softmax(Qp_h Kp_h^T / sqrt(hd) + masks) Vp_h   (B*Tq, hd) -> columns of ctx
//   out = ctx W_o^T + b_o         (B*Tq, E)     W_o = out_proj.weight, b_o = out_proj.bias
//
// When need_weights is false (and no dropout is active) heads go through the fused tiled kernel
// (fused_attention.hpp): no (Tq, Tk) matrix is formed. Otherwise the plain path keeps the
// per-head weights (B*H*Tq, Tk) for backward and returns them, averaged over heads by default.
// Differences from PyTorch: is_causal needs no attn_mask (it *is* the mask, top-left aligned);
// fully masked query rows give zeros instead of NaN; returned weights are before dropout; no
// add_bias_kv / add_zero_attn.
//
// Self-attention: pass the same x as query, key and value; its gradient is then
// dquery + dkey + dvalue. SelfAttention<T> (a Module) and heed::Graph sum it for you.
// With requires_input_grad(false), backward returns empty dquery, dkey and dvalue.
#include <cmath>
#include <string>
#include <vector>

#include "../core/gemm.hpp"
#include "../core/init.hpp"
#include "../core/module.hpp"
#include "../core/random.hpp"
#include "../layers/dropout.hpp"
#include "attention.hpp"
#include "fused_attention.hpp"
#include "kv_cache.hpp"
#include "masks.hpp"

namespace heed {

struct MultiheadAttentionOptions {
  double dropout = 0.0;  // on the attention weights, training mode only
  bool bias = true;      // in_proj_bias and out_proj.bias
  Index kdim = 0;        // key features, 0 -> embed_dim
  Index vdim = 0;        // value features, 0 -> embed_dim
};

// Per-call arguments of forward, designated-initializer friendly:
//   mha.forward(q, k, v, B, {.key_padding_mask = &pad, .need_weights = false});
// The four mask fields repeat AttentionMasks on purpose: C++20 designated initializers cannot
// name a base class's members, so deriving from it would break the flat call above.
template <typename T>
struct MultiheadAttentionArgs {
  const BoolMatrix* key_padding_mask = nullptr;  // (B, Tk)  true = ignore key
  const BoolMatrix* attn_mask = nullptr;         // (Tq, Tk) true = not allowed
  const Matrix<T>* attn_bias = nullptr;          // (Tq, Tk) additive float mask
  bool is_causal = false;
  bool need_weights = true;
  bool average_attn_weights = true;

  AttentionMasks<T> masks() const { return {key_padding_mask, attn_mask, attn_bias, is_causal}; }
};

// auto [out, w] = mha.forward(...). weights is (B*Tq, Tk) averaged over heads, (B*H*Tq, Tk)
// per head (row (b*H + h)*Tq + i) with average_attn_weights = false, empty when not requested.
template <typename T>
struct MultiheadAttentionOutput {
  const Matrix<T>& output;
  const Matrix<T>& weights;
};

template <typename T>
class MultiheadAttention : public ModuleBase<T> {
 public:

  MultiheadAttention(Index embed_dim, Index num_heads, MultiheadAttentionOptions opts = {},
                     Generator& gen = default_generator())
      : E_(embed_dim), H_(num_heads), opts_(opts) {
    detail::require(E_ > 0 && H_ > 0, "MultiheadAttention",
                    "embed_dim and num_heads must be positive, got " + std::to_string(E_) +
                        " and " + std::to_string(H_));
    detail::require(E_ % H_ == 0, "MultiheadAttention",
                    "embed_dim " + std::to_string(E_) + " not divisible by num_heads " +
                        std::to_string(H_));
    detail::require(opts.dropout >= 0.0 && opts.dropout < 1.0, "MultiheadAttention",
                    "dropout must be in [0, 1), got " + std::to_string(opts.dropout));
    detail::require(opts.kdim >= 0 && opts.vdim >= 0, "MultiheadAttention",
                    "kdim and vdim must be >= 0, got " + std::to_string(opts.kdim) + " and " +
                        std::to_string(opts.vdim));
    hd_ = E_ / H_;
    kdim_ = opts.kdim ? opts.kdim : E_;
    vdim_ = opts.vdim ? opts.vdim : E_;
    packed_ = kdim_ == E_ && vdim_ == E_;
    // PyTorch: xavier_uniform_ on the in-projection (the packed (3E, E) tensor as a whole),
    // zero biases, out_proj.weight as nn.Linear's default U(+-1/sqrt(E)).
    if (packed_) {
      in_w_.resize(3 * E_, E_);  // (3E, E): fan_in E, fan_out 3E
      init::xavier_uniform_(in_w_, 1.0, gen);
      din_w_ = Matrix<T>::Zero(3 * E_, E_);
    } else {
      q_w_.resize(E_, E_);     // (E, E)
      k_w_.resize(E_, kdim_);  // (E, kdim)
      v_w_.resize(E_, vdim_);  // (E, vdim)
      for (Matrix<T>* w : {&q_w_, &k_w_, &v_w_}) init::xavier_uniform_(*w, 1.0, gen);
      dq_w_ = Matrix<T>::Zero(E_, E_);
      dk_w_ = Matrix<T>::Zero(E_, kdim_);
      dv_w_ = Matrix<T>::Zero(E_, vdim_);
    }
    out_w_.resize(E_, E_);  // (E, E)
    const double bound = init::linear_bound(E_);
    init::uniform_(out_w_, -bound, bound, gen);
    dout_w_ = Matrix<T>::Zero(E_, E_);
    // With dropout the module owns its stream, seeded by one draw after the weights; `gen`
    // is used for initialisation only and not kept.
    if (opts.dropout > 0.0) gen_.seed(gen.bits());
    if (opts.bias) {
      in_b_ = Matrix<T>::Zero(1, 3 * E_);  // (1, 3E)
      din_b_ = Matrix<T>::Zero(1, 3 * E_);
      out_b_ = Matrix<T>::Zero(1, E_);     // (1, E)
      dout_b_ = Matrix<T>::Zero(1, E_);
    }
  }

  // forward  query (B*Tq, E), key (B*Tk, kdim), value (B*Tk, vdim) -> output (B*Tq, E)
  // The mask matrices are read again by backward on the fused path: keep them alive until then.
  MultiheadAttentionOutput<T> forward(const ConstRef<T>& query, const ConstRef<T>& key,
                                      const ConstRef<T>& value, Index B,
                                      const MultiheadAttentionArgs<T>& args = {}) {
    const char* who = "MultiheadAttention";
    detail::check_shape(who, "query", query, -1, E_);
    detail::check_shape(who, "key", key, -1, kdim_);
    detail::check_shape(who, "value", value, -1, vdim_);
    detail::check_qkv_rows(who, query.rows(), key.rows(), value.rows(), B, Tq_, Tk_);
    masks_ = args.masks();
    detail::validate_masks(who, masks_, B, Tq_, Tk_);
    B_ = B;
    const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(hd_)));

    // Inputs kept for the weight gradients. Self-attention (one matrix passed three times)
    // keeps one copy, not three.
    self_ = key.data() == query.data() && value.data() == query.data() &&
            key.rows() == query.rows() && value.rows() == query.rows() &&
            key.cols() == query.cols() && value.cols() == query.cols() &&
            key.outerStride() == query.outerStride() && value.outerStride() == query.outerStride();
    xq_ = query;  // (B*Tq, E)
    if (self_) {
      xk_.resize(0, 0);
      xv_.resize(0, 0);
    } else {
      xk_ = key;    // (B*Tk, kdim)
      xv_ = value;  // (B*Tk, vdim)
    }
    project(xq_, Wq(), 0, Qp_);   // (1) Qp = query W_q^T + b_q   (B*Tq, E)
    project(xk(), Wk(), 1, Kp_);  // (2) Kp = key W_k^T + b_k     (B*Tk, E)
    project(xv(), Wv(), 2, Vp_);  // (3) Vp = value W_v^T + b_v   (B*Tk, E)

    dropout_active_ = this->training_ && opts_.dropout > 0.0;
    fused_ = !args.need_weights && !dropout_active_;
    ctx_.resize(B * Tq_, E_);  // (B*Tq, E) heads side by side
    if (fused_) {
      lse_.resize(B * H_ * Tq_);  // (B*H*Tq)
      P_.resize(0, Tk_);
      // (4) ctx_bh = softmax(Qp_bh Kp_bh^T * scale) Vp_bh, slice i = b*H + h
      detail::for_each_slice(B * H_, flops(), flash_, [&](Index i, detail::FlashScratch<T>& sc) {
        const Index b = i / H_, h = i % H_;
        detail::flash_forward<T>(qh(Qp_, b, h), kh(Kp_, b, h), kh(Vp_, b, h), scale, masks_, b,
                                 kTile, ctx_.block(b * Tq_, h * hd_, Tq_, hd_),
                                 lse_.segment(i * Tq_, Tq_), sc);
      });
    } else {
      P_.resize(B * H_ * Tq_, Tk_);  // (B*H*Tq, Tk)
      if (dropout_active_) {
        detail::dropout_mask(M_, B * H_ * Tq_, Tk_, opts_.dropout, gen_);  // (B*H*Tq, Tk)
        Pd_.resize(B * H_ * Tq_, Tk_);
      }
      // (4) per slice i = b*H + h, one thread per slice
      detail::for_each_slice(B * H_, flops(), dP_, [&](Index i, Matrix<T>&) {
        const Index b = i / H_, h = i % H_;
        auto P = P_.middleRows(i * Tq_, Tq_);                     // (Tq, Tk)
        P.noalias() = qh(Qp_, b, h) * kh(Kp_, b, h).transpose();  // (4a) S = Qp Kp^T * scale
        P *= scale;
        detail::apply_masks<T>(masks_, b, 0, 0, P);  // (4b) masks
        detail::masked_softmax_rows<T>(P);           // (4c) P = softmax(S)
        auto ctx = ctx_.block(b * Tq_, h * hd_, Tq_, hd_);
        if (dropout_active_) {
          auto Pd = Pd_.middleRows(i * Tq_, Tq_);
          Pd = P.cwiseProduct(M_.middleRows(i * Tq_, Tq_));  // (4d) Pd = P .* M
          ctx.noalias() = Pd * kh(Vp_, b, h);                // (4e) ctx = Pd Vp
        } else {
          ctx.noalias() = P * kh(Vp_, b, h);  // (4e) ctx = P Vp   (Tq, Tk)(Tk, hd)
        }
      });
    }
    using detail::Op;
    detail::gemm<T>(out_, ctx_, Op::N, out_w_, Op::T);  // (5) out = ctx W_o^T + b_o    (B*Tq, E)
    if (opts_.bias) out_.rowwise() += out_b_.row(0);

    if (!args.need_weights) {
      weights_.resize(0, 0);
    } else if (args.average_attn_weights) {
      weights_.resize(B * Tq_, Tk_);  // (B*Tq, Tk) mean over heads
      for (Index b = 0; b < B; ++b) {
        auto w = weights_.middleRows(b * Tq_, Tq_);
        w = P_.middleRows(b * H_ * Tq_, Tq_);
        for (Index h = 1; h < H_; ++h) w += P_.middleRows((b * H_ + h) * Tq_, Tq_);
        w /= static_cast<T>(H_);
      }
    }
    per_head_weights_ = args.need_weights && !args.average_attn_weights;
    return {out_, weights()};
  }

  // Self-attention: forward(x, x, x, B, args).
  MultiheadAttentionOutput<T> forward(const ConstRef<T>& x, Index B,
                                      const MultiheadAttentionArgs<T>& args = {}) {
    return forward(x, x, x, B, args);
  }

  // backward  doutput (B*Tq, E) -> dquery (B*Tq, E), dkey (B*Tk, kdim), dvalue (B*Tk, vdim);
  // += every parameter gradient.
  AttentionGrads<T> backward(const ConstRef<T>& doutput) {
    detail::require_forward(B_ > 0, "MultiheadAttention");
    detail::check_shape("MultiheadAttention", "gradient", doutput, out_.rows(), E_);
    const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(hd_)));
    using detail::Op;
    detail::gemm<T>(dout_w_, doutput, Op::T, ctx_, Op::N, T(1));  // d of (5) wrt W_o: (E, B*Tq)(B*Tq, E)
    if (opts_.bias) dout_b_.row(0) += doutput.colwise().sum();  // d of (5) wrt b_o
    detail::gemm<T>(dctx_, doutput, Op::N, out_w_, Op::N);  // d of (5) wrt ctx: (B*Tq, E)(E, E)

    dQp_.resize(Qp_.rows(), E_);  // (B*Tq, E)
    dKp_.resize(Kp_.rows(), E_);  // (B*Tk, E)
    dVp_.resize(Vp_.rows(), E_);  // (B*Tk, E)
    if (fused_) {  // d of (4), tile by tile, slice i = b*H + h
      detail::for_each_slice(B_ * H_, 2 * flops(), flash_,
                                [&](Index i, detail::FlashScratch<T>& sc) {
        const Index b = i / H_, h = i % H_;
        detail::flash_backward<T>(qh(Qp_, b, h), kh(Kp_, b, h), kh(Vp_, b, h),
                                  ctx_.block(b * Tq_, h * hd_, Tq_, hd_),
                                  lse_.segment(i * Tq_, Tq_),
                                  dctx_.block(b * Tq_, h * hd_, Tq_, hd_), scale, masks_, b,
                                  kTile,
                                  dQp_.block(b * Tq_, h * hd_, Tq_, hd_),
                                  dKp_.block(b * Tk_, h * hd_, Tk_, hd_),
                                  dVp_.block(b * Tk_, h * hd_, Tk_, hd_), sc);
      });
    } else {
      detail::for_each_slice(B_ * H_, 2 * flops(), dP_, [&](Index i, Matrix<T>& dP) {
        const Index b = i / H_, h = i % H_;
        const auto dctx = dctx_.block(b * Tq_, h * hd_, Tq_, hd_);  // (Tq, hd)
        auto dQ = dQp_.block(b * Tq_, h * hd_, Tq_, hd_);
        auto dK = dKp_.block(b * Tk_, h * hd_, Tk_, hd_);
        auto dV = dVp_.block(b * Tk_, h * hd_, Tk_, hd_);
        const auto P = P_.middleRows(i * Tq_, Tq_);  // (Tq, Tk)
        dP.resize(Tq_, Tk_);
        dP.noalias() = dctx * kh(Vp_, b, h).transpose();  // d of (4e) wrt P: (Tq,hd)(hd,Tk)
        if (dropout_active_) {
          dV.noalias() = Pd_.middleRows(i * Tq_, Tq_).transpose() * dctx;  // d of (4e) wrt Vp
          dP.array() *= M_.middleRows(i * Tq_, Tq_).array();               // d of (4d)
        } else {
          dV.noalias() = P.transpose() * dctx;  // d of (4e) wrt Vp: (Tk,Tq)(Tq,hd)
        }
        detail::masked_softmax_backward_rows<T>(P, dP);  // d of (4c): dP -> dS
        dP *= scale;                                      // d of (4a) through "* scale"
        dQ.noalias() = dP * kh(Kp_, b, h);                // d of (4a) wrt Qp: (Tq,Tk)(Tk,hd)
        dK.noalias() = dP.transpose() * qh(Qp_, b, h);    // d of (4a) wrt Kp: (Tk,Tq)(Tq,hd)
      });
    }
    project_backward(xq_, Wq(), dWq(), 0, dQp_, dq_);  // d of (1)
    project_backward(xk(), Wk(), dWk(), 1, dKp_, dk_);  // d of (2)
    project_backward(xv(), Wv(), dWv(), 2, dVp_, dv_);  // d of (3)
    return {dq_, dk_, dv_};
  }

  // ---- Incremental decoding: inference only (no backward, no dropout) ----
  // Step t projects only the new token and attends to the cached projections of the ones
  // before it: O(t E) work instead of the O(t E^2) of projecting the prefix again. None of
  // these touches what backward reads, so a pending backward stays valid.

  // cache_kv  key (B*Tk, kdim), value (B*Tk, vdim) -> c: their projections, B rows of Tk
  // positions (cross-attention over a fixed memory: projected once per sequence).
  void cache_kv(const ConstRef<T>& key, const ConstRef<T>& value, Index B, KVCache<T>& c) {
    const char* who = "MultiheadAttention::cache_kv";
    check_inference(who);
    detail::check_shape(who, "key", key, -1, kdim_);
    detail::check_shape(who, "value", value, key.rows(), vdim_);
    detail::check_batch_rows(who, "key", key.rows(), B);
    c.reset(B, E_, key.rows() / B);
    using detail::Op;
    detail::gemm<T>(c.key_storage(), key, Op::N, Wk(), Op::T);      // (B*Tk, E) K = key W_k^T + b_k
    detail::gemm<T>(c.value_storage(), value, Op::N, Wv(), Op::T);  // (B*Tk, E) V = value W_v^T + b_v
    if (opts_.bias) {
      c.key_storage().rowwise() += in_b_.row(0).segment(E_, E_);
      c.value_storage().rowwise() += in_b_.row(0).segment(2 * E_, E_);
    }
    c.set_full(B, key.rows() / B);
  }

  // append_kv  key (n, kdim), value (n, vdim): one new position for each of c's n rows
  // (self-attention: the new token's own key and value, before it attends).
  void append_kv(const ConstRef<T>& key, const ConstRef<T>& value, KVCache<T>& c) {
    const char* who = "MultiheadAttention::append_kv";
    check_inference(who);
    detail::require(!c.empty() && c.embed_dim() == E_, who,
                    "cache not started (KVCache::reset(rows, " + std::to_string(E_) +
                        ", capacity)) or of another width");
    detail::check_shape(who, "key", key, c.rows(), kdim_);
    detail::check_shape(who, "value", value, c.rows(), vdim_);
    using detail::Op;
    detail::gemm<T>(sk_, key, Op::N, Wk(), Op::T);    // (n, E) the new keys
    detail::gemm<T>(sv_, value, Op::N, Wv(), Op::T);  // (n, E) the new values
    if (opts_.bias) {
      sk_.rowwise() += in_b_.row(0).segment(E_, E_);
      sv_.rowwise() += in_b_.row(0).segment(2 * E_, E_);
    }
    const Index j = c.grow();
    for (Index r = 0; r < c.rows(); ++r) {
      c.key_at(r, j) = sk_.row(r);
      c.value_at(r, j) = sv_.row(r);
    }
  }

  // attend  query (n, E) -> out (n, E): query i against cache row cache_row[i] (i when
  // cache_row is null), every cached position except key_padding_mask(cache row, j); weights,
  // when given, receive (n, len) head-averaged attention weights. The formulas of forward's
  // (1), (4), (5) for one query row.
  struct CachedArgs {
    const std::vector<Index>* cache_row = nullptr;  // (n) cache row of each query
    const BoolMatrix* key_padding_mask = nullptr;   // (cache rows, len) true = ignore key
    Matrix<T>* weights = nullptr;                   // (n, len) output, mean over heads
  };
  const Matrix<T>& attend(const ConstRef<T>& query, const KVCache<T>& c,
                          const CachedArgs& a = {}) {
    const char* who = "MultiheadAttention::attend";
    check_inference(who);
    detail::require(!c.empty() && c.embed_dim() == E_ && c.length() > 0, who,
                    "cache empty or of another width (expected " + std::to_string(E_) + ")");
    const Index n = query.rows(), len = c.length();
    detail::check_shape(who, "query", query, -1, E_);
    if (a.cache_row) {
      if (Index(a.cache_row->size()) != n)
        throw ShapeError(std::string(who) + ": cache_row expected " + std::to_string(n) +
                         " entries (one per query), got " + std::to_string(a.cache_row->size()));
      for (Index r : *a.cache_row)
        if (r < 0 || r >= c.rows())
          throw ValueError(std::string(who) + ": cache_row entry " + std::to_string(r) +
                           " out of range [0, " + std::to_string(c.rows()) + ")");
    } else if (n != c.rows()) {
      throw ShapeError(std::string(who) + ": query expected " + std::to_string(c.rows()) +
                       " rows (one per cache row), got " + std::to_string(n));
    }
    if (a.key_padding_mask) detail::check_shape(who, "key_padding_mask", *a.key_padding_mask, c.rows(), len);
    const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(hd_)));
    using detail::Op;
    detail::gemm<T>(sq_, query, Op::N, Wq(), Op::T);  // (1) q = query W_q^T + b_q   (n, E)
    if (opts_.bias) sq_.rowwise() += in_b_.row(0).head(E_);
    sctx_.resize(n, E_);
    if (ss_.size() < c.capacity()) ss_.resize(c.capacity());  // sized with the cache, not per step
    auto s = ss_.head(len);                                    // (len) one head's scores
    if (a.weights) a.weights->setZero(n, len);
    for (Index i = 0; i < n; ++i) {
      const Index r = a.cache_row ? (*a.cache_row)[i] : i;
      for (Index h = 0; h < H_; ++h) {
        // (4) ctx_h = softmax(K_h q_h * scale + mask) V_h     K_h, V_h (len, hd)
        s.noalias() = c.keys(r, h * hd_, hd_) * sq_.row(i).segment(h * hd_, hd_).transpose();
        s *= scale;
        if (a.key_padding_mask)
          for (Index j = 0; j < len; ++j)
            if ((*a.key_padding_mask)(r, j)) s(j) = detail::kNegInf<T>;
        detail::masked_softmax_rows<T>(Eigen::Map<Matrix<T>>(s.data(), 1, len));
        sctx_.row(i).segment(h * hd_, hd_).noalias() = s.transpose() * c.values(r, h * hd_, hd_);
        if (a.weights) a.weights->row(i) += s.transpose() / static_cast<T>(H_);
      }
    }
    detail::gemm<T>(sout_, sctx_, Op::N, out_w_, Op::T);  // (5) out = ctx W_o^T + b_o   (n, E)
    if (opts_.bias) sout_.rowwise() += out_b_.row(0);
    return sout_;
  }

  // PyTorch state_dict names and order.
  std::vector<Parameter<T>> local_parameters() override {
    std::vector<Parameter<T>> ps;
    if (packed_) {
      ps.push_back({"in_proj_weight", &in_w_, &din_w_});
    } else {
      ps.push_back({"q_proj_weight", &q_w_, &dq_w_});
      ps.push_back({"k_proj_weight", &k_w_, &dk_w_});
      ps.push_back({"v_proj_weight", &v_w_, &dv_w_});
    }
    if (opts_.bias) ps.push_back(vector_parameter("in_proj_bias", &in_b_, &din_b_));
    ps.push_back({"out_proj.weight", &out_w_, &dout_w_});
    if (opts_.bias) ps.push_back(vector_parameter("out_proj.bias", &out_b_, &dout_b_));
    return ps;
  }
  std::string name() const override { return "MultiheadAttention"; }
  std::string extra_repr() const override {
    std::string s = "embed_dim=" + std::to_string(E_) + ", num_heads=" + std::to_string(H_);
    if (opts_.dropout > 0.0) s += ", dropout=" + detail::num_repr(opts_.dropout);
    if (!packed_) s += ", kdim=" + std::to_string(kdim_) + ", vdim=" + std::to_string(vdim_);
    if (!opts_.bias) s += ", bias=false";
    return s;
  }
  Generator* local_generator() override { return opts_.dropout > 0.0 ? &gen_ : nullptr; }

  Index embed_dim() const { return E_; }
  Index num_heads() const { return H_; }
  Index head_dim() const { return hd_; }
  Index kdim() const { return kdim_; }
  Index vdim() const { return vdim_; }
  // True when the last forward went through the fused kernel (no weights kept).
  bool used_fused() const { return fused_; }
  Generator& generator() { return gen_; }
  // Weights of the last forward (see MultiheadAttentionOutput), empty if not requested.
  const Matrix<T>& weights() const { return per_head_weights_ ? P_ : weights_; }

  static constexpr Index kTile = 128;

 private:
  // Multiply-adds of the attention core of one forward, to decide whether threads pay off.
  double flops() const {
    return 4.0 * static_cast<double>(B_ * Tq_) * static_cast<double>(Tk_) *
           static_cast<double>(E_);
  }

  // Projection `which` (0 q, 1 k, 2 v): a row block of in_proj_weight, or its own matrix.
  Eigen::Ref<Matrix<T>> proj(Matrix<T>& packed, Matrix<T>& separate, Index which) {
    if (packed_) return Eigen::Ref<Matrix<T>>(packed.middleRows(which * E_, E_));
    return Eigen::Ref<Matrix<T>>(separate);
  }
  Eigen::Ref<Matrix<T>> Wq() { return proj(in_w_, q_w_, 0); }
  Eigen::Ref<Matrix<T>> Wk() { return proj(in_w_, k_w_, 1); }
  Eigen::Ref<Matrix<T>> Wv() { return proj(in_w_, v_w_, 2); }
  Eigen::Ref<Matrix<T>> dWq() { return proj(din_w_, dq_w_, 0); }
  Eigen::Ref<Matrix<T>> dWk() { return proj(din_w_, dk_w_, 1); }
  Eigen::Ref<Matrix<T>> dWv() { return proj(din_w_, dv_w_, 2); }

  // The kept key and value inputs: the query's copy for self-attention.
  const Matrix<T>& xk() const { return self_ ? xq_ : xk_; }
  const Matrix<T>& xv() const { return self_ ? xq_ : xv_; }

  // Head h of sample b: a (T, hd) column block, no copy.
  auto qh(const Matrix<T>& X, Index b, Index h) const {
    return X.block(b * Tq_, h * hd_, Tq_, hd_);
  }
  auto kh(const Matrix<T>& X, Index b, Index h) const {
    return X.block(b * Tk_, h * hd_, Tk_, hd_);
  }

  // y = x W^T + b[which*E : (which+1)*E]
  void project(const Matrix<T>& x, const Eigen::Ref<Matrix<T>>& W, Index which, Matrix<T>& y) {
    detail::gemm<T>(y, x, detail::Op::N, W, detail::Op::T);  // (rows, in)(in, E)
    if (opts_.bias) y.rowwise() += in_b_.row(0).segment(which * E_, E_);
  }
  // d of y = x W^T + b:  dW += dy^T x,  db += colsum(dy),  dx = dy W.
  void project_backward(const Matrix<T>& x, const Eigen::Ref<Matrix<T>>& W,
                        Eigen::Ref<Matrix<T>> dW, Index which, const Matrix<T>& dy,
                        Matrix<T>& dx) {
    using detail::Op;
    detail::gemm<T>(dW, dy, Op::T, x, Op::N, T(1));  // (E, rows)(rows, in)
    if (opts_.bias) din_b_.row(0).segment(which * E_, E_) += dy.colwise().sum();
    if (!this->input_grad_) {  // requires_input_grad(false): only the weight gradients
      dx.resize(0, x.cols());
      return;
    }
    detail::gemm<T>(dx, dy, Op::N, W, Op::N);  // (rows, E)(E, in)
  }

  void check_inference(const char* who) const {
    detail::check_incremental(who, this->training_, opts_.dropout);
  }

  Index E_, H_, hd_ = 0, kdim_ = 0, vdim_ = 0;
  MultiheadAttentionOptions opts_;
  Generator gen_;  // dropout stream, owned
  bool packed_ = true;
  bool dropout_active_ = false;
  bool fused_ = false;
  bool per_head_weights_ = false;
  bool self_ = false;  // the last forward's query, key and value were one matrix
  Index B_ = 0, Tq_ = 0, Tk_ = 0;
  AttentionMasks<T> masks_;

  Matrix<T> in_w_, din_w_;              // (3E, E) packed in-projection
  Matrix<T> q_w_, dq_w_;                // (E, E)    when kdim or vdim != E
  Matrix<T> k_w_, dk_w_;                // (E, kdim)
  Matrix<T> v_w_, dv_w_;                // (E, vdim)
  Matrix<T> in_b_, din_b_;              // (1, 3E)
  Matrix<T> out_w_, dout_w_;            // (E, E)
  Matrix<T> out_b_, dout_b_;            // (1, E)

  Matrix<T> xq_, xk_, xv_;              // inputs: (B*Tq, E), (B*Tk, kdim), (B*Tk, vdim);
                                        // xk_, xv_ empty for self-attention
  Matrix<T> Qp_, Kp_, Vp_;              // projections: (B*Tq, E), (B*Tk, E), (B*Tk, E)
  Matrix<T> P_;                         // (B*H*Tq, Tk) per-head weights, plain path only
  Matrix<T> M_, Pd_;                    // (B*H*Tq, Tk) dropout mask and dropped weights
  Vector<T> lse_;                       // (B*H*Tq) log-sum-exp, fused path only
  Matrix<T> ctx_;                       // (B*Tq, E)
  Matrix<T> out_;                       // (B*Tq, E)
  Matrix<T> weights_;                   // (B*Tq, Tk) head-averaged weights
  Matrix<T> dctx_;                      // (B*Tq, E)
  Matrix<T> dQp_, dKp_, dVp_;           // like Qp_, Kp_, Vp_
  std::vector<Matrix<T>> dP_;           // (Tq, Tk) per-thread scratch, plain backward
  Matrix<T> dq_, dk_, dv_;              // like xq_, xk_, xv_
  std::vector<detail::FlashScratch<T>> flash_;  // one per thread
  Matrix<T> sk_, sv_, sq_, sctx_, sout_;  // (n, E) incremental decoding: one row per query
  Vector<T> ss_;                          // (capacity) one head's scores, then weights
};

}  // namespace heed
