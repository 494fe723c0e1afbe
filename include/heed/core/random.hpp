#pragma once
// Seeded random numbers with results that do not depend on the standard library: the
// std::*_distribution classes are implementation-defined, so heed draws from mt19937_64 bits
// itself. Same seed, same numbers, on every platform.
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>

namespace heed {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0x5EEDu) : engine_(seed) {}

  void seed(std::uint64_t s) { engine_.seed(s); }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

  // Standard normal by Box-Muller (one value per call; simple and reproducible).
  double normal(double mean = 0.0, double std = 1.0) {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return mean + std * std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2);
  }

  bool bernoulli(double p) { return uniform() < p; }

  // Uniform integer in [0, n) without modulo bias (Lemire's method would be faster; this is
  // not on a hot path).
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    std::uint64_t r;
    do r = engine_(); while (r >= limit);
    return r % n;
  }

  std::uint64_t bits() { return engine_(); }

  std::mt19937_64& engine() { return engine_; }

 private:
  std::mt19937_64 engine_;
};

// The process-wide generator used by constructors that are not handed one, like PyTorch's
// default generator. Not thread-safe: build models from one thread, or pass a Generator.
inline Generator& default_generator() {
  static Generator g;
  return g;
}

// torch.manual_seed: reseed the default generator.
inline void manual_seed(std::uint64_t s) { default_generator().seed(s); }

}  // namespace heed
