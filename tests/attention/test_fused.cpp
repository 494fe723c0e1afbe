#include <algorithm>
#include <cstdio>

#include "helpers.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif

using namespace attn_test;
using heed::AttentionMasks;
using heed::BoolMatrix;

TEST_CASE("FusedAttention: gradient check over several tiles with every mask") {
  // tile 2 with Tq = 5, Tk = 7: partial tiles on both axes, and causal tile skipping
  constexpr Index B = 2, Tq = 5, Tk = 7, d = 3, dv = 2;
  BoolMatrix pad = BoolMatrix::Zero(B, Tk), am = BoolMatrix::Zero(Tq, Tk);
  pad(0, 6) = pad(1, 1) = true;
  am(2, 0) = am(4, 3) = true;
  Matrix<double> bias = randn(Tq, Tk, 40, 0.5);
  const AttentionMasks<double> cases[] = {
      {},
      {.is_causal = true},
      {.key_padding_mask = &pad},
      {.attn_mask = &am},
      {.attn_bias = &bias},
      {.key_padding_mask = &pad, .attn_mask = &am, .attn_bias = &bias, .is_causal = true}};
  int n = 0;
  for (const auto& masks : cases) {
    CAPTURE(n++);
    heed::FusedAttention<double> fa(std::nullopt, 2);
    auto r = check_qkv(fa, randn(B * Tq, d, 1), randn(B * Tk, d, 2), randn(B * Tk, dv, 3),
                       [&](auto& q, auto& k, auto& v) -> const Matrix<double>& {
                         return fa.forward(q, k, v, B, masks);
                       });
    INFO(r.detail);
    CHECK(r.ok);
  }
}

TEST_CASE("FusedAttention: fully masked rows give zeros and lse = -inf, no NaN") {
  heed::FusedAttention<float> fa(std::nullopt, 4);
  BoolMatrix pad = BoolMatrix::Zero(2, 9);
  pad.row(1).setConstant(true);
  auto q = randn<float>(2 * 6, 4, 1), k = randn<float>(2 * 9, 4, 2), v = randn<float>(2 * 9, 3, 3);
  const Matrix<float> o = fa.forward(q, k, v, 2, {.key_padding_mask = &pad});
  CHECK(o.allFinite());
  CHECK(o.bottomRows(6).isZero(0));
  CHECK(std::isinf(fa.logsumexp()(7)));
  auto [dq, dk, dv] = fa.backward(Matrix<float>::Ones(12, 3));
  CHECK(dq.allFinite());
  CHECK(dk.allFinite());
  CHECK(dv.allFinite());
  CHECK(dv.bottomRows(9).isZero(0));
}

namespace {
struct Shape {
  Index B, Tq, Tk, d, dv, tile;
};

// Fused vs plain (Attention<T> with the scaled dot-product score): output and the three
// gradients. Returns the worst normwise relative error.
template <typename T>
double fused_vs_plain(const Shape& s, int mask_kind, std::uint64_t seed) {
  auto q = randn<T>(s.B * s.Tq, s.d, seed), k = randn<T>(s.B * s.Tk, s.d, seed + 1),
       v = randn<T>(s.B * s.Tk, s.dv, seed + 2), dout = randn<T>(s.B * s.Tq, s.dv, seed + 3);
  BoolMatrix pad = BoolMatrix::Zero(s.B, s.Tk), am = BoolMatrix::Zero(s.Tq, s.Tk);
  heed::Generator g(seed);
  for (Index i = 0; i < pad.size(); ++i) pad.data()[i] = g.uniform() < 0.2;
  for (Index i = 0; i < am.size(); ++i) am.data()[i] = g.uniform() < 0.2;
  Matrix<T> bias = randn<T>(s.Tq, s.Tk, seed + 4);
  AttentionMasks<T> m;
  if (mask_kind == 1) m.is_causal = true;
  if (mask_kind == 2) m = {.key_padding_mask = &pad, .attn_mask = &am, .attn_bias = &bias};
  if (mask_kind == 3) m = {.key_padding_mask = &pad, .attn_bias = &bias, .is_causal = true};
  heed::Attention<T> plain;
  heed::FusedAttention<T> fused(std::nullopt, s.tile);
  const Matrix<T> o_plain = plain.forward(q, k, v, s.B, m);
  const Matrix<T> o_fused = fused.forward(q, k, v, s.B, m);
  auto gp = plain.backward(dout);
  auto gf = fused.backward(dout);
  double err = rel_err<T>(o_fused, o_plain);
  err = std::max(err, rel_err<T>(gf.dquery, gp.dquery));
  err = std::max(err, rel_err<T>(gf.dkey, gp.dkey));
  err = std::max(err, rel_err<T>(gf.dvalue, gp.dvalue));
  CHECK(o_fused.allFinite());
  return err;
}

template <typename T>
double sweep() {
  const Shape shapes[] = {{1, 1, 1, 4, 4, 64},    {1, 70, 130, 16, 8, 64}, {3, 65, 65, 8, 8, 64},
                          {2, 129, 33, 4, 5, 64}, {2, 33, 129, 8, 3, 64},  {1, 200, 200, 32, 32, 64},
                          {4, 17, 23, 6, 7, 8},   {1, 9, 50, 3, 2, 16},    {2, 50, 9, 5, 5, 7},
                          {4, 128, 96, 32, 32, 64}};  // the last one is big enough for threads
  double worst = 0;
  std::uint64_t seed = 100;
  for (const auto& s : shapes)
    for (int kind = 0; kind < 4; ++kind) {
      CAPTURE(s.B);
      CAPTURE(s.Tq);
      CAPTURE(s.Tk);
      CAPTURE(s.tile);
      CAPTURE(kind);
      const double e = fused_vs_plain<T>(s, kind, seed += 10);
      CHECK(e < (sizeof(T) == 8 ? 1e-5 : 1e-4));
      worst = std::max(worst, e);
    }
  return worst;
}
}  // namespace

