#pragma once
// TransformerDecoderLayer<T>: torch.nn.TransformerDecoderLayer(batch_first=True), PyTorch 1.13.
//
// tgt x is (B*Tt, d), memory m is (B*Tm, d), row-major, B passed per call. sa, ca and ff are
// PyTorch's _sa_block, _mha_block and _ff_block, with its dropout placements:
//   sa(x)    = dropout1(self_attn(x, x, x, tgt masks, need_weights=False))
//   ca(x, m) = dropout2(multihead_attn(x, m, m, memory masks, need_weights=False))
//   ff(x)    = dropout3(linear2(dropout(activation(linear1(x)))))
// post-norm (norm_first = false, the default)    pre-norm (norm_first = true)
//   h1  = norm1(x + sa(x))                         h1  = x + sa(norm1(x))
//   h2  = norm2(h1 + ca(h1, m))                    h2  = h1 + ca(norm2(h1), m)
//   out = norm3(h2 + ff(h2))                       out = h2 + ff(norm3(h2))
// memory is not normalised in either order (as PyTorch). Both attentions also get `dropout`
// on their attention weights, as in PyTorch.
//
// Masks (TransformerDecoderLayerArgs), PyTorch's meaning, as TransformerEncoderLayer's:
//   tgt_mask                 (Tt, Tt) bool, true = query i may not attend to key j
//   tgt_bias                 (Tt, Tt) float, added to the scores: PyTorch's float tgt_mask
//   memory_mask              (Tt, Tm) bool, for the cross-attention
//   memory_bias              (Tt, Tm) float: PyTorch's float memory_mask
//   tgt_key_padding_mask     (B, Tt) bool, true = padding
//   memory_key_padding_mask  (B, Tm) bool, true = padding
//   tgt_is_causal            a causal mask on the self-attention (key j > query i masked); it
//                            *is* the mask (PyTorch 2.x's flag is a hint next to tgt_mask;
//                            1.13 has none) and may be combined with the others.
// Masks are copied by forward (backward needs them): they need not outlive the call.
// A query whose keys are all masked gets a zero attention output (PyTorch: NaN).
// PyTorch 1.13's decoder layer has no fast path: eval mode is the same computation.
//
// backward(dout) returns {dtgt, dmemory}. Every layer of a TransformerDecoder reads the same
// memory, so TransformerDecoder sums dmemory over its layers. requires_input_grad(false)
// empties dtgt, requires_memory_grad(false) empties dmemory; parameter gradients are the same.
//
// bias = false drops the biases of linear1, linear2 and both attentions (the norms keep
// theirs; see TransformerEncoderLayer).
//
// Submodules, in PyTorch's registration order (state_dict keys and order equal PyTorch's):
//   self_attn, multihead_attn (MultiheadAttention), linear1, dropout, linear2, norm1, norm2,
//   norm3, dropout1, dropout2, dropout3.
//
// Copying a layer copies its weights and dropout streams, not its last forward: backward on a
// copy before the copy's own forward is refused.
#include <string>
#include <vector>

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

// Per-call masks: layer.forward(tgt, memory, B, {.memory_key_padding_mask = &pad,
// .tgt_is_causal = true}). Fields in PyTorch's argument order, each float form after its bool.
template <typename T>
struct TransformerDecoderLayerArgs {
  const BoolMatrix* tgt_mask = nullptr;                 // (Tt, Tt) true = not allowed
  const Matrix<T>* tgt_bias = nullptr;                  // (Tt, Tt) additive float mask
  const BoolMatrix* memory_mask = nullptr;              // (Tt, Tm) true = not allowed
  const Matrix<T>* memory_bias = nullptr;               // (Tt, Tm) additive float mask
  const BoolMatrix* tgt_key_padding_mask = nullptr;     // (B, Tt) true = padding
  const BoolMatrix* memory_key_padding_mask = nullptr;  // (B, Tm) true = padding
  bool tgt_is_causal = false;
};

