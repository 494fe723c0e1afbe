#pragma once
// LayerStack: the layers and optional final LayerNorm of TransformerEncoder and
// TransformerDecoder, and the two ways both build them:
//   copies of one layer (PyTorch's deepcopy): layer 0 keeps the original's dropout streams,
//       layers 1.. are reseeded by draws from `gen`, so copies do not drop the same units;
//   fresh layers, each constructed in turn from `gen` (its own weights).
// Names as PyTorch: "layers.{i}.…" and "norm.…".
#include <optional>
#include <string>
#include <utility>

#include "../core/error.hpp"
#include "../core/module.hpp"
#include "../core/random.hpp"
#include "../layers/layer_norm.hpp"
#include "../layers/module_list.hpp"
#include "layer_options.hpp"

namespace heed::detail {

template <typename T, class Layer>
struct LayerStack {
  ModuleList<T, Layer> layers;
  std::optional<LayerNorm<T>> norm;

  LayerStack(const char* who, const Layer& layer, Index num_layers,
             std::optional<LayerNorm<T>> final_norm, Generator& gen)
      : norm(std::move(final_norm)) {
    check(who, num_layers, layer.d_model());
    for (Index i = 0; i < num_layers; ++i) {
      Layer& l = layers.emplace(layer);
      if (i > 0)
        for (auto& [path, g] : l.generators()) g->seed(gen.bits());
    }
  }

  LayerStack(const char* who, Index d_model, Index nhead, Index num_layers,
             const TransformerLayerOptions& opts, std::optional<LayerNorm<T>> final_norm,
             Generator& gen)
      : norm(std::move(final_norm)) {
    check(who, num_layers, d_model);
    for (Index i = 0; i < num_layers; ++i) layers.emplace(d_model, nhead, opts, gen);
  }

  Children<T> children() {
    Children<T> c{{"layers", &layers}};
    if (norm) c.emplace_back("norm", &*norm);
    return c;
  }
  std::string extra_repr() const {
    return "num_layers=" + std::to_string(layers.size()) + (norm ? ", norm=LayerNorm" : "");
  }

 private:
  void check(const char* who, Index num_layers, Index d) {
    require(num_layers > 0, who, "num_layers must be positive, got " + std::to_string(num_layers));
    if (!norm) return;
    for (auto& p : norm->parameters())
      if (p.value->cols() != d)
        throw ShapeError(std::string(who) + ": norm expected LayerNorm(" + std::to_string(d) +
                         "), got LayerNorm(" + std::to_string(p.value->cols()) + ")");
  }
};

}  // namespace heed::detail
