#pragma once
// TransformerDecoder<T>: torch.nn.TransformerDecoder, a stack of TransformerDecoderLayers and
// an optional final LayerNorm:
//   x_0 = tgt,  x_{i+1} = layers[i](x_i, memory, masks),  out = norm(x_L) (or x_L)
// Every layer gets the same memory and masks, so dmemory is the sum of the layers' dmemory.
// Names as PyTorch: "layers.0.self_attn.in_proj_weight", ..., "norm.weight", "norm.bias".
//
// Two ways to build one, as TransformerEncoder:
//   TransformerDecoder(layer, num_layers, {.norm = LayerNorm<T>(d)}, gen)
//       num_layers copies of `layer` (PyTorch deep-copies it); layer 0 keeps `layer`'s dropout
//       streams, those of layers 1.. are reseeded by draws from `gen`.
//   TransformerDecoder(d_model, nhead, num_layers, layer_options, {.norm = ...}, gen)
//       fresh initialisation, each layer constructed in turn from `gen`.
// A decoder is movable, not copyable (its layers are held by ModuleList).
#include <optional>
#include <string>
#include <vector>

#include "../layers/layer_norm.hpp"
#include "../layers/module_list.hpp"
#include "layer_stack.hpp"
#include "decoder_layer.hpp"

namespace heed {

template <typename T>
struct TransformerDecoderOptions {
  std::optional<LayerNorm<T>> norm;  // the final LayerNorm (PyTorch's `norm`), none by default
};

// TransformerDecoder::forward takes the layer's masks, with PyTorch's names.
template <typename T>
using TransformerDecoderArgs = TransformerDecoderLayerArgs<T>;

// Incremental decoding state of a decoder: one cache per layer and the memory's padding.
// reorder(parents) follows beam search: new row i continues old row parents[i].
template <typename T>
struct TransformerDecoderCache {
  std::vector<TransformerDecoderLayerCache<T>> layers;
  BoolMatrix memory_key_padding_mask;  // (B, Tm) copy, empty for none
  bool has_memory_mask = false;

  Index rows() const { return layers.empty() ? 0 : layers[0].self.rows(); }
  Index length() const { return layers.empty() ? 0 : layers[0].self.length(); }
  void reorder(const std::vector<Index>& parents) {
    for (auto& l : layers) l.self.reorder(parents);
  }
  // Forgets the tokens from position len on: the next step is at position len.
  void truncate(Index len) {
    for (auto& l : layers) l.self.truncate(len);
  }
};

template <typename T>
class TransformerDecoder : public ModuleBase<T> {
 public:
  using Layer = TransformerDecoderLayer<T>;

  TransformerDecoder(const Layer& layer, Index num_layers, TransformerDecoderOptions<T> opts = {},
                     Generator& gen = default_generator())
      : d_(layer.d_model()),
        stack_("TransformerDecoder", layer, num_layers, std::move(opts.norm), gen) {}

  TransformerDecoder(Index d_model, Index nhead, Index num_layers,
                     TransformerLayerOptions layer_opts = {},
                     TransformerDecoderOptions<T> opts = {}, Generator& gen = default_generator())
      : d_(d_model),
        stack_("TransformerDecoder", d_model, nhead, num_layers, layer_opts, std::move(opts.norm),
               gen) {}

  // forward                          tgt (B*Tt, d), memory (B*Tm, d) -> out (B*Tt, d)
  const Matrix<T>& forward(const ConstRef<T>& tgt, const ConstRef<T>& memory, Index B,
                           const TransformerDecoderArgs<T>& args = {}) {
    detail::check_decoder_input<T>("TransformerDecoder", tgt, memory, B, d_, args);
    auto& layers = stack_.layers;
    const Matrix<T>* x = &layers[0].forward(tgt, memory, B, args);   // (1) x_1 (B*Tt, d)
    for (std::size_t i = 1; i < layers.size(); ++i)
      x = &layers[i].forward(*x, memory, B, args);                   // (2) x_{i+1}
    if (stack_.norm) x = &stack_.norm->forward(*x);                  // (3) out = norm(x_L)
    rows_ = tgt.rows();
    mem_rows_ = memory.rows();
    stepped_ = false;
    return *x;
  }

  // backward                   dout (B*Tt, d) -> {dtgt (B*Tt, d), dmemory (B*Tm, d)}
  // dmemory summed over the layers; += every parameter gradient.
  TransformerDecoderGrads<T> backward(const ConstRef<T>& dout) {
    if (stepped_)
      throw ValueError("TransformerDecoder: backward called after forward_step, which overwrites "
                       "what backward reads; call forward again first");
    detail::require_forward(rows_ > 0, "TransformerDecoder");
    detail::check_shape("TransformerDecoder", "gradient", dout, rows_, d_);
    if (memory_grad_) dmem_.setZero(mem_rows_, d_);
    else dmem_.resize(0, d_);
    auto& layers = stack_.layers;
    std::size_t i = layers.size() - 1;
    // Each layer's dtgt is its own buffer, read by the layer below it.
    const Matrix<T>* g = &add(stack_.norm ? layers[i].backward(stack_.norm->backward(dout))  // d(3)
                                          : layers[i].backward(dout));                       // d(2)
    while (i-- > 0) g = &add(layers[i].backward(*g));                // d(2), d(1)
    return {*g, dmem_};
  }

