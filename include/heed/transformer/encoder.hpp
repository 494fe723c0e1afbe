#pragma once
// TransformerEncoder<T>: torch.nn.TransformerEncoder, a stack of TransformerEncoderLayers and
// an optional final LayerNorm:
//   x_0 = src,  x_{i+1} = layers[i](x_i, masks),  out = norm(x_L) (or x_L without a norm)
// Every layer gets the same masks. Names as PyTorch: "layers.0.self_attn.in_proj_weight", ...,
// "norm.weight", "norm.bias".
//
// Two ways to build one:
//   TransformerEncoder(layer, num_layers, {.norm = LayerNorm<T>(d)}, gen)
//       PyTorch's way: num_layers copies of `layer` (PyTorch deep-copies it), so every layer
//       starts with the same weights. Layer 0 keeps `layer`'s dropout streams; the streams of
//       layers 1.. are reseeded by draws from `gen`, so copies do not drop the same units.
//   TransformerEncoder(d_model, nhead, num_layers, layer_options, {.norm = ...}, gen)
//       Fresh initialisation: each layer constructed in turn from `gen`, its own weights.
// An encoder is movable, not copyable (its layers are held by ModuleList).
// PyTorch 1.13's eval-mode fast path (nested tensors, enable_nested_tensor) is an
// implementation detail that only changes the outputs at padded positions; heed has none.
#include <optional>
#include <string>

#include "../layers/layer_norm.hpp"
#include "../layers/module_list.hpp"
#include "layer_stack.hpp"
#include "encoder_layer.hpp"

namespace heed {

template <typename T>
struct TransformerEncoderOptions {
  std::optional<LayerNorm<T>> norm;  // the final LayerNorm (PyTorch's `norm`), none by default
};

// TransformerEncoder::forward takes the layer's masks (PyTorch names src_mask `mask` here).
template <typename T>
using TransformerEncoderArgs = TransformerEncoderLayerArgs<T>;

template <typename T>
class TransformerEncoder : public ModuleBase<T> {
 public:
  using Layer = TransformerEncoderLayer<T>;

  TransformerEncoder(const Layer& layer, Index num_layers, TransformerEncoderOptions<T> opts = {},
                     Generator& gen = default_generator())
      : d_(layer.d_model()),
        stack_("TransformerEncoder", layer, num_layers, std::move(opts.norm), gen) {}

  TransformerEncoder(Index d_model, Index nhead, Index num_layers,
                     TransformerLayerOptions layer_opts = {},
                     TransformerEncoderOptions<T> opts = {}, Generator& gen = default_generator())
      : d_(d_model),
        stack_("TransformerEncoder", d_model, nhead, num_layers, layer_opts, std::move(opts.norm),
               gen) {}

  // forward                                        src (B*T, d) -> out (B*T, d)
  const Matrix<T>& forward(const ConstRef<T>& src, Index B,
                           const TransformerEncoderArgs<T>& args = {}) {
    detail::check_encoder_input<T>("TransformerEncoder", src, B, d_, args);
    auto& layers = stack_.layers;
    const Matrix<T>* x = &layers[0].forward(src, B, args);           // (1) x_1 (B*T, d)
    for (std::size_t i = 1; i < layers.size(); ++i)
      x = &layers[i].forward(*x, B, args);                           // (2) x_{i+1}
    if (stack_.norm) x = &stack_.norm->forward(*x);                  // (3) out = norm(x_L)
    rows_ = src.rows();
    return *x;
  }

  // backward                                       dout (B*T, d) -> dsrc (B*T, d)
  // += every parameter gradient; empty (0, d) with requires_input_grad(false).
  const Matrix<T>& backward(const ConstRef<T>& dout) {
    detail::require_forward(rows_ > 0, "TransformerEncoder");
    detail::check_shape("TransformerEncoder", "gradient", dout, rows_, d_);
    auto& layers = stack_.layers;
    std::size_t i = layers.size() - 1;
    const Matrix<T>* g = stack_.norm ? &layers[i].backward(stack_.norm->backward(dout))  // d(3)
                                     : &layers[i].backward(dout);                        // d(2)
    while (i-- > 0) g = &layers[i].backward(*g);                     // d(2), d(1)
    return *g;
  }

  Children<T> children() override { return stack_.children(); }
  std::string name() const override { return "TransformerEncoder"; }
  std::string extra_repr() const override { return stack_.extra_repr(); }
  // Only the first layer sees the encoder's input.
  using ModuleBase<T>::requires_input_grad;  // the getter, not hidden by the override
  void requires_input_grad(bool on) override {
    ModuleBase<T>::requires_input_grad(on);
    stack_.layers[0].requires_input_grad(on);
  }

  Index num_layers() const { return static_cast<Index>(stack_.layers.size()); }
  Index d_model() const { return d_; }
  Layer& layer(std::size_t i) { return stack_.layers[i]; }
  ModuleList<T, Layer>& layers() { return stack_.layers; }
  LayerNorm<T>* norm() { return stack_.norm ? &*stack_.norm : nullptr; }

 private:

  Index d_;
  detail::LayerStack<T, Layer> stack_;  // layers and final norm
  Index rows_ = 0;  // of the last forward
};

}  // namespace heed
