#pragma once
// TransformerEncoderLayer<T>: torch.nn.TransformerEncoderLayer(batch_first=True), PyTorch 1.13.
//
// x is (B*T, d) row-major, B passed per call. sa(x) and ff(x) are PyTorch's _sa_block and
// _ff_block, with its dropout placements:
//   sa(x) = dropout1(self_attn(x, x, x, masks, need_weights=False))
//   ff(x) = dropout2(linear2(dropout(activation(linear1(x)))))
// post-norm (norm_first = false, the default)    pre-norm (norm_first = true)
//   h   = norm1(x + sa(x))                         h   = x + sa(norm1(x))
//   out = norm2(h + ff(h))                         out = h + ff(norm2(h))
// self_attn also gets `dropout` on its attention weights, as in PyTorch.
//
// Masks (TransformerEncoderLayerArgs), PyTorch's meaning:
//   src_mask              (T, T) bool, true = query i may not attend to key j
//   src_bias              (T, T) float, added to the scores: PyTorch's float src_mask
//   src_key_padding_mask  (B, T) bool, true = padding
//   is_causal             a causal mask (key j > query i masked). PyTorch 1.13's forward has no
//                         is_causal; 2.x has it as a hint that needs src_mask as well. Here it
//                         *is* the mask and may be combined with the others.
// Masks are copied by forward (backward needs them): they need not outlive the call.
// A query whose keys are all masked gets a zero attention output (PyTorch: NaN).
//
// bias = false (PyTorch 2.1's argument; 1.13 has none) drops the biases of linear1, linear2
// and self_attn. heed's LayerNorm has no bias-free form, so norm1/norm2 keep theirs (2.1 drops
// them too): a bias=false layer's state_dict has norm1.bias and norm2.bias where 2.1's has not.
//
// Submodules, in PyTorch's registration order (so state_dict keys and order equal PyTorch's):
//   self_attn (MultiheadAttention), linear1, dropout, linear2, norm1, norm2, dropout1, dropout2.
// The activation is a function in PyTorch, not a module, and is not registered here either.
//
// Copying a layer copies its weights and its dropout streams (the copy draws the same masks
// unless reseeded; TransformerEncoder reseeds its copies), not its last forward: backward on a
// copy before the copy's own forward is refused.
#include <string>

#include "../activations/gelu.hpp"
#include "../activations/relu.hpp"
#include "../attention/multihead_attention.hpp"
#include "../core/module.hpp"
#include "../core/random.hpp"
#include "../layers/dropout.hpp"
#include "../layers/layer_norm.hpp"
#include "../layers/linear.hpp"
#include "layer_options.hpp"

namespace heed {

// Per-call masks: layer.forward(x, B, {.src_key_padding_mask = &pad, .is_causal = true}).
template <typename T>
struct TransformerEncoderLayerArgs {
  const BoolMatrix* src_mask = nullptr;              // (T, T) true = not allowed
  const Matrix<T>* src_bias = nullptr;               // (T, T) additive float mask
  const BoolMatrix* src_key_padding_mask = nullptr;  // (B, T) true = padding
  bool is_causal = false;
};

namespace detail {

// Shared by TransformerEncoderLayer and TransformerEncoder: src (B*T, d) and the mask shapes.
// Returns T.
template <typename T>
Index check_encoder_input(std::string_view who, const ConstRef<T>& src, Index B, Index d,
                          const TransformerEncoderLayerArgs<T>& a) {
  check_shape(who, "src", src, -1, d);
  check_batch_rows(who, "src", src.rows(), B);
  const Index T_ = src.rows() / B;
  if (a.src_mask) check_shape(who, "src_mask", *a.src_mask, T_, T_);
  if (a.src_bias) check_shape(who, "src_bias", *a.src_bias, T_, T_);
  if (a.src_key_padding_mask)
    check_shape(who, "src_key_padding_mask", *a.src_key_padding_mask, B, T_);
  return T_;
}

}  // namespace detail

template <typename T>
class TransformerEncoderLayer : public ModuleBase<T> {
 public:
  // Initialisation draws from `gen` in PyTorch's construction order: self_attn (xavier in_proj,
  // zero biases, out_proj U(+-1/sqrt d)), linear1, linear2 (nn.Linear's default); the dropout
  // streams are seeded by draws from `gen` after that.
  TransformerEncoderLayer(Index d_model, Index nhead, TransformerLayerOptions opts = {},
                          Generator& gen = default_generator())
      : d_((validate(d_model, nhead, opts), d_model)),
        opts_(opts),
        self_attn_(d_model, nhead, {.dropout = opts.dropout, .bias = opts.bias}, gen),
        linear1_(d_model, opts.dim_feedforward, opts.bias, gen),
        linear2_(opts.dim_feedforward, d_model, opts.bias, gen),
        dropout_(opts.dropout, gen.bits()),
        norm1_(d_model, opts.layer_norm_eps),
        norm2_(d_model, opts.layer_norm_eps),
        dropout1_(opts.dropout, gen.bits()),
        dropout2_(opts.dropout, gen.bits()) {
    set_attn_input_grad();
  }