TEST_CASE("FusedAttention: agrees with the plain path, forward and gradients, float and double") {
  const double ed = sweep<double>();
  const double ef = sweep<float>();
  MESSAGE("fused vs plain, worst normwise relative error: double " << ed << ", float " << ef);
  CHECK(ed < 1e-12);  // in practice far below the 1e-5 contract
  CHECK(ef < 1e-5);
}

TEST_CASE("FusedAttention: scale override and causal with Tq > Tk") {
  heed::FusedAttention<double> fused(0.3, 4);
  heed::Attention<double> plain(heed::ScaledDotProductScore<double>(0.3));
  auto q = randn(11, 3, 1), k = randn(5, 3, 2), v = randn(5, 2, 3);
  const Matrix<double> a = fused.forward(q, k, v, 1, {.is_causal = true});
  const Matrix<double> b = plain.forward(q, k, v, 1, {.is_causal = true});
  CHECK(rel_err<double>(a, b) < 1e-12);
  CHECK(fused.scale(3) == 0.3);
  CHECK(fused.tile() == 4);
}

// Threads split the work by (sample, head) slice, each slice computed as in the serial loop, so
// every path must give the same bits with 1 and 2 threads, masks and dropout included.
TEST_CASE("attention paths: threaded slices are bit-identical to serial") {
  static_assert(heed::detail::score_is_stateless<heed::ScaledDotProductScore<float>>);
  static_assert(heed::detail::score_is_stateless<heed::DotProductScore<float>>);
  static_assert(!heed::detail::score_is_stateless<heed::AdditiveScore<float>>);  // scratch
  static_assert(!heed::detail::score_is_stateless<heed::GeneralScore<float>>);   // dW +=
#ifdef _OPENMP
  auto q = randn<float>(4 * 128, 32, 1), k = randn<float>(4 * 96, 32, 2),
       v = randn<float>(4 * 96, 32, 3), dout = randn<float>(4 * 128, 32, 4);
  heed::BoolMatrix pad = heed::BoolMatrix::Zero(4, 96);
  pad.rightCols(10).setConstant(true);
  auto run = [&](int threads) {
    const int saved = Eigen::nbThreads();
    Eigen::setNbThreads(threads);
    std::vector<Matrix<float>> r;
    heed::FusedAttention<float> fa;
    r.push_back(fa.forward(q, k, v, 4, {.is_causal = true}));
    r.push_back(fa.backward(dout).dquery);
    for (bool weights : {false, true}) {  // fused, then plain with dropout
      heed::Generator gen(3);
      heed::MultiheadAttention<float> mha(32, 4, {.dropout = weights ? 0.2 : 0.0}, gen);
      auto out = mha.forward(q, k, v, 4, {.key_padding_mask = &pad, .need_weights = weights});
      CHECK(mha.used_fused() == !weights);
      r.push_back(out.output);
      r.push_back(mha.backward(dout).dkey);
    }
    heed::Generator gen(5);
    heed::Attention<float> att(heed::ScaledDotProductScore<float>(), 0.1, gen);
    r.push_back(att.forward(q, k, v, 4, {.key_padding_mask = &pad}));
    auto g = att.backward(dout);
    r.push_back(g.dquery);
    r.push_back(g.dkey);
    r.push_back(g.dvalue);
    Eigen::setNbThreads(saved);
    return r;
  };
  const auto serial = run(1), threaded = run(2);
  REQUIRE(serial.size() == threaded.size());
  for (std::size_t i = 0; i < serial.size(); ++i) {
    CAPTURE(i);
    CHECK(serial[i] == threaded[i]);
  }
#else
  MESSAGE("built without OpenMP: nothing to compare");
#endif
}

