// libtorch's side of bench_transformer: bench/compare/transformer_torch.py in C++.
// TransformerEncoderLayer(512, 8, dim_feedforward 2048, dropout 0, ReLU), float32, batch 8,
// T tokens, training mode (no fast path on either side).
//
//   libtorch/layer/{fwd,fwdbwd}/T:n          torch::nn::TransformerEncoderLayer (post-norm)
//   libtorch/layer_prenorm/{fwd,fwdbwd}/...  the norm_first=True layer, composed here from the
//                                            same torch::nn modules (below)
//   fwd under NoGradGuard; fwdbwd = forward, then backward of a fixed random upstream gradient
//   into every parameter and the input.
//
// The 1.13 C++ API differs from Python's in two ways that matter here:
//  - no batch_first: the input is (B, T, E) as in the Python twin (batch_first=True) and each
//    call transposes it to (T, B, E) and the output back, as Python's batch_first does inside;
//  - no norm_first: PreNormLayer builds x + SA(LN1(x)), then x + FF(LN2(x)), exactly Python's
//    norm_first=True forward (self-attention with need_weights=False, dropouts of p = 0 kept).
//
// Timing and memory as attention_torch.py (common.hpp). --mem-budget-mib as attention_torch:
// the layer's attention forms the (B, H, T, T) weights, ~4 of them alive forward+backward
// (~16 GiB at T = 4096), so cases predicted above the budget are skipped.
//   transformer_torch --out libtorch.json [--lens 128,256,512] [--reps 3] [--min-time 0.5]
//       [--threads 1] [--mem-budget-mib N (default: half of MemAvailable)]
#include "common.hpp"

namespace {

constexpr int64_t B = 8, E = 512, H = 8, FF = 2048;
namespace nn = torch::nn;

// Python's TransformerEncoderLayer with norm_first=True, in the module order of its __init__
// (self_attn, linear1, dropout, linear2, norm1, norm2, dropout1, dropout2), so the parameters
// are drawn the same way.
struct PreNormLayerImpl : nn::Module {
  nn::MultiheadAttention self_attn{nullptr};
  nn::Linear linear1{nullptr}, linear2{nullptr};
  nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  nn::Dropout dropout{nullptr}, dropout1{nullptr}, dropout2{nullptr};

  PreNormLayerImpl() {
    self_attn = register_module("self_attn", nn::MultiheadAttention(nn::MultiheadAttentionOptions(E, H)));
    linear1 = register_module("linear1", nn::Linear(E, FF));
    dropout = register_module("dropout", nn::Dropout(0.0));
    linear2 = register_module("linear2", nn::Linear(FF, E));
    norm1 = register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({E}).eps(1e-5)));
    norm2 = register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({E}).eps(1e-5)));
    dropout1 = register_module("dropout1", nn::Dropout(0.0));
    dropout2 = register_module("dropout2", nn::Dropout(0.0));
  }
  torch::Tensor forward(torch::Tensor x) {  // (T, B, E)
    auto h = norm1(x);
    x = x + dropout1(std::get<0>(self_attn->forward(h, h, h, {}, /*need_weights=*/false)));
    return x + dropout2(linear2(dropout(torch::relu(linear1(norm2(x))))));
  }
};
TORCH_MODULE(PreNormLayer);

std::function<void()> layer_case(int64_t T, bool backward, bool norm_first) {
  torch::manual_seed(0);
  std::function<torch::Tensor(const torch::Tensor&)> layer;
  if (norm_first) {
    PreNormLayer m;
    layer = [m](const torch::Tensor& x) mutable {
      torch::Tensor out = m(x);
      if (torch::GradMode::is_enabled()) m->zero_grad(/*set_to_none=*/true);
      return out;
    };
  } else {
    nn::TransformerEncoderLayer m(nn::TransformerEncoderLayerOptions(E, H).dim_feedforward(FF).dropout(0.0));
    layer = [m](const torch::Tensor& x) mutable {
      torch::Tensor out = m(x);
      if (torch::GradMode::is_enabled()) m->zero_grad(/*set_to_none=*/true);
      return out;
    };
  }
  auto x = torch::randn({B, T, E}, torch::requires_grad(backward));
  auto dout = torch::randn({B, T, E});
  return [=]() mutable {
    if (backward) {
      // layer() clears the parameters' gradients after its forward, as Python's zero_grad
      auto out = layer(x.transpose(0, 1)).transpose(0, 1);
      x.mutable_grad().reset();
      out.backward(dout);
    } else {
      torch::NoGradGuard no_grad;
      layer(x.transpose(0, 1));
    }
  };
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string out = cmp::flag(argc, argv, "--out", "");
  if (out.empty()) {
    std::fprintf(stderr, "usage: transformer_torch --out FILE.json [--lens 128,256,512] [--reps 3] "
                         "[--min-time 0.5] [--threads 1] [--mem-budget-mib N]\n");
    return 2;
  }
  const auto lens = cmp::parse_lens(cmp::flag(argc, argv, "--lens", "128,256,512"));
  const int reps = std::stoi(cmp::flag(argc, argv, "--reps", "3"));
  const double min_time = std::stod(cmp::flag(argc, argv, "--min-time", "0.5"));
  const int threads = std::stoi(cmp::flag(argc, argv, "--threads", "1"));
  double budget = std::stod(cmp::flag(argc, argv, "--mem-budget-mib", "0"));
  cmp::set_threads(threads);
  cmp::fix_mmap_threshold();
  if (budget <= 0) budget = cmp::mem_available_mib() / 2;

  cmp::Results results;
  for (const int64_t T : lens) {
    const double weights_mib = double(B * H * T * T * 4) / double(1 << 20);
    for (const bool backward : {false, true}) {
      const std::string phase = backward ? "fwdbwd" : "fwd";
      const double need = weights_mib * (backward ? 4 : 2);
      for (const bool norm_first : {false, true}) {
        const std::string name = std::string("libtorch/") + (norm_first ? "layer_prenorm" : "layer") + "/" +
                                 phase + "/T:" + std::to_string(T);
        if (need > budget) {
          results.skip(name, need, budget);
          continue;
        }
        results.add(name, cmp::timed(layer_case(T, backward, norm_first), reps, min_time));
      }
    }
  }
  results.write(out, threads);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "transformer_torch: %s\n", e.what());
  return 1;
}