  // forward                                        src (B*T, d) -> out (B*T, d)
  // The returned buffer is the layer's own, valid until its next forward.
  const Matrix<T>& forward(const ConstRef<T>& src, Index B,
                           const TransformerEncoderLayerArgs<T>& args = {}) {
    const char* who = "TransformerEncoderLayer";
    detail::check_encoder_input<T>(who, src, B, d_, args);
    const MultiheadAttentionArgs<T> margs = copy_masks(args);
    last_.B = B;
    last_.rows = src.rows();
    const Index N = last_.rows;  // B*T
    if (!opts_.norm_first) {
      const Matrix<T>& a = self_attn_.forward(src, src, src, B, margs).output;  // (1) (B*T, d)
      const ConstRef<T> a1 = dropout1_.forward_view(a);                         // (2) (B*T, d)
      h_.resize(N, d_);
      h_.noalias() = src + a1;                         // (3) h = x + sa(x)        (B*T, d)
      const Matrix<T>& y1 = norm1_.forward(h_);        // (4) y1 = norm1(h)        (B*T, d)
      const ConstRef<T> f = ff_forward(y1);             // (5) f = ff(y1), (a)-(e)  (B*T, d)
      h2_.resize(N, d_);
      h2_.noalias() = y1 + f;                          // (6) h2 = y1 + f          (B*T, d)
      return norm2_.forward(h2_);                      // (7) out = norm2(h2)      (B*T, d)
    }
    const Matrix<T>& n1 = norm1_.forward(src);                               // (1) (B*T, d)
    const Matrix<T>& a = self_attn_.forward(n1, n1, n1, B, margs).output;    // (2) (B*T, d)
    const ConstRef<T> a1 = dropout1_.forward_view(a);                              // (3) (B*T, d)
    h_.resize(N, d_);
    h_.noalias() = src + a1;                           // (4) h = x + sa(norm1(x)) (B*T, d)
    const Matrix<T>& n2 = norm2_.forward(h_);          // (5) n2 = norm2(h)        (B*T, d)
    const ConstRef<T> f = ff_forward(n2);               // (6) f = ff(n2), (a)-(e)  (B*T, d)
    out_.resize(N, d_);
    out_.noalias() = h_ + f;                           // (7) out = h + f          (B*T, d)
    return out_;
  }

  // backward                                       dout (B*T, d) -> dsrc (B*T, d)
  // += every parameter gradient. With requires_input_grad(false) returns an empty (0, d).
  const Matrix<T>& backward(const ConstRef<T>& dout) {
    const char* who = "TransformerEncoderLayer";
    detail::require_forward(last_.B > 0, who);
    const Index N = last_.rows;  // B*T
    detail::check_shape(who, "gradient", dout, N, d_);
    if (!opts_.norm_first) {
      const Matrix<T>& dh2 = norm2_.backward(dout);  // d(7)                       (B*T, d)
      dy1_.resize(N, d_);
      dy1_ = dh2;                                    // d(6) wrt y1, residual path
      dy1_ += ff_backward(dh2);                      // d(6) wrt f, then d(5)
      const Matrix<T>& dh = norm1_.backward(dy1_);   // d(4)                       (B*T, d)
      const ConstRef<T> da = dropout1_.backward_view(dh);  // d(3) wrt a1, then d(2)     (B*T, d)
      const auto g = self_attn_.backward(da);        // d(1): dq, dk, dv           (B*T, d)
      if (!this->input_grad_) return no_input_grad();
      dx_.resize(N, d_);
      dx_ = dh;                                      // d(3) wrt x, residual path
      dx_ += g.dquery + g.dkey + g.dvalue;           // d(1), q = k = v = x
      return dx_;
    }
    const Matrix<T>& dn2 = ff_backward(dout);        // d(7) wrt f, then d(6)      (B*T, d)
    dh_.resize(N, d_);
    dh_ = dout;                                      // d(7) wrt h, residual path
    dh_ += norm2_.backward(dn2);                     // d(5)
    const ConstRef<T> da = dropout1_.backward_view(dh_);   // d(4) wrt a1, then d(3)     (B*T, d)
    const auto g = self_attn_.backward(da);          // d(2)                       (B*T, d)
    dn1_.resize(N, d_);
    dn1_.noalias() = g.dquery + g.dkey + g.dvalue;   // d(2), q = k = v = n1
    const Matrix<T>& dxn = norm1_.backward(dn1_);    // d(1)                       (B*T, d)
    if (!this->input_grad_) return no_input_grad();
    dx_.resize(N, d_);
    dx_.noalias() = dh_ + dxn;                       // d(4) wrt x, plus d(1)
    return dx_;
  }

  Children<T> children() override {
    return {{"self_attn", &self_attn_}, {"linear1", &linear1_}, {"dropout", &dropout_},
            {"linear2", &linear2_},     {"norm1", &norm1_},     {"norm2", &norm2_},
            {"dropout1", &dropout1_},   {"dropout2", &dropout2_}};
  }
  std::string name() const override { return "TransformerEncoderLayer"; }
  std::string extra_repr() const override {
    return detail::transformer_layer_repr(d_, self_attn_.num_heads(), opts_);
  }
  // The input gradient is the attention's input gradient in post-norm; in pre-norm the
  // attention sees norm1's output, whose gradient norm1's parameters need either way.
  using ModuleBase<T>::requires_input_grad;  // the getter, not hidden by the override
  void requires_input_grad(bool on) override {
    ModuleBase<T>::requires_input_grad(on);
    set_attn_input_grad();
  }