// ---- NaN / inf propagation and the exact masked-row rule (Reliability, item 5) ----
namespace {
// Row i of a is all NaN exactly when row i of b is; the other rows agree normwise.
template <typename T>
void same_nan_rows(const Matrix<T>& a, const Matrix<T>& b, double tol) {
  REQUIRE(a.rows() == b.rows());
  Matrix<T> fa = a, fb = b;
  for (Index i = 0; i < a.rows(); ++i) {
    CAPTURE(i);
    const bool na = a.row(i).array().isNaN().all(), nb = b.row(i).array().isNaN().all();
    CHECK(na == nb);
    CHECK(a.row(i).array().isNaN().any() == na);  // no partly NaN row
    if (na || nb) fa.row(i).setZero(), fb.row(i).setZero();
  }
  CHECK(rel_err<T>(fa, fb) <= tol);
}

template <typename T>
void nan_query_case(bool causal) {
  constexpr Index Tq = 6, Tk = 9, d = 4, dv = 3;
  auto q = randn<T>(Tq, d, 1), k = randn<T>(Tk, d, 2), v = randn<T>(Tk, dv, 3);
  q(2, 1) = std::numeric_limits<T>::quiet_NaN();
  q(0, 0) = std::numeric_limits<T>::quiet_NaN();  // with causal: one NaN score, the rest -inf
  heed::Attention<T> plain;
  heed::FusedAttention<T> fused(std::nullopt, 4);
  const AttentionMasks<T> m{.is_causal = causal};
  const Matrix<T> op = plain.forward(q, k, v, 1, m);
  const Matrix<T> of = fused.forward(q, k, v, 1, m);
  CHECK(op.row(2).array().isNaN().all());
  CHECK(op.row(0).array().isNaN().all());
  same_nan_rows<T>(of, op, sizeof(T) == 8 ? 1e-12 : 1e-5);
  if (!causal) {  // gradients: the same NaN entries (causal skips tiles the plain path reads)
    const Matrix<T> dout = randn<T>(Tq, dv, 4);
    auto gp = plain.backward(dout);
    auto gf = fused.backward(dout);
    CHECK(gf.dquery.array().isNaN().matrix() == gp.dquery.array().isNaN().matrix());
    CHECK(gf.dkey.array().isNaN().matrix() == gp.dkey.array().isNaN().matrix());
    CHECK(gf.dvalue.array().isNaN().matrix() == gp.dvalue.array().isNaN().matrix());
  }
}
}  // namespace

TEST_CASE("FusedAttention: a NaN query gives NaN rows, the same ones as the plain path") {
  for (bool causal : {false, true}) {
    CAPTURE(causal);
    nan_query_case<double>(causal);
    nan_query_case<float>(causal);
  }
}

TEST_CASE("FusedAttention: +inf and overflowing scores give NaN rows as the plain path") {
  constexpr Index Tq = 5, Tk = 7, d = 3, dv = 2;
  auto q = randn<float>(Tq, d, 1), k = randn<float>(Tk, d, 2), v = randn<float>(Tk, dv, 3);
  q.row(3).setConstant(1e20f);  // q_3 . k_0 = 3e40 overflows float: +inf
  k.row(0).setConstant(1e20f);  // (the other rows' scores on key 0 are huge but finite)
  Matrix<float> bias = randn<float>(Tq, Tk, 5, 0.5);
  bias(1, 4) = std::numeric_limits<float>::infinity();
  heed::Attention<float> plain;
  heed::FusedAttention<float> fused(std::nullopt, 2);
  const Matrix<float> op = plain.forward(q, k, v, 1, {.attn_bias = &bias});
  const Matrix<float> of = fused.forward(q, k, v, 1, {.attn_bias = &bias});
  CHECK(op.row(1).array().isNaN().all());
  CHECK(op.row(3).array().isNaN().all());
  same_nan_rows<float>(of, op, 1e-5);
  CHECK(std::isnan(fused.logsumexp()(1)));
  CHECK(std::isnan(fused.logsumexp()(3)));
}

