// Composition pieces: Residual, MaskedMeanPool, key_padding_mask, Embedding on (B, T) ids.
#include <doctest/doctest.h>

#include <heed/heed.hpp>
#include <heed/testing/gradcheck.hpp>

#include "common/errors.hpp"
#include "common/helpers.hpp"

using heed::Index;
using heed::Matrix;
using heed_test::randn;

TEST_CASE("Residual: y = x + fn(x), gradient check of input and branch parameters") {
  heed::Residual<double> r(heed::Sequential<double>(heed::Linear<double>(5, 7), heed::Tanh<double>(),
                                                    heed::Linear<double>(7, 5)));
  const Matrix<double> x = randn(4, 5, 1);
  auto& fn = static_cast<heed::Sequential<double>&>(r.fn());
  const Matrix<double> f = fn.forward(x);
  CHECK((r.forward(x) - (x + f)).cwiseAbs().maxCoeff() == 0.0);
  const auto res = heed::testing::check_module(r, x);
  CHECK_MESSAGE(res.ok, res.detail);
  std::vector<std::string> names;
  for (auto& p : r.parameters()) names.push_back(p.name);
  CHECK(names == std::vector<std::string>{"fn.0.weight", "fn.0.bias", "fn.2.weight", "fn.2.bias"});
  heed::Residual<double> bad(heed::Linear<double>(5, 4));
  CHECK_THROWS_WITH_AS(bad.forward(x),
                       "Residual: fn (Linear) must keep the shape: input (4, 5), its output (4, 4)",
                       heed::ShapeError);
}

TEST_CASE("Residual: a pre-norm block is data; requires_input_grad(false) skips dx") {
  heed::Sequential<double> block(
      heed::Residual<double>(heed::Sequential<double>(heed::LayerNorm<double>(6),
                                                      heed::SelfAttention<double>(6, 2, 3))),
      heed::Residual<double>(heed::Sequential<double>(heed::LayerNorm<double>(6), heed::Linear<double>(6, 8),
                                                      heed::GELU<double>(), heed::Linear<double>(8, 6))));
  const auto res = heed::testing::check_module(block, randn(2 * 3, 6, 4));
  CHECK_MESSAGE(res.ok, res.detail);
  block.requires_input_grad(false);
  block.forward(randn(6, 6, 5));
  CHECK(block.backward(randn(6, 6, 6)).size() == 0);
}

TEST_CASE("MaskedMeanPool: the mean over valid steps, zero for an all-padding sample; gradient check") {
  const Index B = 3, T = 4, E = 2;
  Matrix<double> x = randn(B * T, E, 2);
  const heed::BoolMatrix pad = heed::key_padding_mask(heed_test::labels({4, 1, 0}), T);
  heed::MaskedMeanPool<double> pool;
  x(1 * T + 2, 0) = std::numeric_limits<double>::quiet_NaN();  // padding is never read
  const Matrix<double> y = pool.forward(x, B, &pad);
  CHECK((y.row(0) - x.topRows(T).colwise().mean()).cwiseAbs().maxCoeff() < 1e-15);
  CHECK(y.row(1) == x.row(T));
  CHECK(y.row(2).isZero());
  x(1 * T + 2, 0) = 0;
  // gradient check through L = sum(R .* pool(x))
  const Matrix<double> R = randn(B, E, 3);
  auto loss = [&] { return pool.forward(x, B, &pad).cwiseProduct(R).sum(); };
  pool.forward(x, B, &pad);
  const Matrix<double> dx = pool.backward(R);
  const auto res = heed::testing::check_gradient("x", x, dx, loss);
  CHECK_MESSAGE(res.ok, res.detail);
  CHECK(dx.row(1 * T + 1).isZero());  // padding gets no gradient
  // without a mask: the plain mean
  CHECK((pool.forward(x, B) - (Matrix<double>(B, E) << x.topRows(T).colwise().mean(),
                               x.middleRows(T, T).colwise().mean(),
                               x.bottomRows(T).colwise().mean()).finished())
            .cwiseAbs()
            .maxCoeff() < 1e-15);
  CHECK_THROWS_WITH_AS(pool.forward(x, 5), "MaskedMeanPool: input rows 12 not a positive multiple of batch size 5",
                       heed::ShapeError);
  const heed::BoolMatrix wrong(B, T + 1);
  CHECK_THROWS_WITH_AS(pool.forward(x, B, &wrong),
                       "MaskedMeanPool: key_padding_mask expected (3, 4), got (3, 5)", heed::ShapeError);
}

TEST_CASE("key_padding_mask: true from each sample's length on; lengths are checked") {
  const heed::BoolMatrix m = heed::key_padding_mask(heed_test::labels({2, 0, 3}), 3);
  heed::BoolMatrix want(3, 3);
  want << false, false, true, true, true, true, false, false, false;
  CHECK(m == want);
  CHECK_THROWS_WITH_AS(heed::key_padding_mask(heed_test::labels({4}), 3),
                       "key_padding_mask: lengths[0] = 4 out of range [0, 3]", heed::ValueError);
}