  Index d_model() const { return d_; }
  Index nhead() const { return self_attn_.num_heads(); }
  const TransformerLayerOptions& options() const { return opts_; }
  MultiheadAttention<T>& self_attn() { return self_attn_; }
  Linear<T>& linear1() { return linear1_; }
  Linear<T>& linear2() { return linear2_; }
  LayerNorm<T>& norm1() { return norm1_; }
  LayerNorm<T>& norm2() { return norm2_; }
  Dropout<T>& dropout() { return dropout_; }
  Dropout<T>& dropout1() { return dropout1_; }
  Dropout<T>& dropout2() { return dropout2_; }

 private:
  static void validate(Index d_model, Index nhead, const TransformerLayerOptions& o) {
    detail::validate_transformer_layer("TransformerEncoderLayer", d_model, nhead, o);
  }

  void set_attn_input_grad() { self_attn_.requires_input_grad(this->input_grad_ || opts_.norm_first); }

  const Matrix<T>& no_input_grad() {
    dx_.resize(0, d_);
    return dx_;
  }

  // The caller's masks, copied (same shape: no allocation), as MultiheadAttention's arguments.
  MultiheadAttentionArgs<T> copy_masks(const TransformerEncoderLayerArgs<T>& a) {
    MultiheadAttentionArgs<T> m{.is_causal = a.is_causal, .need_weights = false};
    if (a.src_key_padding_mask) {
      pad_ = *a.src_key_padding_mask;
      m.key_padding_mask = &pad_;
    }
    if (a.src_mask) {
      mask_ = *a.src_mask;
      m.attn_mask = &mask_;
    }
    if (a.src_bias) {
      bias_ = *a.src_bias;
      m.attn_bias = &bias_;
    }
    return m;
  }

  Module<T>& activation() {
    if (opts_.activation == TransformerActivation::gelu) return gelu_;
    return relu_;
  }

  // ff(x) = dropout2(linear2(dropout(activation(linear1(x)))))     x (B*T, d) -> (B*T, d)
  ConstRef<T> ff_forward(const ConstRef<T>& x) {
    const Matrix<T>& f1 = linear1_.forward(x);    // (a) f1 = x W1^T + b1       (B*T, ff)
    const Matrix<T>& g = activation().forward(f1);  // (b) g = act(f1)          (B*T, ff)
    const ConstRef<T> gd = dropout_.forward_view(g);    // (c) gd = dropout(g)        (B*T, ff)
    const Matrix<T>& f2 = linear2_.forward(gd);   // (d) f2 = gd W2^T + b2      (B*T, d)
    return dropout2_.forward_view(f2);                 // (e) dropout2(f2)           (B*T, d)
  }
  // d of ff_forward: df (B*T, d) -> dx (B*T, d)
  const Matrix<T>& ff_backward(const ConstRef<T>& df) {
    const ConstRef<T> df2 = dropout2_.backward_view(df);      // d(e)                 (B*T, d)
    const Matrix<T>& dgd = linear2_.backward(df2);      // d(d)                 (B*T, ff)
    const ConstRef<T> dg = dropout_.backward_view(dgd);       // d(c)                 (B*T, ff)
    const Matrix<T>& df1 = activation().backward(dg);   // d(b)                 (B*T, ff)
    return linear1_.backward(df1);                      // d(a)                 (B*T, d)
  }

  Index d_;
  TransformerLayerOptions opts_;
  MultiheadAttention<T> self_attn_;
  Linear<T> linear1_;   // (ff, d)
  Linear<T> linear2_;   // (d, ff)
  Dropout<T> dropout_;  // after the activation
  LayerNorm<T> norm1_, norm2_;
  Dropout<T> dropout1_;  // after self-attention
  Dropout<T> dropout2_;  // after linear2
  ReLU<T> relu_;
  GELU<T> gelu_;

  // The batch of the last forward. Not copied: a copy's attention would still point at the
  // original's masks, so a copy (or a moved-to layer) has had no forward yet.
  struct LastForward {
    Index B = 0, rows = 0;
    LastForward() = default;
    LastForward(const LastForward&) noexcept {}
    LastForward& operator=(const LastForward&) noexcept {
      B = rows = 0;
      return *this;
    }
  } last_;
  BoolMatrix pad_, mask_;    // (B, T), (T, T) copies of the masks
  Matrix<T> bias_;           // (T, T)
  Matrix<T> h_;              // (B*T, d) first residual sum
  Matrix<T> h2_;             // (B*T, d) second residual sum, post-norm
  Matrix<T> out_;            // (B*T, d) output, pre-norm
  Matrix<T> dy1_, dh_, dn1_; // (B*T, d) backward scratch
  Matrix<T> dx_;             // (B*T, d)
};

}  // namespace heed
