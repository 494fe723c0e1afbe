#include <cmath>

#include "helpers.hpp"

using namespace attn_test;
using heed::AttentionMasks;
using heed::BoolMatrix;

namespace {
constexpr Index B = 2, Tq = 3, Tk = 4;
}

TEST_CASE("Attention: gradient check of dot-product and scaled dot-product scores") {
  heed::Attention<double, heed::DotProductScore> dot;
  heed::Attention<double> scaled;
  auto q = randn(B * Tq, 5, 1), k = randn(B * Tk, 5, 2), v = randn(B * Tk, 3, 3);
  auto run = [&](auto& att) {
    auto r = check_qkv(att, q, k, v, [&](auto& a, auto& b, auto& c) -> const Matrix<double>& {
      return att.forward(a, b, c, B);
    });
    INFO(att.name(), ": ", r.detail);
    CHECK(r.ok);
  };
  run(dot);
  run(scaled);
}

TEST_CASE("Attention: gradient check of additive and general scores incl. parameters") {
  heed::Generator gen(3);
  heed::Attention<double, heed::AdditiveScore> add(heed::AdditiveScore<double>(5, 4, 6, gen));
  heed::Attention<double, heed::GeneralScore> gen_att(heed::GeneralScore<double>(5, 4, gen));
  CHECK(add.parameters().size() == 3);
  CHECK(add.parameters()[0].name == "W_q");
  CHECK(add.parameters()[2].name == "v");
  CHECK(gen_att.parameters()[0].name == "W");
  auto q = randn(B * Tq, 5, 4), k = randn(B * Tk, 4, 5), v = randn(B * Tk, 3, 6);
  {
    auto r = check_qkv(add, q, k, v, [&](auto& a, auto& b, auto& c) -> const Matrix<double>& {
      return add.forward(a, b, c, B);
    });
    INFO(r.detail);
    CHECK(r.ok);
    CHECK(r.checked == q.size() + k.size() + v.size() + 6 * 5 + 6 * 4 + 6);
  }
  {
    auto r = check_qkv(gen_att, q, k, v, [&](auto& a, auto& b, auto& c) -> const Matrix<double>& {
      return gen_att.forward(a, b, c, B);
    });
    INFO(r.detail);
    CHECK(r.ok);
  }
}

namespace {
// Scaled dot-product attention with given masks, checked through check_qkv.
heed::testing::GradcheckResult check_masked(const AttentionMasks<double>& masks, Index b = B,
                                            Index tq = Tq, Index tk = Tk) {
  heed::Attention<double> att;
  auto q = randn(b * tq, 4, 21), k = randn(b * tk, 4, 22), v = randn(b * tk, 3, 23);
  return check_qkv(att, q, k, v, [&](auto& a, auto& bb, auto& c) -> const Matrix<double>& {
    return att.forward(a, bb, c, b, masks);
  });
}
}  // namespace

TEST_CASE("Attention: gradient check with each mask kind") {
  SUBCASE("key padding") {
    BoolMatrix pad = BoolMatrix::Zero(B, Tk);
    pad(0, 3) = true;
    pad(1, 0) = pad(1, 2) = true;
    auto r = check_masked({.key_padding_mask = &pad});
    INFO(r.detail);
    CHECK(r.ok);
  }
  SUBCASE("bool attn_mask") {
    BoolMatrix am = BoolMatrix::Zero(Tq, Tk);
    am(0, 1) = am(1, 3) = am(2, 0) = am(2, 2) = true;
    auto r = check_masked({.attn_mask = &am});
    INFO(r.detail);
    CHECK(r.ok);
  }
  SUBCASE("float additive attn_bias, one -inf") {
    Matrix<double> bias = randn(Tq, Tk, 30);
    bias(1, 2) = -std::numeric_limits<double>::infinity();
    auto r = check_masked({.attn_bias = &bias});
    INFO(r.detail);
    CHECK(r.ok);
  }
  SUBCASE("causal, Tq == Tk and Tq != Tk") {
    auto r = check_masked({.is_causal = true}, B, 4, 4);
    INFO(r.detail);
    CHECK(r.ok);
    auto r2 = check_masked({.is_causal = true}, B, 3, 5);
    INFO(r2.detail);
    CHECK(r2.ok);
  }
  SUBCASE("all masks together, with fully masked rows") {
    BoolMatrix pad = BoolMatrix::Zero(B, Tk), am = BoolMatrix::Zero(Tq, Tk);
    pad(1, 0) = true;
    am(0, 0) = true;  // sample 1, query 0: key 0 causal-only, and padded -> all masked
    Matrix<double> bias = randn(Tq, Tk, 31);
    auto r = check_masked({.key_padding_mask = &pad, .attn_mask = &am, .attn_bias = &bias,
                           .is_causal = true});
    INFO(r.detail);
    CHECK(r.ok);
  }
}

