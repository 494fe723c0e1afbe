#pragma once
// Shared by the attention tests: random matrices and a gradient check of a 3-input attention
// module through L = sum(R .* forward(q, k, v)).
#include <doctest/doctest.h>

#include <functional>
#include <heed/attention.hpp>
#include <heed/testing/gradcheck.hpp>

namespace attn_test {

using heed::Index;
using heed::Matrix;

template <typename T = double>
inline Matrix<T> randn(Index r, Index c, std::uint64_t seed, double scale = 1.0) {
  heed::Generator g(seed);
  Matrix<T> x(r, c);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = static_cast<T>(scale * g.normal());
  return x;
}

// Checks dL/dq, dL/dk, dL/dv and every parameter's gradient of `m` for L = sum(R .* out),
// where out = fwd(q, k, v). `m` has backward(R) -> {dquery, dkey, dvalue} and parameters().
template <class M, class Fwd>
heed::testing::GradcheckResult check_qkv(M& m, Matrix<double> q, Matrix<double> k,
                                         Matrix<double> v, Fwd fwd, std::uint64_t seed = 11,
                                         const heed::testing::GradcheckOptions& opt = {}) {
  using heed::testing::check_gradient;
  const Matrix<double> out0 = fwd(q, k, v);
  const Matrix<double> R = randn(out0.rows(), out0.cols(), seed);
  auto loss = [&]() { return fwd(q, k, v).cwiseProduct(R).sum(); };
  m.zero_grad();
  fwd(q, k, v);
  auto g = m.backward(R);
  const Matrix<double> dq = g.dquery, dk = g.dkey, dv = g.dvalue;
  std::vector<Matrix<double>> pgrads;
  for (auto& p : m.parameters()) pgrads.push_back(*p.grad);
  heed::testing::GradcheckResult res;
  heed::testing::merge(res, check_gradient("query", q, dq, loss, opt));
  heed::testing::merge(res, check_gradient("key", k, dk, loss, opt));
  heed::testing::merge(res, check_gradient("value", v, dv, loss, opt));
  std::size_t i = 0;
  for (auto& p : m.parameters()) heed::testing::merge(res, check_gradient(p.name, *p.value, pgrads[i++], loss, opt));
  return res;
}

// Max |a - b| / max |b| (normwise relative error), the measure used for fused vs plain.
template <typename T>
double rel_err(const Matrix<T>& a, const Matrix<T>& b) {
  REQUIRE(a.rows() == b.rows());
  REQUIRE(a.cols() == b.cols());
  if (a.size() == 0) return 0;
  const double scale = static_cast<double>(b.cwiseAbs().maxCoeff());
  const double err = static_cast<double>((a - b).cwiseAbs().maxCoeff());
  return scale > 0 ? err / scale : err;
}

}  // namespace attn_test
