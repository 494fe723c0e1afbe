#pragma once
// Shared by the transformer tests: deterministic fills and a gradient check of a module with
// forward(x, B, args) -> (B*T, d) and backward(dout) -> dx, through L = sum(R .* forward(x)).
//
// Every test file of this folder includes this header first, so that all of test_transformer
// sees Eigen with EIGEN_RUNTIME_NO_MALLOC and a throwing eigen_assert (also under NDEBUG):
// NoEigenMalloc then makes any Eigen heap allocation in its scope throw, which is how the
// tests check that a training step of fixed shapes allocates nothing after the first.
#define EIGEN_RUNTIME_NO_MALLOC
#include <stdexcept>
#define eigen_assert(x) \
  do {                   \
    if (!(x)) throw std::logic_error("eigen_assert failed: " #x); \
  } while (false)
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <heed/transformer.hpp>
#include <heed/testing/gradcheck.hpp>

#include "common/errors.hpp"

namespace tr_test {

using heed_test::error_of;  // error_of<E>(f): the message of the E that f throws

// Eigen heap allocations throw while one of these is alive.
struct NoEigenMalloc {
  NoEigenMalloc() { Eigen::internal::set_is_malloc_allowed(false); }
  ~NoEigenMalloc() { Eigen::internal::set_is_malloc_allowed(true); }
  NoEigenMalloc(const NoEigenMalloc&) = delete;
  NoEigenMalloc& operator=(const NoEigenMalloc&) = delete;
};

using heed::BoolMatrix;
using heed::Index;
using heed::Matrix;

template <typename T = double>
inline Matrix<T> randn(Index r, Index c, std::uint64_t seed, double scale = 1.0) {
  heed::Generator g(seed);
  Matrix<T> x(r, c);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = static_cast<T>(scale * g.normal());
  return x;
}

// reference_values.py's fill(): scale * sin(1.3 i + seed) over the row-major flat index.
template <typename T = double>
inline Matrix<T> fill(Index rows, Index cols, double seed, double scale = 1.0) {
  Matrix<T> m(rows, cols);
  for (Index i = 0; i < m.size(); ++i)
    m.data()[i] = static_cast<T>(scale * std::sin(1.3 * double(i) + seed));
  return m;
}

// Every parameter of m set to non-trivial values (biases start at zero, norms at 1 and 0).
template <class M>
void randomize(M& m, std::uint64_t seed, double scale = 0.5) {
  for (auto& p : m.parameters()) {
    *p.value = randn(p.value->rows(), p.value->cols(), seed++, scale);
    if (p.name.find("norm") != std::string::npos && p.name.find("weight") != std::string::npos)
      p.value->array() += 1.0;
  }
}

// Checks dL/dx and every parameter's gradient for L = sum(R .* fwd(x)).
template <class M, class Fwd>
heed::testing::GradcheckResult check(M& m, Matrix<double> x, Fwd fwd, std::uint64_t seed = 5,
                                     const heed::testing::GradcheckOptions& opt = {}) {
  using heed::testing::check_gradient;
  const Matrix<double> y0 = fwd(x);
  const Matrix<double> R = randn(y0.rows(), y0.cols(), seed);
  auto loss = [&]() { return fwd(x).cwiseProduct(R).sum(); };
  m.zero_grad();
  fwd(x);
  const Matrix<double> dx = m.backward(R);
  std::vector<Matrix<double>> grads;
  for (auto& p : m.parameters()) grads.push_back(*p.grad);
  heed::testing::GradcheckResult res;
  heed::testing::merge(res, check_gradient("input", x, dx, loss, opt));
  std::size_t i = 0;
  for (auto& p : m.parameters())
    heed::testing::merge(res, check_gradient(p.name, *p.value, grads[i++], loss, opt));
  return res;
}

// Max |a - b| / max |b|.
template <typename T>
double rel_err(const Matrix<T>& a, const Matrix<T>& b) {
  REQUIRE(a.rows() == b.rows());
  REQUIRE(a.cols() == b.cols());
  if (a.size() == 0) return 0;
  const double scale = static_cast<double>(b.cwiseAbs().maxCoeff());
  const double err = static_cast<double>((a - b).cwiseAbs().maxCoeff());
  return scale > 0 ? err / scale : err;
}


template <class A, class B>
void copy_params(A& to, B& from) {
  auto pt = to.parameters();
  auto pf = from.parameters();
  REQUIRE(pt.size() == pf.size());
  for (std::size_t i = 0; i < pt.size(); ++i) {
    REQUIRE(pt[i].name == pf[i].name);
    *pt[i].value = pf[i].value->template cast<typename A::Scalar>();
  }
}

}  // namespace tr_test
