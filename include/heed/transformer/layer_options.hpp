#pragma once
// The options shared by TransformerEncoderLayer and TransformerDecoderLayer (PyTorch's
// constructor arguments after d_model and nhead), and their validation.
#include <string>
#include <string_view>

#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace heed {

enum class TransformerActivation { relu, gelu };

struct TransformerLayerOptions {
  Index dim_feedforward = 2048;
  double dropout = 0.1;  // every Dropout of the layer and its attentions' attention dropout
  TransformerActivation activation = TransformerActivation::relu;
  double layer_norm_eps = 1e-5;
  bool norm_first = false;  // pre-norm when true
  bool bias = true;         // the Linear and attention biases (the norms keep theirs)
};

// The names the layers took them under first; all one struct.
using TransformerEncoderLayerOptions = TransformerLayerOptions;
using TransformerDecoderLayerOptions = TransformerLayerOptions;

namespace detail {

inline void validate_transformer_layer(std::string_view who, Index d_model, Index nhead,
                                       const TransformerLayerOptions& o) {
  require(d_model > 0 && nhead > 0, who,
          "d_model and nhead must be positive, got " + std::to_string(d_model) + " and " +
              std::to_string(nhead));
  require(d_model % nhead == 0, who,
          "d_model " + std::to_string(d_model) + " not divisible by nhead " +
              std::to_string(nhead));
  require(o.dim_feedforward > 0, who,
          "dim_feedforward must be positive, got " + std::to_string(o.dim_feedforward));
  require(o.dropout >= 0.0 && o.dropout < 1.0, who,
          "dropout must be in [0, 1), got " + num_repr(o.dropout));
  require(o.layer_norm_eps > 0, who,
          "layer_norm_eps must be positive, got " + num_repr(o.layer_norm_eps));
}

// extra_repr's common part: "d_model=.., nhead=.., ..., norm_first=..[, bias=false]".
inline std::string transformer_layer_repr(Index d_model, Index nhead,
                                          const TransformerLayerOptions& o) {
  std::string s = "d_model=" + std::to_string(d_model) + ", nhead=" + std::to_string(nhead) +
                  ", dim_feedforward=" + std::to_string(o.dim_feedforward) +
                  ", dropout=" + num_repr(o.dropout) + ", activation=" +
                  (o.activation == TransformerActivation::gelu ? "gelu" : "relu") +
                  ", layer_norm_eps=" + num_repr(o.layer_norm_eps) +
                  ", norm_first=" + (o.norm_first ? "true" : "false");
  if (!o.bias) s += ", bias=false";
  return s;
}

}  // namespace detail
}  // namespace heed
