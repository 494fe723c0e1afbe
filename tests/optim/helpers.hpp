#pragma once
// Shared by the optim tests: the fixed (2, 3) weight of reference_values.py, its per-step
// grads, and an error-message checker.
#include <doctest/doctest.h>

#include <heed/optim.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "reference_values.hpp"

namespace optim_test {

using heed::Matrix;
using heed::Parameter;

// Relative tolerance against the float64 references: float accumulates a few roundings.
template <class T>
constexpr double tol() {
  return std::is_same_v<T, float> ? 2e-5 : 1e-12;
}

template <class T>
void load(Matrix<T>& m, const std::vector<double>& v) {
  REQUIRE(static_cast<std::size_t>(m.size()) == v.size());
  for (std::size_t i = 0; i < v.size(); ++i) m.data()[i] = static_cast<T>(v[i]);
}

// The weight of reference_values.py (row-major, as torch's flatten()).
template <class T>
struct Weight {
  Matrix<T> w{2, 3}, g{2, 3};
  Weight() {
    load(w, ref::kW0);
    g.setZero();
  }
  std::vector<Parameter<T>> params() { return {{"weight", &w, &g}}; }
};

// Steps `opt` with ref::kGrads and compares w after every step with `expected`.
template <class T, class Opt>
void check_trajectory(Opt& opt, Weight<T>& p, const std::vector<std::vector<double>>& expected) {
  REQUIRE(expected.size() == ref::kGrads.size());
  for (std::size_t k = 0; k < expected.size(); ++k) {
    load(p.g, ref::kGrads[k]);
    opt.step();
    CAPTURE(k);
    for (std::size_t j = 0; j < expected[k].size(); ++j) {
      CAPTURE(j);
      CHECK(static_cast<double>(p.w.data()[j]) == doctest::Approx(expected[k][j]).epsilon(tol<T>()));
    }
  }
}

// Runs f, expecting an E whose message contains every one of `parts`.
template <class E, class F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    FAIL("expected an exception containing '" << (parts.empty() ? "" : parts[0]) << "'");
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& part : parts) {
      INFO("message: " << msg);
      CHECK(msg.find(part) != std::string::npos);
    }
  }
}

}  // namespace optim_test