// backward's result: references to the module's own buffers, valid until its next backward.
template <typename T>
struct TransformerDecoderGrads {
  const Matrix<T>& dtgt;     // (B*Tt, d), or (0, d) with requires_input_grad(false)
  const Matrix<T>& dmemory;  // (B*Tm, d), or (0, d) with requires_memory_grad(false)
};

// Incremental decoding state of one layer (forward_step): the self-attention's keys and values
// of every token so far, growing by one per step, and the cross-attention's projected memory.
template <typename T>
struct TransformerDecoderLayerCache {
  KVCache<T> self;   // (n rows, t positions) of self_attn's inputs, projected
  KVCache<T> cross;  // (B rows, Tm positions) of the memory, projected once
};

// forward_step's per-call arguments.
struct TransformerStepArgs {
  // (n) memory row (sample) of each decoding row; null when row i decodes sample i. Beam
  // search gives each sample several rows, all reading that sample's memory.
  const std::vector<Index>* memory_row = nullptr;
  const BoolMatrix* memory_key_padding_mask = nullptr;  // (B, Tm) true = padding
};

namespace detail {

// Shared by TransformerDecoderLayer and TransformerDecoder: tgt (B*Tt, d), memory (B*Tm, d)
// and the mask shapes.
template <typename T>
void check_decoder_input(std::string_view who, const ConstRef<T>& tgt, const ConstRef<T>& memory,
                         Index B, Index d, const TransformerDecoderLayerArgs<T>& a) {
  check_shape(who, "tgt", tgt, -1, d);
  check_shape(who, "memory", memory, -1, d);
  check_batch_rows(who, "tgt", tgt.rows(), B);
  check_batch_rows(who, "memory", memory.rows(), B);
  const Index Tt = tgt.rows() / B, Tm = memory.rows() / B;
  if (a.tgt_mask) check_shape(who, "tgt_mask", *a.tgt_mask, Tt, Tt);
  if (a.tgt_bias) check_shape(who, "tgt_bias", *a.tgt_bias, Tt, Tt);
  if (a.memory_mask) check_shape(who, "memory_mask", *a.memory_mask, Tt, Tm);
  if (a.memory_bias) check_shape(who, "memory_bias", *a.memory_bias, Tt, Tm);
  if (a.tgt_key_padding_mask)
    check_shape(who, "tgt_key_padding_mask", *a.tgt_key_padding_mask, B, Tt);
  if (a.memory_key_padding_mask)
    check_shape(who, "memory_key_padding_mask", *a.memory_key_padding_mask, B, Tm);
}

}  // namespace detail

template <typename T>
class TransformerDecoderLayer : public ModuleBase<T> {
 public:
  // Initialisation draws from `gen` in PyTorch's construction order: self_attn, multihead_attn
  // (xavier in_proj, zero biases, out_proj U(+-1/sqrt d)), linear1, linear2; the dropout
  // streams are seeded by draws from `gen` after that.
  TransformerDecoderLayer(Index d_model, Index nhead, TransformerLayerOptions opts = {},
                          Generator& gen = default_generator())
      : d_((detail::validate_transformer_layer("TransformerDecoderLayer", d_model, nhead, opts),
            d_model)),
        opts_(opts),
        self_attn_(d_model, nhead, {.dropout = opts.dropout, .bias = opts.bias}, gen),
        multihead_attn_(d_model, nhead, {.dropout = opts.dropout, .bias = opts.bias}, gen),
        linear1_(d_model, opts.dim_feedforward, opts.bias, gen),
        linear2_(opts.dim_feedforward, d_model, opts.bias, gen),
        dropout_(opts.dropout, gen.bits()),
        norm1_(d_model, opts.layer_norm_eps),
        norm2_(d_model, opts.layer_norm_eps),
        norm3_(d_model, opts.layer_norm_eps),
        dropout1_(opts.dropout, gen.bits()),
        dropout2_(opts.dropout, gen.bits()),
        dropout3_(opts.dropout, gen.bits()) {
    set_attn_input_grad();
  }

