#include <doctest/doctest.h>

#include <heed/layers/embedding.hpp>
#include <heed/testing/gradcheck.hpp>

#include "common/helpers.hpp"

using heed::Index;
using heed::Labels;
using heed::Matrix;
using heed_test::labels;

TEST_CASE("Embedding: forward gathers rows") {
  heed::Embedding<double> emb(5, 3);
  const auto& y = emb.forward(labels({4, 0, 4}));
  REQUIRE(y.rows() == 3);
  CHECK(y.row(0) == emb.weight().row(4));
  CHECK(y.row(1) == emb.weight().row(0));
  CHECK(y.row(2) == emb.weight().row(4));
  CHECK(emb.forward(Labels(0)).rows() == 0);  // an empty batch is fine
}

TEST_CASE("Embedding: gradient check; repeated ids accumulate; padding_idx gets no gradient") {
  heed::Generator gen(3);
  heed::Embedding<double> emb(6, 4, 2, gen);
  CHECK(emb.weight().row(2).isZero(0));  // padding row starts at zero
  const Labels ids = labels({1, 2, 5, 1, 1, 2, 0});
  heed::Generator rg(4);
  Matrix<double> R(ids.size(), 4);
  for (Index i = 0; i < R.size(); ++i) R.data()[i] = rg.uniform(-1, 1);
  // Gradcheck of the loss sum(R .* y) wrt the weight. The padding row is a constant for
  // PyTorch (no gradient), so only the non-padding rows are compared with finite differences.
  emb.zero_grad();
  emb.forward(ids);
  emb.backward(R);
  const Matrix<double> dW = *emb.parameters()[0].grad;
  Matrix<double> expected = Matrix<double>::Zero(6, 4);
  expected.row(1) = R.row(0) + R.row(3) + R.row(4);  // id 1 three times
  expected.row(5) = R.row(2);
  expected.row(0) = R.row(6);
  CHECK(dW.isApprox(expected, 1e-15));
  CHECK(dW.row(2).isZero(0));
  CHECK(dW.row(3).isZero(0));  // untouched row

  auto loss = [&] { return emb.forward(ids).cwiseProduct(R).sum(); };
  Matrix<double> W = emb.weight();
  Matrix<double> compared = dW;
  compared.row(2) = R.row(1) + R.row(5);  // what a finite difference sees on the padding row
  const auto r = heed::testing::check_gradient("Embedding weight", emb.weight(), compared, loss);
  INFO(r.detail);
  CHECK(r.ok);
  CHECK(emb.weight() == W);  // restored

  // Accumulation across calls until zero_grad.
  emb.forward(ids);
  emb.backward(R);
  CHECK(emb.parameters()[0].grad->isApprox(2 * dW));
  emb.zero_grad();
  CHECK(emb.parameters()[0].grad->isZero(0));
}

TEST_CASE("Embedding: N(0, 1) init, seeded, float and double agree") {
  heed::Generator g1(9), g2(9);
  heed::Embedding<float> f(1000, 16, -1, g1);
  heed::Embedding<double> d(1000, 16, -1, g2);
  CHECK(f.weight().cast<double>().isApprox(d.weight(), 1e-7));
  CHECK(std::abs(d.weight().mean()) < 0.03);
  const double var = (d.weight().array() - d.weight().mean()).square().mean();
  CHECK(var == doctest::Approx(1.0).epsilon(0.05));
  CHECK(f.num_parameters() == 16000);
  CHECK(f.parameters()[0].name == "weight");
  CHECK(f.name() == "Embedding");
  f.eval();
  CHECK(!f.training());
}

TEST_CASE("Embedding: errors name the id, the range and the shapes") {
  heed::Embedding<float> emb(10, 3, 0);
  CHECK_THROWS_WITH_AS(emb.forward(labels({1, 10})),
                       "Embedding: index 10 at position 1 out of range [0, 10)", heed::ValueError);
  CHECK_THROWS_WITH_AS(emb.forward(labels({-1})),
                       "Embedding: index -1 at position 0 out of range [0, 10)", heed::ValueError);
  emb.forward(labels({1, 2}));
  CHECK_THROWS_WITH_AS(emb.backward(Matrix<float>::Zero(2, 4)),
                       "Embedding: gradient expected (2, 3), got (2, 4)", heed::ShapeError);
  CHECK_THROWS_WITH_AS(heed::Embedding<float>(10, 3, 10),
                       "Embedding: padding_idx must be -1 (none) or in [0, 10), got 10",
                       heed::ValueError);
  CHECK_THROWS_AS(heed::Embedding<float>(0, 3), heed::ValueError);
  CHECK_THROWS_AS(heed::Embedding<float>(3, 0), heed::ValueError);
}