TEST_CASE("Embedding: (B, T) Tokens and flat ids give the same rows; other shapes are refused") {
  heed::Embedding<double> emb(10, 3);
  heed::Tokens tok(2, 3);
  tok << 1, 2, 3, 4, 5, 6;
  const Matrix<double> y = emb.forward(tok);
  REQUIRE(y.rows() == 6);
  for (Index i = 0; i < 6; ++i) CHECK(y.row(i) == emb.weight().row(i + 1));
  CHECK(emb.forward(heed_test::labels({1, 2, 3, 4, 5, 6})) == y);
  CHECK(emb.forward(tok.middleRows(1, 1)) == y.bottomRows(3));  // a block of rows
  Eigen::MatrixXi colmajor(2, 3);
  colmajor << 1, 2, 3, 4, 5, 6;
  CHECK_THROWS_WITH_AS(emb.forward(colmajor),
                       "Embedding: ids expected (N) or a row-major (B, T) matrix (heed::Tokens), got "
                       "a column-major (2, 3)",
                       heed::ShapeError);
  CHECK(emb.forward(Eigen::VectorXi::LinSpaced(3, 1, 3)) == y.topRows(3));  // column vector: fine
  tok(1, 2) = 10;
  CHECK_THROWS_WITH_AS(emb.forward(tok), "Embedding: index 10 at position (1, 2) out of range [0, 10)",
                       heed::ValueError);
  // backward scatters into the rows forward read, in (B, T) order
  emb.zero_grad();
  tok(1, 2) = 1;
  emb.forward(tok);
  emb.backward(Matrix<double>::Ones(6, 3));
  CHECK(emb.parameters()[0].grad->row(1) == Matrix<double>::Constant(1, 3, 2.0));
}

TEST_CASE("ModuleList: children by position, typed access, eval reaches every element") {
  struct Net : heed::ModuleBase<double> {
    heed::ModuleList<double, heed::Linear<double>> layers;
    heed::Children<double> children() override { return {{"layers", &layers}}; }
    std::string name() const override { return "Net"; }
  } net;
  net.layers.emplace(3, 4);
  net.layers.emplace(4, 2);
  std::vector<std::string> names;
  for (auto& p : net.parameters()) names.push_back(p.name);
  CHECK(names == std::vector<std::string>{"layers.0.weight", "layers.0.bias", "layers.1.weight",
                                          "layers.1.bias"});
  CHECK(net.layers[1].out_features() == 2);  // the element type, no cast
  net.eval();
  CHECK_FALSE(net.layers.back().training());
  CHECK_THROWS_WITH_AS(net.layers[2], "ModuleList: index 2 out of range, size 2", heed::ValueError);
  heed::ModuleList<double> any;  // any ModuleBase
  any.emplace<heed::Embedding<double>>(5, 2);
  CHECK(any.num_parameters() == 10);
  CHECK(heed::summary(net).find("  (layers): ModuleList\n    (0): Linear(in_features=3") != std::string::npos);
}

TEST_CASE("Sequential: named modules give PyTorch's OrderedDict keys; bad names are refused") {
  heed::Generator g(3);
  heed::Sequential<double> net;
  net.emplace_named<heed::Linear<double>>("fc1", 4, 3, true, g);
  net.emplace_named<heed::ReLU<double>>("relu1");
  net.emplace<heed::Linear<double>>(3, 2, true, g);  // unnamed: its index, as append
  const auto keys = net.state_dict().keys();
  CHECK(keys == std::vector<std::string>{"fc1.weight", "fc1.bias", "2.weight", "2.bias"});
  const Matrix<double> x = heed_test::randn<double>(5, 4, 4);
  CHECK(net.forward(x).cols() == 2);
  const auto err = [&](auto f) { return heed_test::error_of<heed::ValueError>(f); };
  CHECK(err([&] { net.emplace_named<heed::ReLU<double>>("fc1"); }) == "Sequential: a module is already named 'fc1'");
  CHECK(err([&] { net.emplace_named<heed::ReLU<double>>("a.b"); }) ==
        "Sequential: module name 'a.b' is empty or contains '.'");
  CHECK(err([&] { net.emplace_named<heed::ReLU<double>>(""); }) == "Sequential: module name '' is empty or contains '.'");
  // A name that an unnamed module's index would take later is refused then.
  net.emplace_named<heed::ReLU<double>>("4");
  CHECK(err([&] { net.emplace<heed::ReLU<double>>(); }) == "Sequential: a module is already named '4'");
  CHECK(net.size() == 4);
}