TEST_CASE("Attention: masks act as PyTorch's") {
  heed::Attention<double> att;
  auto q = randn(B * Tq, 4, 1), k = randn(B * Tk, 4, 2), v = randn(B * Tk, 3, 3);
  BoolMatrix pad = BoolMatrix::Zero(B, Tk);
  pad(1, 3) = true;
  att.forward(q, k, v, B, {.key_padding_mask = &pad, .is_causal = true});
  const Matrix<double>& w = att.weights();
  REQUIRE(w.rows() == B * Tq);
  REQUIRE(w.cols() == Tk);
  for (Index r = 0; r < B * Tq; ++r) {
    CHECK(w.row(r).sum() == doctest::Approx(1.0));
    const Index i = r % Tq;
    for (Index j = i + 1; j < Tk; ++j) CHECK(w(r, j) == 0.0);  // causal
  }
  for (Index i = 0; i < Tq; ++i) CHECK(w(Tq + i, 3) == 0.0);    // padded key of sample 1
  // the weights are a softmax of q k^T / sqrt(d) over the allowed keys
  CHECK(w(1, 0) / w(1, 1) == doctest::Approx(std::exp(q.row(1).dot(k.row(0)) / 2 -
                                                      q.row(1).dot(k.row(1)) / 2)));
  CHECK(w(0, 0) == doctest::Approx(1.0));
}

TEST_CASE("Attention: fully masked query rows give zero weights and context, never NaN") {
  heed::Generator gen(5);
  heed::Attention<double, heed::AdditiveScore> att(heed::AdditiveScore<double>(4, 4, 3, gen));
  auto q = randn(B * Tq, 4, 1), k = randn(B * Tk, 4, 2), v = randn(B * Tk, 3, 3);
  BoolMatrix pad = BoolMatrix::Zero(B, Tk);
  pad.row(1).setConstant(true);  // sample 1 has no keys at all
  const Matrix<double> c = att.forward(q, k, v, B, {.key_padding_mask = &pad});
  CHECK(c.allFinite());
  CHECK(c.middleRows(Tq, Tq).isZero(0));
  CHECK(att.weights().middleRows(Tq, Tq).isZero(0));
  CHECK(att.weights().allFinite());
  auto [dq, dk, dv] = att.backward(Matrix<double>::Ones(B * Tq, 3));
  CHECK(dq.allFinite());
  CHECK(dk.allFinite());
  CHECK(dv.allFinite());
  CHECK(dq.middleRows(Tq, Tq).isZero(0));
  CHECK(dv.middleRows(Tk, Tk).isZero(0));

  // all -inf additive mask on one row works the same
  Matrix<double> bias = Matrix<double>::Zero(Tq, Tk);
  bias.row(2).setConstant(-std::numeric_limits<double>::infinity());
  heed::Attention<double> sdpa;
  const Matrix<double> c2 = sdpa.forward(q, k, v, B, {.attn_bias = &bias});
  CHECK(c2.allFinite());
  CHECK(c2.row(2).isZero(0));
  CHECK(c2.row(Tq + 2).isZero(0));
}

TEST_CASE("Attention: dropout on the weights, inverted scaling, gradient-checked") {
  heed::Generator drop_gen(99);
  heed::Attention<double> att(heed::ScaledDotProductScore<double>(), 0.4, drop_gen);
  auto q = randn(B * Tq, 4, 1), k = randn(B * Tk, 4, 2), v = randn(B * Tk, 3, 3);
  auto r = check_qkv(att, q, k, v, [&](auto& a, auto& b, auto& c) -> const Matrix<double>& {
    att.generator().seed(99);  // same mask at every evaluation
    return att.forward(a, b, c, B);
  });
  INFO(r.detail);
  CHECK(r.ok);
  // the mask really drops: some context differs from eval mode, eval mode is deterministic
  att.generator().seed(99);
  const Matrix<double> ctrain = att.forward(q, k, v, B);
  att.eval();
  CHECK_FALSE(att.training());
  const Matrix<double> c1 = att.forward(q, k, v, B), c2 = att.forward(q, k, v, B);
  CHECK(c1 == c2);
  CHECK_FALSE(ctrain.isApprox(c1));
  // expectation of inverted dropout is the eval output
  att.train();
  Matrix<double> mean = Matrix<double>::Zero(c1.rows(), c1.cols());
  const int n = 4000;
  for (int i = 0; i < n; ++i) mean += att.forward(q, k, v, B);
  mean /= n;
  CHECK((mean - c1).cwiseAbs().maxCoeff() < 0.05);
}