  // forward                          tgt (B*Tt, d), memory (B*Tm, d) -> out (B*Tt, d)
  // The returned buffer is the layer's own, valid until its next forward.
  const Matrix<T>& forward(const ConstRef<T>& tgt, const ConstRef<T>& memory, Index B,
                           const TransformerDecoderLayerArgs<T>& args = {}) {
    detail::check_decoder_input<T>("TransformerDecoderLayer", tgt, memory, B, d_, args);
    copy_masks(args);
    stepped_ = false;
    last_.B = B;
    last_.rows = tgt.rows();
    last_.mem_rows = memory.rows();
    const Index N = last_.rows;  // B*Tt
    if (!opts_.norm_first) {
      const Matrix<T>& a = self_attn_.forward(tgt, tgt, tgt, B, sa_).output;  // (1) (B*Tt, d)
      const ConstRef<T> a1 = dropout1_.forward_view(a);                             // (2) (B*Tt, d)
      h1_.resize(N, d_);
      h1_.noalias() = tgt + a1;                        // (3) h1 = x + sa(x)        (B*Tt, d)
      const Matrix<T>& y1 = norm1_.forward(h1_);       // (4) y1 = norm1(h1)        (B*Tt, d)
      const Matrix<T>& c = multihead_attn_.forward(y1, memory, memory, B, ca_).output;  // (5)
      const ConstRef<T> c1 = dropout2_.forward_view(c);      // (6) c1 = dropout2(c)      (B*Tt, d)
      h2_.resize(N, d_);
      h2_.noalias() = y1 + c1;                         // (7) h2 = y1 + ca(y1, m)   (B*Tt, d)
      const Matrix<T>& y2 = norm2_.forward(h2_);       // (8) y2 = norm2(h2)        (B*Tt, d)
      const ConstRef<T> f = ff_forward(y2);             // (9) f = ff(y2), (a)-(e)   (B*Tt, d)
      h3_.resize(N, d_);
      h3_.noalias() = y2 + f;                          // (10) h3 = y2 + f          (B*Tt, d)
      return norm3_.forward(h3_);                      // (11) out = norm3(h3)      (B*Tt, d)
    }
    const Matrix<T>& n1 = norm1_.forward(tgt);                             // (1) (B*Tt, d)
    const Matrix<T>& a = self_attn_.forward(n1, n1, n1, B, sa_).output;    // (2) (B*Tt, d)
    const ConstRef<T> a1 = dropout1_.forward_view(a);                            // (3) (B*Tt, d)
    h1_.resize(N, d_);
    h1_.noalias() = tgt + a1;                          // (4) h1 = x + sa(norm1(x)) (B*Tt, d)
    const Matrix<T>& n2 = norm2_.forward(h1_);         // (5) n2 = norm2(h1)        (B*Tt, d)
    const Matrix<T>& c = multihead_attn_.forward(n2, memory, memory, B, ca_).output;  // (6)
    const ConstRef<T> c1 = dropout2_.forward_view(c);        // (7) c1 = dropout2(c)      (B*Tt, d)
    h2_.resize(N, d_);
    h2_.noalias() = h1_ + c1;                          // (8) h2 = h1 + ca(n2, m)   (B*Tt, d)
    const Matrix<T>& n3 = norm3_.forward(h2_);         // (9) n3 = norm3(h2)        (B*Tt, d)
    const ConstRef<T> f = ff_forward(n3);               // (10) f = ff(n3), (a)-(e)  (B*Tt, d)
    out_.resize(N, d_);
    out_.noalias() = h2_ + f;                          // (11) out = h2 + f         (B*Tt, d)
    return out_;
  }

