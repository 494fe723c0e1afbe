#include <doctest/doctest.h>

#include <cmath>

#include <heed/attention.hpp>
#include <heed/core/init.hpp>
#include <heed/layers.hpp>

using heed::Index;
using heed::Matrix;
namespace init = heed::init;

namespace {

// The bound a hand-written U(-bound, bound) loop would reach at most, checked on every element.
template <typename T>
void check_within(const Matrix<T>& m, double bound) {
  for (Index i = 0; i < m.size(); ++i) {
    CHECK(std::abs(static_cast<double>(m.data()[i])) <= bound);
  }
}

// What heed's constructors did before heed::init: one gen.uniform(-bound, bound) per element
// in storage (row-major) order.
template <typename T>
Matrix<T> old_uniform(Index rows, Index cols, double bound, heed::Generator& gen) {
  Matrix<T> m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<T>(gen.uniform(-bound, bound));
  return m;
}

}  // namespace

TEST_CASE_TEMPLATE("init::uniform_ and normal_: one draw per element, row-major, same seed same values",
                   T, float, double) {
  Matrix<T> a(3, 4), b(3, 4);
  heed::Generator g1(7), g2(7);
  init::uniform_(a, -0.5, 2.0, g1);
  init::uniform_(b, -0.5, 2.0, g2);
  CHECK(a == b);
  for (Index i = 0; i < a.size(); ++i) {
    CHECK(a.data()[i] >= T(-0.5));
    CHECK(a.data()[i] <= T(2.0));
  }
  // Row-major draws: element (r, c) is draw r * cols + c, lo + (hi - lo) u.
  heed::Generator ref(7);
  for (Index r = 0; r < 3; ++r)
    for (Index c = 0; c < 4; ++c) CHECK(a(r, c) == static_cast<T>(-0.5 + 2.5 * ref.uniform()));
  CHECK(g1.bits() == ref.bits());  // exactly 12 draws were taken

  Matrix<T> n(2, 5);
  heed::Generator g3(8), ref3(8);
  init::normal_(n, 1.0, 0.5, g3);
  for (Index i = 0; i < n.size(); ++i) CHECK(n.data()[i] == static_cast<T>(ref3.normal(1.0, 0.5)));
  CHECK(g3.bits() == ref3.bits());
}

TEST_CASE("init::xavier_uniform_ and kaiming_uniform_ bounds follow PyTorch's formulas") {
  // (out, in) = (30, 20): fan_in 20, fan_out 30.
  Matrix<double> w(30, 20);
  CHECK(init::fan_in(w) == 20);
  CHECK(init::fan_out(w) == 30);
  const double xb = 2.0 * std::sqrt(6.0 / (20.0 + 30.0));
  heed::Generator g(1), ref(1);
  init::xavier_uniform_(w, 2.0, g);
  check_within(w, xb);
  CHECK(w.cwiseAbs().maxCoeff() > 0.9 * xb);  // 600 draws come close to the bound
  CHECK(w == old_uniform<double>(30, 20, xb, ref));

  const double a = std::sqrt(5.0);
  const double kb = std::sqrt(2.0 / (1.0 + a * a)) * std::sqrt(3.0 / 20.0);
  CHECK(init::leaky_relu_gain(0.0) == doctest::Approx(std::sqrt(2.0)));
  heed::Generator g2(2), ref2(2);
  init::kaiming_uniform_(w, a, g2);
  check_within(w, kb);
  CHECK(w.cwiseAbs().maxCoeff() > 0.9 * kb);
  CHECK(w == old_uniform<double>(30, 20, kb, ref2));
  // kaiming_uniform_(a = sqrt 5) is nn.Linear's bound 1/sqrt(fan_in), up to rounding.
  CHECK(kb == doctest::Approx(init::linear_bound(20)).epsilon(1e-14));
  CHECK(init::linear_bound(20) == 1.0 / std::sqrt(20.0));

  // The normal variants: PyTorch's std, checked on the sample's spread.
  Matrix<double> big(200, 300);
  heed::Generator g3(3);
  init::xavier_normal_(big, 1.0, g3);
  const double xs = std::sqrt(2.0 / 500.0);
  CHECK(std::sqrt(big.array().square().mean()) == doctest::Approx(xs).epsilon(0.02));
  init::kaiming_normal_(big, 0.0, g3);
  const double ks = std::sqrt(2.0) / std::sqrt(300.0);
  CHECK(std::sqrt(big.array().square().mean()) == doctest::Approx(ks).epsilon(0.02));
}

TEST_CASE("init::constant_, zeros_ and ones_ draw nothing") {
  Matrix<float> m(2, 3);
  heed::Generator g(4), ref(4);
  init::constant_(m, 0.25);
  CHECK((m.array() == 0.25f).all());
  init::zeros_(m);
  CHECK(m.isZero(0));
  init::ones_(m);
  CHECK((m.array() == 1.0f).all());
  CHECK(g.bits() == ref.bits());
}

TEST_CASE_TEMPLATE("Linear's init equals the hand-written U(+-1/sqrt(fan_in)) loop, W then b", T,
                   float, double) {
  heed::Generator g(1), ref(1);
  heed::Linear<T> lin(5, 3, true, g);
  const double bound = 1.0 / std::sqrt(5.0);
  CHECK(lin.weight() == old_uniform<T>(3, 5, bound, ref));
  CHECK(lin.bias() == old_uniform<T>(1, 3, bound, ref));
  CHECK(g.bits() == ref.bits());
}

TEST_CASE("MultiheadAttention's init: xavier on the packed (3E, E) in_proj, then out_proj") {
  const Index E = 8;
  heed::Generator g(5), ref(5);
  heed::MultiheadAttention<double> mha(E, 2, {}, g);
  auto ps = mha.parameters();
  REQUIRE(ps[0].name == "in_proj_weight");
  // fan_in E, fan_out 3E: the bound of the tensor as a whole, as PyTorch.
  CHECK(*ps[0].value == old_uniform<double>(3 * E, E, std::sqrt(6.0 / double(3 * E + E)), ref));
  REQUIRE(ps[2].name == "out_proj.weight");
  CHECK(*ps[2].value == old_uniform<double>(E, E, 1.0 / std::sqrt(double(E)), ref));
  CHECK(g.bits() == ref.bits());
}

TEST_CASE("Embedding's init is N(0, 1), one normal draw per element") {
  heed::Generator g(6), ref(6);
  heed::Embedding<float> emb(4, 3, -1, g);
  for (Index i = 0; i < emb.weight().size(); ++i)
    CHECK(emb.weight().data()[i] == static_cast<float>(ref.normal()));
}