  // ---- Incremental decoding (inference; see TransformerDecoderLayer::forward_step) ----
  // start_cache  memory (B*Tm, d) -> c: every layer's cross keys/values, empty self caches
  // for B rows; memory_key_padding_mask (B, Tm) is copied and applied at every step.
  void start_cache(const ConstRef<T>& memory, Index B, TransformerDecoderCache<T>& c,
                   const BoolMatrix* memory_key_padding_mask = nullptr, Index capacity = 16) {
    const char* who = "TransformerDecoder::start_cache";
    check_mode(who);
    detail::check_shape(who, "memory", memory, -1, d_);
    detail::check_batch_rows(who, "memory", memory.rows(), B);
    detail::require(capacity > 0, who, "capacity must be positive, got " + std::to_string(capacity));
    if (memory_key_padding_mask)
      detail::check_shape(who, "memory_key_padding_mask", *memory_key_padding_mask, B,
                          memory.rows() / B);
    c.layers.resize(stack_.layers.size());
    for (std::size_t i = 0; i < stack_.layers.size(); ++i)
      stack_.layers[i].start_cache(memory, B, c.layers[i], capacity);
    c.has_memory_mask = memory_key_padding_mask != nullptr;
    if (c.has_memory_mask) c.memory_key_padding_mask = *memory_key_padding_mask;
  }

  // forward_step  x (n, d): the new token of each of c's n rows -> out (n, d), as row t of
  // forward(tgt, memory, B, {.tgt_is_causal = true}) with the final norm. memory_row (n):
  // the memory row (sample) each decoding row reads, null for row i -> sample i.
  // cross_weights, when given, receive the last layer's cross-attention weights (n, Tm).
  const Matrix<T>& forward_step(const ConstRef<T>& x, TransformerDecoderCache<T>& c,
                                const std::vector<Index>* memory_row = nullptr,
                                Matrix<T>* cross_weights = nullptr) {
    const char* who = "TransformerDecoder::forward_step";
    detail::require(c.layers.size() == stack_.layers.size(), who,
                    "cache has " + std::to_string(c.layers.size()) + " layers, expected " +
                        std::to_string(stack_.layers.size()) + " (call start_cache first)");
    check_mode(who);
    // Every layer's arguments checked before any cache changes: a throw leaves c as it was.
    const TransformerStepArgs a{memory_row,
                                c.has_memory_mask ? &c.memory_key_padding_mask : nullptr};
    for (std::size_t i = 0; i < c.layers.size(); ++i) {
      stack_.layers[i].check_step_input(who, x.rows(), x.cols(), c.layers[i], a);
      if (c.layers[i].self.length() != c.length())
        throw ValueError(std::string(who) + ": cache layer " + std::to_string(i) + " holds " +
                         std::to_string(c.layers[i].self.length()) + " tokens, layer 0 " +
                         std::to_string(c.length()) + " (a cache edited layer by layer)");
    }
    rows_ = 0;  // the layers' caches are overwritten: no backward until the next forward
    stepped_ = true;
    auto& layers = stack_.layers;
    const std::size_t L = layers.size();
    const Matrix<T>* y =
        &layers[0].forward_step(x, c.layers[0], a, L == 1 ? cross_weights : nullptr);
    for (std::size_t i = 1; i < L; ++i)
      y = &layers[i].forward_step(*y, c.layers[i], a, i + 1 == L ? cross_weights : nullptr);
    if (stack_.norm) y = &stack_.norm->forward(*y);
    return *y;
  }

  Children<T> children() override { return stack_.children(); }
  std::string name() const override { return "TransformerDecoder"; }
  std::string extra_repr() const override { return stack_.extra_repr(); }
  // Only the first layer sees the decoder's tgt; every layer sees the memory.
  using ModuleBase<T>::requires_input_grad;  // the getter, not hidden by the override
  void requires_input_grad(bool on) override {
    ModuleBase<T>::requires_input_grad(on);
    stack_.layers[0].requires_input_grad(on);
  }
  bool requires_memory_grad() const { return memory_grad_; }
  void requires_memory_grad(bool on) {
    memory_grad_ = on;
    for (std::size_t i = 0; i < stack_.layers.size(); ++i)
      stack_.layers[i].requires_memory_grad(on);
  }

  Index num_layers() const { return static_cast<Index>(stack_.layers.size()); }
  Index d_model() const { return d_; }
  Layer& layer(std::size_t i) { return stack_.layers[i]; }
  ModuleList<T, Layer>& layers() { return stack_.layers; }
  LayerNorm<T>* norm() { return stack_.norm ? &*stack_.norm : nullptr; }

 private:
  // Incremental decoding has no dropout: refused in training mode with dropout, under the
  // decoder's name (the layers check again under theirs).
  void check_mode(const char* who) const {
    detail::check_incremental(who, this->training_, stack_.layers[0].options().dropout);
  }

  // dmemory += a layer's dmemory; its dtgt passed on.
  const Matrix<T>& add(const TransformerDecoderGrads<T>& g) {
    if (memory_grad_ && g.dmemory.size() > 0) dmem_ += g.dmemory;
    return g.dtgt;
  }

  Index d_;
  detail::LayerStack<T, Layer> stack_;  // layers and final norm
  bool memory_grad_ = true;
  bool stepped_ = false;           // forward_step ran since the last forward
  Index rows_ = 0, mem_rows_ = 0;  // of the last forward
  Matrix<T> dmem_;                 // (B*Tm, d) the sum over layers
};

}  // namespace heed