  // backward                   dout (B*Tt, d) -> {dtgt (B*Tt, d), dmemory (B*Tm, d)}
  // += every parameter gradient.
  TransformerDecoderGrads<T> backward(const ConstRef<T>& dout) {
    const char* who = "TransformerDecoderLayer";
    if (stepped_)
      throw ValueError("TransformerDecoderLayer: backward called after forward_step, which "
                       "overwrites what backward reads; call forward again first");
    detail::require_forward(last_.B > 0, who);
    const Index N = last_.rows;  // B*Tt
    detail::check_shape(who, "gradient", dout, N, d_);
    if (!opts_.norm_first) {
      const Matrix<T>& dh3 = norm3_.backward(dout);  // d(11)                      (B*Tt, d)
      dy2_.resize(N, d_);
      dy2_ = dh3;                                    // d(10) wrt y2, residual path
      dy2_ += ff_backward(dh3);                      // d(10) wrt f, then d(9)
      const Matrix<T>& dh2 = norm2_.backward(dy2_);  // d(8)                       (B*Tt, d)
      const ConstRef<T> dc = dropout2_.backward_view(dh2); // d(7) wrt c1, then d(6)     (B*Tt, d)
      const auto gc = multihead_attn_.backward(dc);  // d(5): dquery, dkey, dvalue
      memory_grad(gc);                               // d(5) wrt m, k = v = m
      dy1_.resize(N, d_);
      dy1_ = dh2;                                    // d(7) wrt y1, residual path
      dy1_ += gc.dquery;                             // d(5) wrt y1
      const Matrix<T>& dh1 = norm1_.backward(dy1_);  // d(4)                       (B*Tt, d)
      const ConstRef<T> da = dropout1_.backward_view(dh1); // d(3) wrt a1, then d(2)     (B*Tt, d)
      const auto ga = self_attn_.backward(da);       // d(1)
      if (!this->input_grad_) return {no_input_grad(), dmem_};
      dx_.resize(N, d_);
      dx_ = dh1;                                     // d(3) wrt x, residual path
      dx_ += ga.dquery + ga.dkey + ga.dvalue;        // d(1), q = k = v = x
      return {dx_, dmem_};
    }
    const Matrix<T>& dn3 = ff_backward(dout);        // d(11) wrt f, then d(10)    (B*Tt, d)
    dh2_.resize(N, d_);
    dh2_ = dout;                                     // d(11) wrt h2, residual path
    dh2_ += norm3_.backward(dn3);                    // d(9)
    const ConstRef<T> dc = dropout2_.backward_view(dh2_);  // d(8) wrt c1, then d(7)     (B*Tt, d)
    const auto gc = multihead_attn_.backward(dc);    // d(6)
    memory_grad(gc);                                 // d(6) wrt m, k = v = m
    dh1_.resize(N, d_);
    dh1_ = dh2_;                                     // d(8) wrt h1, residual path
    dh1_ += norm2_.backward(gc.dquery);              // d(6) wrt n2, then d(5)
    const ConstRef<T> da = dropout1_.backward_view(dh1_);  // d(4) wrt a1, then d(3)     (B*Tt, d)
    const auto ga = self_attn_.backward(da);         // d(2)
    dn1_.resize(N, d_);
    dn1_.noalias() = ga.dquery + ga.dkey + ga.dvalue;  // d(2), q = k = v = n1
    const Matrix<T>& dxn = norm1_.backward(dn1_);    // d(1)                       (B*Tt, d)
    if (!this->input_grad_) return {no_input_grad(), dmem_};
    dx_.resize(N, d_);
    dx_.noalias() = dh1_ + dxn;                      // d(4) wrt x, plus d(1)
    return {dx_, dmem_};
  }

