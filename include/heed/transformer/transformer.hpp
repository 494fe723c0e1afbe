#pragma once
// Transformer<T>: torch.nn.Transformer(batch_first=True), an encoder and a decoder stack, each
// with a final LayerNorm:
//   memory = encoder.norm(encoder(src, src masks))      src (B*Ts, d) -> memory (B*Ts, d)  (1)
//   out = decoder.norm(decoder(tgt, memory, masks))     tgt (B*Tt, d) -> out (B*Tt, d)     (2)
// Names as PyTorch: "encoder.layers.0.self_attn.in_proj_weight", ..., "encoder.norm.weight",
// "decoder.layers.0.multihead_attn.out_proj.bias", ..., "decoder.norm.bias".
//
// Initialisation as PyTorch's: one encoder layer and one decoder layer are built and copied
// num_*_layers times (TransformerEncoder's copy constructor), then every matrix parameter
// (PyTorch's p.dim() > 1: the attention projections and linear1/linear2 weights) is redrawn
// xavier_uniform_ from `gen`, in parameter order. Biases and norms keep their values.
//
// Like nn.Transformer it has no embeddings, positions or output layer: a model puts them
// around it (TransformerSeq2Seq in heed/models does). encode / decode run the halves alone,
// and the decoder's incremental decoding (start_cache / forward_step) decodes token by token.
#include <string>

#include "../core/init.hpp"
#include "decoder.hpp"
#include "encoder.hpp"

namespace heed {

// PyTorch's constructor arguments after d_model and nhead, flat.
struct TransformerOptions {
  Index num_encoder_layers = 6;
  Index num_decoder_layers = 6;
  Index dim_feedforward = 2048;
  double dropout = 0.1;
  TransformerActivation activation = TransformerActivation::relu;
  double layer_norm_eps = 1e-5;
  bool norm_first = false;
  bool bias = true;

  TransformerLayerOptions layer() const {
    return {.dim_feedforward = dim_feedforward, .dropout = dropout, .activation = activation,
            .layer_norm_eps = layer_norm_eps, .norm_first = norm_first, .bias = bias};
  }
};

// forward's masks, with PyTorch's names (src_is_causal as the encoder's is_causal).
template <typename T>
struct TransformerArgs {
  const BoolMatrix* src_mask = nullptr;                 // (Ts, Ts) true = not allowed
  const Matrix<T>* src_bias = nullptr;                  // (Ts, Ts) additive float mask
  const BoolMatrix* tgt_mask = nullptr;                 // (Tt, Tt)
  const Matrix<T>* tgt_bias = nullptr;                  // (Tt, Tt)
  const BoolMatrix* memory_mask = nullptr;              // (Tt, Ts)
  const Matrix<T>* memory_bias = nullptr;               // (Tt, Ts)
  const BoolMatrix* src_key_padding_mask = nullptr;     // (B, Ts) true = padding
  const BoolMatrix* tgt_key_padding_mask = nullptr;     // (B, Tt)
  const BoolMatrix* memory_key_padding_mask = nullptr;  // (B, Ts)
  bool src_is_causal = false;
  bool tgt_is_causal = false;

  TransformerEncoderArgs<T> encoder() const {
    return {.src_mask = src_mask, .src_bias = src_bias,
            .src_key_padding_mask = src_key_padding_mask, .is_causal = src_is_causal};
  }
  TransformerDecoderArgs<T> decoder() const {
    return {.tgt_mask = tgt_mask, .tgt_bias = tgt_bias, .memory_mask = memory_mask,
            .memory_bias = memory_bias, .tgt_key_padding_mask = tgt_key_padding_mask,
            .memory_key_padding_mask = memory_key_padding_mask, .tgt_is_causal = tgt_is_causal};
  }
};

// backward's result: the module's own buffers, valid until its next backward.
template <typename T>
struct TransformerGrads {
  const Matrix<T>& dsrc;  // (B*Ts, d), or (0, d) with requires_input_grad(false)
  const Matrix<T>& dtgt;  // (B*Tt, d), or (0, d) with requires_input_grad(false)
};

template <typename T>
class Transformer : public ModuleBase<T> {
 public:
  Transformer(Index d_model = 512, Index nhead = 8, TransformerOptions opts = {},
              Generator& gen = default_generator())
      : opts_(check(opts)),
        nhead_(nhead),
        encoder_(TransformerEncoderLayer<T>(d_model, nhead, opts.layer(), gen),
                 opts.num_encoder_layers,
                 {.norm = LayerNorm<T>(d_model, opts.layer_norm_eps)}, gen),
        decoder_(TransformerDecoderLayer<T>(d_model, nhead, opts.layer(), gen),
                 opts.num_decoder_layers,
                 {.norm = LayerNorm<T>(d_model, opts.layer_norm_eps)}, gen) {
    // PyTorch's _reset_parameters: xavier_uniform_ on every p with p.dim() > 1.
    for (auto& p : this->parameters())
      if (p.name.find("norm") == std::string::npos && !p.name.ends_with("bias"))
        init::xavier_uniform_(*p.value, 1.0, gen);
  }