TEST_CASE("Attention: score parameters are seeded, bounded and accumulate") {
  heed::Generator g1(7), g2(7);
  heed::AdditiveScore<float> a(16, 8, 32, g1), b(16, 8, 32, g2);
  auto pa = a.parameters(), pb = b.parameters();
  REQUIRE(pa.size() == 3);
  for (std::size_t i = 0; i < pa.size(); ++i) CHECK(*pa[i].value == *pb[i].value);
  CHECK(pa[0].value->rows() == 32);
  CHECK(pa[0].value->cols() == 16);
  CHECK(pa[0].value->cwiseAbs().maxCoeff() <= 1.0f / 4.0f);   // 1/sqrt(16)
  CHECK(pa[1].value->cwiseAbs().maxCoeff() <= 1.0f / std::sqrt(8.0f));
  CHECK(pa[2].value->cols() == 32);
  heed::GeneralScore<double> gs(3, 9);
  CHECK(gs.weight().rows() == 3);
  CHECK(gs.weight().cwiseAbs().maxCoeff() <= 1.0 / 3.0);

  heed::Attention<double, heed::GeneralScore> att(heed::GeneralScore<double>(4, 4));
  auto q = randn(B * Tq, 4, 1), k = randn(B * Tk, 4, 2), v = randn(B * Tk, 3, 3);
  att.forward(q, k, v, B);
  att.backward(Matrix<double>::Ones(B * Tq, 3));
  const Matrix<double> once = *att.parameters()[0].grad;
  att.forward(q, k, v, B);
  att.backward(Matrix<double>::Ones(B * Tq, 3));
  CHECK(att.parameters()[0].grad->isApprox(2 * once));
  att.zero_grad();
  CHECK(att.parameters()[0].grad->isZero(0));
}

TEST_CASE("Attention: float compiles and agrees with double") {
  heed::Attention<float, heed::DotProductScore> af;
  heed::Attention<double, heed::DotProductScore> ad;
  auto q = randn(B * Tq, 4, 1), k = randn(B * Tk, 4, 2), v = randn(B * Tk, 3, 3);
  const Matrix<float> cf = af.forward(q.cast<float>(), k.cast<float>(), v.cast<float>(), B);
  const Matrix<double> cd = ad.forward(q, k, v, B);
  CHECK(rel_err<double>(cf.cast<double>(), cd) < 1e-5);
  auto gf = af.backward(Matrix<float>::Ones(B * Tq, 3));
  auto gd = ad.backward(Matrix<double>::Ones(B * Tq, 3));
  CHECK(rel_err<double>(gf.dkey.cast<double>(), gd.dkey) < 1e-5);
}

// The masked exponential runs in SIMD packets plus a scalar tail: masked (-inf) entries must come
// out as exact zeros in both (Eigen's packet exp alone would give a tiny nonzero), the rest must
// match std::exp.
TEST_CASE_TEMPLATE("masked_exp_inplace: exact zeros for -inf, std::exp elsewhere", T, float, double) {
  Matrix<T> s(3, 37);  // 37: whole packets and a tail for every SIMD width
  for (Index i = 0; i < s.size(); ++i) s.data()[i] = static_cast<T>(0.05 * (i % 41) - 1.0);
  for (Index i = 0; i < s.size(); i += 5) s.data()[i] = heed::detail::kNegInf<T>;
  Matrix<T> e = s;
  heed::detail::masked_exp_inplace<T>(e, T(0.5));
  for (Index i = 0; i < s.size(); ++i) {
    CAPTURE(i);
    if (i % 5 == 0) CHECK(e.data()[i] == T(0));
    else CHECK(e.data()[i] == doctest::Approx(std::exp(s.data()[i] - T(0.5))).epsilon(1e-6));
  }
}