  // ---- Incremental decoding (inference: eval mode or dropout 0; no backward) ----
  // forward_step's arguments for an (n, d) step checked against c, so that a bad call throws
  // before anything (the self cache) changes.
  void check_step_input(const char* who, Index n, Index cols,
                        const TransformerDecoderLayerCache<T>& c,
                        const TransformerStepArgs& a) const {
    detail::require(!c.self.empty() && !c.cross.empty(), who,
                    "cache not started (call start_cache first)");
    detail::check_shape(who, "x", n, cols, c.self.rows(), d_);
    if (a.memory_row) {
      if (Index(a.memory_row->size()) != n)
        throw ShapeError(std::string(who) + ": memory_row expected " + std::to_string(n) +
                         " entries (one per row), got " + std::to_string(a.memory_row->size()));
      for (Index r : *a.memory_row)
        if (r < 0 || r >= c.cross.rows())
          throw ValueError(std::string(who) + ": memory_row entry " + std::to_string(r) +
                           " out of range [0, " + std::to_string(c.cross.rows()) + ")");
    } else if (n != c.cross.rows()) {
      throw ShapeError(std::string(who) + ": x expected " + std::to_string(c.cross.rows()) +
                       " rows (one per memory row) without memory_row, got " + std::to_string(n));
    }
    if (a.memory_key_padding_mask)
      detail::check_shape(who, "memory_key_padding_mask", *a.memory_key_padding_mask,
                          c.cross.rows(), c.cross.length());
  }

  // forward_step runs one new token per row through the layer, exactly as forward with
  // tgt_is_causal = true computes that token's row, but with self-attention over the cached
  // keys and values of the earlier tokens: O(t d + d^2 + Tm d) work at step t, not O(t^2).

  // start_cache  memory (B*Tm, d) -> c: cross-attention keys/values of the memory, and an
  // empty self-attention cache for B rows with room for `capacity` tokens (it grows).
  void start_cache(const ConstRef<T>& memory, Index B, TransformerDecoderLayerCache<T>& c,
                   Index capacity = 16) {
    check_mode("TransformerDecoderLayer::start_cache");
    detail::check_shape("TransformerDecoderLayer::start_cache", "memory", memory, -1, d_);
    multihead_attn_.cache_kv(memory, memory, B, c.cross);
    c.self.reset(B, d_, capacity);
  }

  // forward_step  x (n, d), the new token of each of c.self's n rows -> out (n, d)
  // cross_weights, when given, receive the cross-attention weights (n, Tm), mean over heads.
  const Matrix<T>& forward_step(const ConstRef<T>& x, TransformerDecoderLayerCache<T>& c,
                                const TransformerStepArgs& a = {},
                                Matrix<T>* cross_weights = nullptr) {
    const char* who = "TransformerDecoderLayer::forward_step";
    check_mode(who);
    check_step_input(who, x.rows(), x.cols(), c, a);  // all before the cache changes
    last_ = {};  // the submodules' caches are overwritten: no backward until the next forward
    stepped_ = true;
    const typename MultiheadAttention<T>::CachedArgs ca{
        a.memory_row, a.memory_key_padding_mask, cross_weights};
    const Index n = x.rows();
    if (!opts_.norm_first) {
      self_attn_.append_kv(x, x, c.self);                            // keys/values of (1)
      const Matrix<T>& sa = self_attn_.attend(x, c.self);            // (1) (n, d)
      h1_.resize(n, d_);
      h1_.noalias() = x + sa;                                        // (3)
      const Matrix<T>& y1 = norm1_.forward(h1_);                     // (4)
      const Matrix<T>& cr = multihead_attn_.attend(y1, c.cross, ca); // (5)
      h2_.resize(n, d_);
      h2_.noalias() = y1 + cr;                                       // (7)
      const Matrix<T>& y2 = norm2_.forward(h2_);                     // (8)
      const ConstRef<T> f = ff_forward(y2);                           // (9)
      h3_.resize(n, d_);
      h3_.noalias() = y2 + f;                                        // (10)
      return norm3_.forward(h3_);                                    // (11)
    }
    const Matrix<T>& n1 = norm1_.forward(x);                         // (1)
    self_attn_.append_kv(n1, n1, c.self);                            // keys/values of (2)
    const Matrix<T>& sa = self_attn_.attend(n1, c.self);             // (2)
    h1_.resize(n, d_);
    h1_.noalias() = x + sa;                                          // (4)
    const Matrix<T>& n2 = norm2_.forward(h1_);                       // (5)
    const Matrix<T>& cr = multihead_attn_.attend(n2, c.cross, ca);   // (6)
    h2_.resize(n, d_);
    h2_.noalias() = h1_ + cr;                                        // (8)
    const Matrix<T>& n3 = norm3_.forward(h2_);                       // (9)
    const ConstRef<T> f = ff_forward(n3);                             // (10)
    out_.resize(n, d_);
    out_.noalias() = h2_ + f;                                        // (11)
    return out_;
  }