  // forward  src (B*Ts, d), tgt (B*Tt, d) -> out (B*Tt, d)
  const Matrix<T>& forward(const ConstRef<T>& src, const ConstRef<T>& tgt, Index B,
                           const TransformerArgs<T>& args = {}) {
    const TransformerDecoderArgs<T> da = args.decoder();
    // Both halves' shapes are checked before the encoder runs, so a bad input or mask costs
    // nothing; memory has src's shape.
    detail::check_encoder_input<T>("Transformer", src, B, d_model(), args.encoder());
    detail::check_decoder_input<T>("Transformer", tgt, src, B, d_model(), da);
    forwarded_ = false;
    const Matrix<T>& memory = encoder_.forward(src, B, args.encoder());  // (1)
    const Matrix<T>& out = decoder_.forward(tgt, memory, B, da);         // (2)
    forwarded_ = true;
    return out;
  }

  // backward  dout (B*Tt, d) -> {dsrc (B*Ts, d), dtgt (B*Tt, d)}; += every parameter gradient
  TransformerGrads<T> backward(const ConstRef<T>& dout) {
    // After encode / decode alone the encoder's last input need not be the decoder's memory.
    detail::require(forwarded_, "Transformer",
                    "backward needs forward(src, tgt, ...) first (encode and decode run the "
                    "halves alone: call their backward on encoder() and decoder())");
    const auto g = decoder_.backward(dout);                  // d(2): dtgt, dmemory
    return {encoder_.backward(g.dmemory), g.dtgt};            // d(1)
  }

  // The halves alone: memory = encode(src), then decode(tgt, memory) (or decoder's
  // start_cache / forward_step for incremental decoding).
  const Matrix<T>& encode(const ConstRef<T>& src, Index B,
                          const TransformerEncoderArgs<T>& a = {}) {
    forwarded_ = false;
    return encoder_.forward(src, B, a);
  }
  const Matrix<T>& decode(const ConstRef<T>& tgt, const ConstRef<T>& memory, Index B,
                          const TransformerDecoderArgs<T>& a = {}) {
    forwarded_ = false;
    return decoder_.forward(tgt, memory, B, a);
  }

  Children<T> children() override { return {{"encoder", &encoder_}, {"decoder", &decoder_}}; }
  std::string name() const override { return "Transformer"; }
  std::string extra_repr() const override {
    return "num_encoder_layers=" + std::to_string(opts_.num_encoder_layers) +
           ", num_decoder_layers=" + std::to_string(opts_.num_decoder_layers);
  }
  using ModuleBase<T>::requires_input_grad;  // the getter, not hidden by the override
  void requires_input_grad(bool on) override {
    ModuleBase<T>::requires_input_grad(on);
    encoder_.requires_input_grad(on);
    decoder_.requires_input_grad(on);
  }

  Index d_model() const { return encoder_.d_model(); }
  Index nhead() const { return nhead_; }
  const TransformerOptions& options() const { return opts_; }
  TransformerEncoder<T>& encoder() { return encoder_; }
  TransformerDecoder<T>& decoder() { return decoder_; }

 private:
  static TransformerOptions check(const TransformerOptions& o) {
    detail::require(o.num_encoder_layers > 0 && o.num_decoder_layers > 0, "Transformer",
                    "num_encoder_layers and num_decoder_layers must be positive, got " +
                        std::to_string(o.num_encoder_layers) + " and " +
                        std::to_string(o.num_decoder_layers));
    return o;
  }

  TransformerOptions opts_;
  Index nhead_;
  TransformerEncoder<T> encoder_;
  TransformerDecoder<T> decoder_;
  bool forwarded_ = false;  // the last call was forward: backward may follow
};

}  // namespace heed
