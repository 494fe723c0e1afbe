// libtorch's side of the attention comparison: bench/compare/attention_torch.py in C++, at heed's
// bench_attention shapes: batch 8, 8 heads, head dim 64 (embed 512), float32, self-attention
// with Tq = Tk = T.
//
//   libtorch/sdpa_math/{fwd,fwdbwd}/T:n   softmax(Q K^T / sqrt(d)) V with matmul on (B, H, T, d)
//                                         (libtorch 1.13 has no fused CPU attention)
//   libtorch/mha/{plain,fused}/...        torch::nn::MultiheadAttention(512, 8), need_weights
//                                         true ("plain") / false ("fused", named after the heed
//                                         path it is compared with; torch forms the weights anyway)
//
// The C++ MultiheadAttention of 1.13 has no batch_first: the input is (B, T, E) as in the Python
// twin (batch_first=True) and each call transposes it to (T, B, E) and the output back, which is
// what Python's batch_first=True does inside forward. The module stays in training mode, as in
// Python (no fast path on either side).
//
// Timing and memory as attention_torch.py (common.hpp): one warm-up call whose peak RSS growth is
// peak_extra_MiB, then timed calls until min_time seconds and at least `reps` calls; the median.
// Cases predicted to need more than the memory budget are skipped (same prediction as Python).
//   attention_torch --out libtorch.json [--lens 128,...,4096] [--reps 5] [--min-time 1.0]
//       [--threads 2] [--mem-budget-mib N (default: half of MemAvailable)]
#include "common.hpp"

namespace {

constexpr int64_t B = 8, H = 8, D = 64, E = H * D;

std::function<void()> sdpa_case(int64_t T, bool backward) {
  auto q = torch::randn({B, H, T, D}), k = torch::randn({B, H, T, D}), v = torch::randn({B, H, T, D});
  auto dout = torch::randn({B, H, T, D});
  if (backward)
    for (auto* t : {&q, &k, &v}) t->requires_grad_(true);
  const double scale = 1.0 / std::sqrt(double(D));
  return [=]() mutable {
    auto out = torch::softmax(torch::matmul(q, k.transpose(-2, -1)) * scale, -1).matmul(v);
    if (backward) {
      for (auto* t : {&q, &k, &v}) t->mutable_grad().reset();
      out.backward(dout);
    }
  };
}

std::function<void()> mha_case(int64_t T, bool backward, bool need_weights) {
  torch::manual_seed(0);
  torch::nn::MultiheadAttention mha(torch::nn::MultiheadAttentionOptions(E, H));
  auto x = torch::randn({B, T, E}, torch::requires_grad(backward));
  auto dout = torch::randn({B, T, E});
  return [=]() mutable {
    if (backward) {
      const auto xt = x.transpose(0, 1);  // (T, B, E)
      auto out = std::get<0>(mha->forward(xt, xt, xt, {}, need_weights)).transpose(0, 1);
      mha->zero_grad(/*set_to_none=*/true);
      x.mutable_grad().reset();
      out.backward(dout);
    } else {
      torch::NoGradGuard no_grad;
      const auto xt = x.transpose(0, 1);
      mha->forward(xt, xt, xt, {}, need_weights);
    }
  };
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string out = cmp::flag(argc, argv, "--out", "");
  if (out.empty()) {
    std::fprintf(stderr, "usage: attention_torch --out FILE.json [--lens 128,256] [--reps 5] [--min-time 1.0] "
                         "[--threads 2] [--mem-budget-mib N]\n");
    return 2;
  }
  const auto lens = cmp::parse_lens(cmp::flag(argc, argv, "--lens", "128,256,512,1024,2048,4096"));
  const int reps_arg = std::stoi(cmp::flag(argc, argv, "--reps", "5"));
  const double min_time = std::stod(cmp::flag(argc, argv, "--min-time", "1.0"));
  const int threads = std::stoi(cmp::flag(argc, argv, "--threads", "2"));
  double budget = std::stod(cmp::flag(argc, argv, "--mem-budget-mib", "0"));
  cmp::set_threads(threads);
  cmp::fix_mmap_threshold();
  if (budget <= 0) budget = cmp::mem_available_mib() / 2;

  cmp::Results results;
  for (const int64_t T : lens) {
    const double weights_mib = double(B * H * T * T * 4) / double(1 << 20);
    for (const bool backward : {false, true}) {
      const std::string phase = backward ? "fwdbwd" : "fwd";
      // scores, probabilities and (backward) their gradients: ~3-4 (B, H, T, T) tensors
      const double need = weights_mib * (backward ? 4 : 2);
      const std::string suffix = "/" + phase + "/T:" + std::to_string(T);
      const std::vector<std::pair<std::string, std::function<std::function<void()>()>>> cases = {
          {"libtorch/sdpa_math" + suffix, [&] { return sdpa_case(T, backward); }},
          {"libtorch/mha/plain" + suffix, [&] { return mha_case(T, backward, true); }},
          {"libtorch/mha/fused" + suffix, [&] { return mha_case(T, backward, false); }}};
      for (const auto& [name, make] : cases) {
        if (need > budget) {
          results.skip(name, need, budget);
          continue;
        }
        const int reps = T < 2048 ? reps_arg : std::min(reps_arg, 3);
        results.add(name, cmp::timed(make(), reps, T < 2048 ? min_time : 0));
      }
    }
  }
  results.write(out, threads);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "attention_torch: %s\n", e.what());
  return 1;
}