  Children<T> children() override {
    return {{"self_attn", &self_attn_}, {"multihead_attn", &multihead_attn_},
            {"linear1", &linear1_},     {"dropout", &dropout_},
            {"linear2", &linear2_},     {"norm1", &norm1_},
            {"norm2", &norm2_},         {"norm3", &norm3_},
            {"dropout1", &dropout1_},   {"dropout2", &dropout2_},
            {"dropout3", &dropout3_}};
  }
  std::string name() const override { return "TransformerDecoderLayer"; }
  std::string extra_repr() const override {
    return detail::transformer_layer_repr(d_, self_attn_.num_heads(), opts_);
  }
  // dtgt: the self-attention's input gradient is needed for it in post-norm only; in pre-norm
  // (and for the cross-attention always) the attention's input is a norm output whose
  // parameters need its gradient anyway.
  using ModuleBase<T>::requires_input_grad;  // the getter, not hidden by the override
  void requires_input_grad(bool on) override {
    ModuleBase<T>::requires_input_grad(on);
    set_attn_input_grad();
  }
  // dmemory: off, backward returns an empty (0, d) dmemory.
  bool requires_memory_grad() const { return memory_grad_; }
  void requires_memory_grad(bool on) { memory_grad_ = on; }

  Index d_model() const { return d_; }
  Index nhead() const { return self_attn_.num_heads(); }
  const TransformerLayerOptions& options() const { return opts_; }
  MultiheadAttention<T>& self_attn() { return self_attn_; }
  MultiheadAttention<T>& multihead_attn() { return multihead_attn_; }
  Linear<T>& linear1() { return linear1_; }
  Linear<T>& linear2() { return linear2_; }
  LayerNorm<T>& norm1() { return norm1_; }
  LayerNorm<T>& norm2() { return norm2_; }
  LayerNorm<T>& norm3() { return norm3_; }
  Dropout<T>& dropout() { return dropout_; }
  Dropout<T>& dropout1() { return dropout1_; }
  Dropout<T>& dropout2() { return dropout2_; }
  Dropout<T>& dropout3() { return dropout3_; }

 private:
  void check_mode(const char* who) const {
    detail::check_incremental(who, this->training_, opts_.dropout);
  }

  void set_attn_input_grad() {
    self_attn_.requires_input_grad(this->input_grad_ || opts_.norm_first);
    multihead_attn_.requires_input_grad(true);
  }

  const Matrix<T>& no_input_grad() {
    dx_.resize(0, d_);
    return dx_;
  }
  void memory_grad(const AttentionGrads<T>& g) {
    if (!memory_grad_) {
      dmem_.resize(0, d_);
      return;
    }
    dmem_.resize(last_.mem_rows, d_);
    dmem_.noalias() = g.dkey + g.dvalue;
  }

  // The caller's masks, copied (same shape: no allocation), into sa_ and ca_.
  void copy_masks(const TransformerDecoderLayerArgs<T>& a) {
    sa_ = {.is_causal = a.tgt_is_causal, .need_weights = false};
    ca_ = {.need_weights = false};
    auto put = [](const auto* from, auto& copy, const auto*& to) {
      if (!from) return;
      copy = *from;
      to = &copy;
    };
    put(a.tgt_key_padding_mask, tgt_pad_, sa_.key_padding_mask);
    put(a.tgt_mask, tgt_mask_, sa_.attn_mask);
    put(a.tgt_bias, tgt_bias_, sa_.attn_bias);
    put(a.memory_key_padding_mask, mem_pad_, ca_.key_padding_mask);
    put(a.memory_mask, mem_mask_, ca_.attn_mask);
    put(a.memory_bias, mem_bias_, ca_.attn_bias);
  }