TEST_CASE("attention: keys of width 0 are refused by the fused and the plain path") {
  Matrix<double> q(4, 0), k(5, 0), v = randn(5, 2, 1);
  heed::FusedAttention<double> fused;
  heed::Attention<double> plain;
  heed::Attention<double, heed::DotProductScore> dot;
  CHECK_THROWS_AS(fused.forward(q, k, v, 1), heed::ShapeError);
  CHECK_THROWS_AS(plain.forward(q, k, v, 1), heed::ShapeError);
  CHECK_THROWS_AS(dot.forward(q, k, v, 1), heed::ShapeError);
}

namespace {
// A row masked entirely by a large finite bias is an ordinary softmax in the plain path; the
// fused path must give the same output and gradients (it gave gradients Tk times too large).
template <typename T>
double big_bias_case(double big, Index tile) {
  constexpr Index B = 2, Tq = 5, Tk = 7, d = 3, dv = 2;
  auto q = randn<T>(B * Tq, d, 1), k = randn<T>(B * Tk, d, 2), v = randn<T>(B * Tk, dv, 3),
       dout = randn<T>(B * Tq, dv, 4);
  Matrix<T> bias = randn<T>(Tq, Tk, 5, 0.5);
  bias.row(2).array() += static_cast<T>(big);  // whole row masked "by hand"
  bias(4, 1) = bias(4, 5) = static_cast<T>(big);  // two keys of another row
  heed::Attention<T> plain;
  heed::FusedAttention<T> fused(std::nullopt, tile);
  const AttentionMasks<T> m{.attn_bias = &bias};
  const Matrix<T> op = plain.forward(q, k, v, B, m);
  const Matrix<T> of = fused.forward(q, k, v, B, m);
  auto gp = plain.backward(dout);
  auto gf = fused.backward(dout);
  double err = rel_err<T>(of, op);
  err = std::max(err, rel_err<T>(gf.dquery, gp.dquery));
  err = std::max(err, rel_err<T>(gf.dkey, gp.dkey));
  err = std::max(err, rel_err<T>(gf.dvalue, gp.dvalue));
  return err;
}
}  // namespace

TEST_CASE("FusedAttention: a row masked by a -1e9 bias matches the plain path, with gradients") {
  for (double big : {-1e4, -1e9, -3e38}) {
    for (Index tile : {2, 3, 64}) {
      CAPTURE(big);
      CAPTURE(tile);
      CHECK(big_bias_case<double>(big, tile) < 1e-12);
      CHECK(big_bias_case<float>(big, tile) < 1e-5);
    }
  }
}

TEST_CASE("MultiheadAttention: a -1e9 bias row, need_weights false matches need_weights true") {
  constexpr Index B = 2, T = 6, E = 8, H = 2;
  auto x = randn<float>(B * T, E, 1), dout = randn<float>(B * T, E, 2);
  Matrix<float> bias = Matrix<float>::Zero(T, T);
  bias.row(3).setConstant(-1e9f);
  std::vector<Matrix<float>> r[2];
  for (bool weights : {false, true}) {
    heed::Generator gen(7);
    heed::MultiheadAttention<float> mha(E, H, {}, gen);
    auto out = mha.forward(x, x, x, B, {.attn_bias = &bias, .need_weights = weights});
    CHECK(mha.used_fused() == !weights);
    auto g = mha.backward(dout);
    r[weights] = {out.output, g.dquery, g.dkey, g.dvalue};
    for (auto& p : mha.parameters()) r[weights].push_back(*p.grad);
  }
  for (std::size_t i = 0; i < r[0].size(); ++i) {
    CAPTURE(i);
    CHECK(rel_err<float>(r[0][i], r[1][i]) < 1e-5);
  }
}