  Module<T>& activation() {
    if (opts_.activation == TransformerActivation::gelu) return gelu_;
    return relu_;
  }

  // ff(x) = dropout3(linear2(dropout(activation(linear1(x)))))    x (B*Tt, d) -> (B*Tt, d)
  ConstRef<T> ff_forward(const ConstRef<T>& x) {
    const Matrix<T>& f1 = linear1_.forward(x);      // (a) f1 = x W1^T + b1     (B*Tt, ff)
    const Matrix<T>& g = activation().forward(f1);  // (b) g = act(f1)          (B*Tt, ff)
    const ConstRef<T> gd = dropout_.forward_view(g);      // (c) gd = dropout(g)      (B*Tt, ff)
    const Matrix<T>& f2 = linear2_.forward(gd);     // (d) f2 = gd W2^T + b2    (B*Tt, d)
    return dropout3_.forward_view(f2);                   // (e) dropout3(f2)         (B*Tt, d)
  }
  // d of ff_forward: df (B*Tt, d) -> dx (B*Tt, d)
  const Matrix<T>& ff_backward(const ConstRef<T>& df) {
    const ConstRef<T> df2 = dropout3_.backward_view(df);     // d(e)                  (B*Tt, d)
    const Matrix<T>& dgd = linear2_.backward(df2);     // d(d)                  (B*Tt, ff)
    const ConstRef<T> dg = dropout_.backward_view(dgd);      // d(c)                  (B*Tt, ff)
    const Matrix<T>& df1 = activation().backward(dg);  // d(b)                  (B*Tt, ff)
    return linear1_.backward(df1);                     // d(a)                  (B*Tt, d)
  }

  Index d_;
  TransformerLayerOptions opts_;
  MultiheadAttention<T> self_attn_;
  MultiheadAttention<T> multihead_attn_;  // query: the tgt stream; key = value: memory
  Linear<T> linear1_;   // (ff, d)
  Linear<T> linear2_;   // (d, ff)
  Dropout<T> dropout_;  // after the activation
  LayerNorm<T> norm1_, norm2_, norm3_;
  Dropout<T> dropout1_;  // after self-attention
  Dropout<T> dropout2_;  // after cross-attention
  Dropout<T> dropout3_;  // after linear2
  ReLU<T> relu_;
  GELU<T> gelu_;
  bool memory_grad_ = true;
  bool stepped_ = false;  // forward_step ran since the last forward

  // The shapes of the last forward. Not copied: a copy's attentions would still point at the
  // original's masks, so a copy (or a moved-to layer) has had no forward yet.
  struct LastForward {
    Index B = 0, rows = 0, mem_rows = 0;
    LastForward() = default;
    LastForward(const LastForward&) noexcept {}
    LastForward& operator=(const LastForward&) noexcept {
      B = rows = mem_rows = 0;
      return *this;
    }
  } last_;
  MultiheadAttentionArgs<T> sa_, ca_;  // the attentions' arguments, pointing at the copies
  BoolMatrix tgt_pad_, tgt_mask_;      // (B, Tt), (Tt, Tt) copies of the masks
  BoolMatrix mem_pad_, mem_mask_;      // (B, Tm), (Tt, Tm)
  Matrix<T> tgt_bias_, mem_bias_;      // (Tt, Tt), (Tt, Tm)
  Matrix<T> h1_, h2_;                  // (B*Tt, d) residual sums
  Matrix<T> h3_;                       // (B*Tt, d) third residual sum, post-norm
  Matrix<T> out_;                      // (B*Tt, d) output, pre-norm
  Matrix<T> dy1_, dy2_, dh1_, dh2_, dn1_;  // (B*Tt, d) backward scratch
  Matrix<T> dx_;                       // (B*Tt, d)
  Matrix<T> dmem_;                     // (B*Tm, d)
};

}  // namespace heed
