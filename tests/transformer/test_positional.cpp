// SinusoidalPositionalEncoding and LearnedPositionalEncoding: the sin/cos table against its
// formula (long double) and pinned values, x + P[start + t] per sample, start offsets as
// incremental decoding uses them, gradient checks, accumulation, state_dict, every error,
// float, and no allocation once the shapes are fixed.
#include "helpers.hpp"

#include <cmath>
#include <string>
#include <vector>

#include <heed/layers/embedding.hpp>

using namespace tr_test;
using heed::LearnedPositionalEncoding;
using heed::ShapeError;
using heed::SinusoidalPositionalEncoding;
using heed::ValueError;

namespace {

// The formula of "Attention Is All You Need" §3.5, in long double.
long double pe_formula(Index pos, Index col, Index d) {
  const long double i2 = static_cast<long double>(col - col % 2);  // 2i
  const long double a =
      static_cast<long double>(pos) / std::pow(10000.0L, i2 / static_cast<long double>(d));
  return col % 2 == 0 ? std::sin(a) : std::cos(a);
}

// The position table a module adds: the fixed table, or the learned weight.
const Matrix<double>& table_of(SinusoidalPositionalEncoding<double>& m) { return m.table(); }
const Matrix<double>& table_of(LearnedPositionalEncoding<double>& m) { return m.weight(); }

// y[b*T + t] == x[b*T + t] + P[start + t], exactly (the same one addition).
template <class M>
void check_adds_rows(M& m, Index B, Index T, Index start, std::uint64_t seed) {
  const Index d = m.d_model();
  const Matrix<double> x = randn(B * T, d, seed);
  const Matrix<double> y = m.forward(x, B, start);
  REQUIRE(y.rows() == B * T);
  REQUIRE(y.cols() == d);
  const Matrix<double>& P = table_of(m);
  int mismatches = 0;
  for (Index b = 0; b < B; ++b)
    for (Index t = 0; t < T; ++t) {
      const Matrix<double> want = x.row(b * T + t) + P.row(start + t);
      if (!(Matrix<double>(y.row(b * T + t)) == want)) ++mismatches;
    }
  CHECK(mismatches == 0);
  // not vacuous: the table rows actually differ, so a wrong offset would be seen
  CHECK(!(Matrix<double>(P.row(start)) == Matrix<double>(P.row(start + 1))));
}

// Incremental decoding: step k of B samples alone (T = 1, start = k) equals rows b*T + k of
// the whole-sequence forward.
template <class M>
void check_incremental(M& m, Index B, Index T, std::uint64_t seed) {
  const Index d = m.d_model();
  const Matrix<double> x = randn(B * T, d, seed);
  const Matrix<double> full = m.forward(x, B, 0);
  for (Index k = 0; k < T; ++k) {
    Matrix<double> step(B, d);
    for (Index b = 0; b < B; ++b) step.row(b) = x.row(b * T + k);
    const Matrix<double> y = m.forward(step, B, k);
    for (Index b = 0; b < B; ++b) {
      CAPTURE(k);
      CAPTURE(b);
      CHECK(Matrix<double>(y.row(b)) == Matrix<double>(full.row(b * T + k)));
    }
  }
  // One row of one sequence, as a block of the full input (no copy).
  const Matrix<double> x1 = randn(T, d, seed + 1);
  const Matrix<double> full1 = m.forward(x1, 1, 0);
  for (Index k = 0; k < T; ++k) {
    CAPTURE(k);
    CHECK(Matrix<double>(m.forward(x1.row(k), 1, k)) == Matrix<double>(full1.row(k)));
  }
}

// Every error of forward/backward, with the message naming the module.
template <class M>
void check_errors(M& m, const std::string& who) {
  // d = 4, max_len = 8
  const Matrix<double> x = randn(6, 4, 1);
  CHECK(error_of<ValueError>([&] { m.backward(Matrix<double>::Zero(6, 4)); }) ==
        who + ": backward called before forward");
  CHECK(error_of<ShapeError>([&] { m.forward(randn(6, 5, 1), 2); }) ==
        who + ": input expected (*, 4), got (6, 5)");
  CHECK(error_of<ValueError>([&] { m.forward(x, 0); }) ==
        who + ": batch size must be positive, got 0");
  CHECK(error_of<ValueError>([&] { m.forward(x, -2); }) ==
        who + ": batch size must be positive, got -2");
  CHECK(error_of<ShapeError>([&] { m.forward(x, 4); }) ==
        who + ": input rows 6 not a positive multiple of batch size 4");
  CHECK(error_of<ShapeError>([&] { m.forward(Matrix<double>(0, 4), 1); }) ==
        who + ": input rows 0 not a positive multiple of batch size 1");
  CHECK(error_of<ValueError>([&] { m.forward(x, 2, -1); }) ==
        who + ": positions [-1, 2) exceed max_len 8");
  CHECK(error_of<ValueError>([&] { m.forward(x, 2, 6); }) ==
        who + ": positions [6, 9) exceed max_len 8");
  CHECK(error_of<ValueError>([&] { m.forward(randn(9, 4, 1), 1); }) ==
        who + ": positions [0, 9) exceed max_len 8");
  CHECK_NOTHROW(m.forward(x, 2, 5));  // positions [5, 8): the last ones
  CHECK(error_of<ShapeError>([&] { m.backward(Matrix<double>::Zero(6, 5)); }) ==
        who + ": gradient expected (6, 4), got (6, 5)");
  CHECK(error_of<ShapeError>([&] { m.backward(Matrix<double>::Zero(3, 4)); }) ==
        who + ": gradient expected (6, 4), got (3, 4)");
  CHECK_NOTHROW(m.backward(Matrix<double>::Zero(6, 4)));
}

}  // namespace

TEST_CASE("SinusoidalPositionalEncoding: table against the formula in long double, odd d") {
  for (Index d : {4, 7, 16, 1}) {
    CAPTURE(d);
    SinusoidalPositionalEncoding<double> pe(d);  // max_len 5000
    const Matrix<double>& P = pe.table();
    REQUIRE(P.rows() == 5000);
    REQUIRE(P.cols() == d);
    long double worst = 0;
    for (Index pos : {0, 1, 2, 3, 17, 100, 1234, 4999})
      for (Index c = 0; c < d; ++c)
        worst = std::max(worst, std::abs(static_cast<long double>(P(pos, c)) - pe_formula(pos, c, d)));
    CHECK(static_cast<double>(worst) < 1e-11);  // angles up to 5e3: double rounds them to ~5e-13
  }
  // odd d: the last column is a sin, at frequency 1 / 10000^(6/7)
  SinusoidalPositionalEncoding<double> odd(7, 50);
  for (Index pos : {1, 5, 49}) {
    CAPTURE(pos);
    CHECK(odd.table()(pos, 6) ==
          doctest::Approx(std::sin(pos / std::pow(10000.0, 6.0 / 7.0))).epsilon(1e-14));
  }
  CHECK(odd.table()(0, 6) == 0.0);
}

TEST_CASE("SinusoidalPositionalEncoding: pinned values") {
  SinusoidalPositionalEncoding<double> pe(4, 10);
  const Matrix<double>& P = pe.table();
  CHECK(P(0, 0) == 0.0);
  CHECK(P(0, 1) == 1.0);
  CHECK(P(0, 2) == 0.0);
  CHECK(P(0, 3) == 1.0);
  CHECK(P(1, 0) == doctest::Approx(0.8414709848078965).epsilon(1e-15));  // sin(1)
  CHECK(P(1, 1) == doctest::Approx(0.5403023058681398).epsilon(1e-15));  // cos(1)
  CHECK(P(3, 2) == doctest::Approx(0.02999550020249566).epsilon(1e-15)); // sin(3 / 10000^(2/4))
  CHECK(P(3, 3) == doctest::Approx(0.9995500337489875).epsilon(1e-15));  // cos(3 / 100)
  CHECK(pe.name() == "SinusoidalPositionalEncoding");
  CHECK(pe.extra_repr() == "d_model=4, max_len=10");
  CHECK(SinusoidalPositionalEncoding<double>(3).extra_repr() == "d_model=3, max_len=5000");
}

TEST_CASE("SinusoidalPositionalEncoding: max_len boundary") {
  SinusoidalPositionalEncoding<double> pe(4, 6);
  CHECK(pe.table().rows() == 6);
  const Matrix<double> x = randn(2 * 3, 4, 1);
  CHECK_NOTHROW(pe.forward(x, 2, 3));  // positions [3, 6)
  CHECK(error_of<ValueError>([&] { pe.forward(x, 2, 4); }) ==
        "SinusoidalPositionalEncoding: positions [4, 7) exceed max_len 6");
  CHECK_NOTHROW(pe.forward(randn(6, 4, 2), 1, 0));  // T = max_len
  CHECK(error_of<ValueError>([&] { pe.forward(randn(7, 4, 2), 1, 0); }) ==
        "SinusoidalPositionalEncoding: positions [0, 7) exceed max_len 6");
  CHECK_NOTHROW(pe.forward(randn(2, 4, 3), 2, 5));  // one step at the last position
  // the boundary row is the formula's
  CHECK(static_cast<double>(std::abs(pe.table()(5, 0) - pe_formula(5, 0, 4))) < 1e-15);
}

TEST_CASE("Positional encodings: forward adds the table rows per sample, with a start offset") {
  SinusoidalPositionalEncoding<double> sin_pe(5, 12);
  heed::Generator gen(3);
  LearnedPositionalEncoding<double> learned(12, 5, gen);
  for (Index start : {0, 1, 4}) {
    CAPTURE(start);
    check_adds_rows(sin_pe, 3, 4, start, 10 + start);
    check_adds_rows(learned, 3, 4, start, 20 + start);
  }
  // B = 1 and T = 1
  check_adds_rows(sin_pe, 1, 2, 7, 30);
  check_adds_rows(learned, 2, 2, 9, 31);
}

TEST_CASE("Positional encodings: one step at start = k equals row k of a full forward") {
  SinusoidalPositionalEncoding<double> sin_pe(6, 10);
  heed::Generator gen(4);
  LearnedPositionalEncoding<double> learned(10, 6, gen);
  check_incremental(sin_pe, 2, 5, 40);
  check_incremental(learned, 2, 5, 41);
  check_incremental(sin_pe, 1, 10, 42);
}

TEST_CASE("Positional encodings: gradient checks (double), B=2 T=3 start=1") {
  constexpr Index kB = 2, kT = 3, kD = 5, kStart = 1;
  SUBCASE("sinusoidal: input") {
    SinusoidalPositionalEncoding<double> pe(kD, 6);
    auto r = check(pe, randn(kB * kT, kD, 50), [&](const Matrix<double>& x) -> const Matrix<double>& {
      return pe.forward(x, kB, kStart);
    });
    INFO(r.detail);
    CHECK(r.ok);
    CHECK(r.checked == kB * kT * kD);
  }
  SUBCASE("learned: input and weight") {
    heed::Generator gen(5);
    LearnedPositionalEncoding<double> pe(6, kD, gen);
    auto r = check(pe, randn(kB * kT, kD, 51), [&](const Matrix<double>& x) -> const Matrix<double>& {
      return pe.forward(x, kB, kStart);
    });
    INFO(r.detail);
    CHECK(r.ok);
    CHECK(r.checked == kB * kT * kD + 6 * kD);  // the rows outside [1, 4) too: zero gradient
  }
}

TEST_CASE("LearnedPositionalEncoding: positions repeated across the batch accumulate") {
  constexpr Index kB = 3, kT = 2, kD = 4, kL = 5, kStart = 2;
  heed::Generator gen(6);
  LearnedPositionalEncoding<double> pe(kL, kD, gen);
  const Matrix<double> x = randn(kB * kT, kD, 60), dout = randn(kB * kT, kD, 61);
  pe.zero_grad();
  pe.forward(x, kB, kStart);
  const Matrix<double> dx = pe.backward(dout);
  CHECK(dx == dout);
  auto params = pe.parameters();
  REQUIRE(params.size() == 1);
  const Matrix<double>& dW = *params[0].grad;
  Matrix<double> want = Matrix<double>::Zero(kL, kD);
  for (Index b = 0; b < kB; ++b)
    for (Index t = 0; t < kT; ++t) want.row(kStart + t) += dout.row(b * kT + t);
  CHECK(rel_err(dW, want) < 1e-15);
  CHECK(dW.row(0).isZero());
  CHECK(dW.row(1).isZero());
  CHECK(dW.row(4).isZero());
  CHECK(!dW.row(2).isZero());
  // backward accumulates (+=) until zero_grad, across calls too
  pe.forward(x, kB, kStart);
  pe.backward(dout);
  CHECK(rel_err(dW, Matrix<double>(2 * want)) < 1e-15);
  pe.zero_grad();
  CHECK(dW.isZero());
}

TEST_CASE("Positional encodings: state_dict and parameters") {
  constexpr Index kL = 7, kD = 3;
  SUBCASE("learned: one parameter 'weight' (max_len, d), drawn as Embedding's") {
    heed::Generator g1(9), g2(9);
    LearnedPositionalEncoding<double> pe(kL, kD, g1);
    heed::Embedding<double> emb(kL, kD, -1, g2);
    const auto sd = pe.state_dict();
    CHECK(sd.keys() == std::vector<std::string>{"weight"});
    CHECK(sd.at("weight").rows() == kL);
    CHECK(sd.at("weight").cols() == kD);
    CHECK(sd.at("weight") == pe.weight());
    CHECK(pe.weight() == emb.weight());           // same N(0, 1) draws from the same seed
    CHECK(sd.keys() == emb.state_dict().keys());  // nn.Embedding(max_len, d)'s state_dict
    CHECK(pe.num_parameters() == kL * kD);
    CHECK(pe.buffers().empty());
    CHECK(pe.name() == "LearnedPositionalEncoding");
    CHECK(pe.extra_repr() == "max_len=7, d_model=3");
    // an Embedding's state_dict loads into it
    heed::Generator g3(10);
    LearnedPositionalEncoding<double> other(kL, kD, g3);
    CHECK(!(other.weight() == emb.weight()));
    other.load_state_dict(emb.state_dict());
    CHECK(other.weight() == emb.weight());
  }
  SUBCASE("sinusoidal: no parameters, no buffers, nothing in state_dict") {
    SinusoidalPositionalEncoding<double> pe(kD, kL);
    CHECK(pe.parameters().empty());
    CHECK(pe.buffers().empty());
    CHECK(pe.num_parameters() == 0);
    CHECK(pe.state_dict().empty());
  }
}

TEST_CASE("SinusoidalPositionalEncoding: errors name the module") {
  CHECK(error_of<ValueError>([] { SinusoidalPositionalEncoding<double>(0); }) ==
        "SinusoidalPositionalEncoding: d_model and max_len must be positive, got 0 and 5000");
  CHECK(error_of<ValueError>([] { SinusoidalPositionalEncoding<double>(4, 0); }) ==
        "SinusoidalPositionalEncoding: d_model and max_len must be positive, got 4 and 0");
  CHECK(error_of<ValueError>([] { SinusoidalPositionalEncoding<double>(-1, 3); }) ==
        "SinusoidalPositionalEncoding: d_model and max_len must be positive, got -1 and 3");
  SinusoidalPositionalEncoding<double> pe(4, 8);
  check_errors(pe, "SinusoidalPositionalEncoding");
}

TEST_CASE("LearnedPositionalEncoding: errors name the module") {
  CHECK(error_of<ValueError>([] { LearnedPositionalEncoding<double>(0, 4); }) ==
        "LearnedPositionalEncoding: max_len and d_model must be positive, got 0 and 4");
  CHECK(error_of<ValueError>([] { LearnedPositionalEncoding<double>(8, 0); }) ==
        "LearnedPositionalEncoding: max_len and d_model must be positive, got 8 and 0");
  heed::Generator gen(11);
  LearnedPositionalEncoding<double> pe(8, 4, gen);
  check_errors(pe, "LearnedPositionalEncoding");
}

TEST_CASE_TEMPLATE("Positional encodings: float and double instantiations", T, float, double) {
  constexpr Index kB = 2, kT = 3, kD = 5;
  SinusoidalPositionalEncoding<T> sin_pe(kD, 16);
  SinusoidalPositionalEncoding<double> ref(kD, 16);
  CHECK(sin_pe.table() == ref.table().cast<T>());  // computed in double, then cast
  const Matrix<T> x = randn<T>(kB * kT, kD, 70), dout = randn<T>(kB * kT, kD, 71);
  const Matrix<T> y = sin_pe.forward(x, kB, 2);
  CHECK(Matrix<T>(y.row(kT + 1)) == Matrix<T>(x.row(kT + 1) + sin_pe.table().row(3)));
  CHECK(sin_pe.backward(dout) == dout);

  heed::Generator gen(12);
  LearnedPositionalEncoding<T> learned(16, kD, gen);
  const Matrix<T> z = learned.forward(x, kB, 2);
  CHECK(Matrix<T>(z.row(kT + 1)) == Matrix<T>(x.row(kT + 1) + learned.weight().row(3)));
  learned.zero_grad();
  CHECK(learned.backward(dout) == dout);
  const Matrix<T>& dW = *learned.parameters()[0].grad;
  CHECK(Matrix<T>(dW.row(3)) == Matrix<T>(dout.row(1) + dout.row(kT + 1)));
}

TEST_CASE("Positional encodings: no Eigen allocation in forward/backward after a warm-up") {
  constexpr Index kB = 2, kT = 4, kD = 6;
  SinusoidalPositionalEncoding<double> sin_pe(kD, 16);
  heed::Generator gen(13);
  LearnedPositionalEncoding<double> learned(16, kD, gen);
  const Matrix<double> x = randn(kB * kT, kD, 80), dout = randn(kB * kT, kD, 81);
  const Matrix<double> step = randn(kB, kD, 82), dstep = randn(kB, kD, 83);
  SUBCASE("whole sequences") {
    sin_pe.forward(x, kB);
    sin_pe.backward(dout);
    learned.forward(x, kB);
    learned.backward(dout);
    NoEigenMalloc guard;
    for (Index start : {0, 3, 12}) {
      CHECK_NOTHROW(sin_pe.forward(x, kB, start));
      CHECK_NOTHROW(sin_pe.backward(dout));
      CHECK_NOTHROW(learned.forward(x, kB, start));
      CHECK_NOTHROW(learned.backward(dout));
    }
  }
  SUBCASE("incremental decoding, one step at a time") {
    sin_pe.forward(step, kB, 0);
    sin_pe.backward(dstep);
    learned.forward(step, kB, 0);
    learned.backward(dstep);
    NoEigenMalloc guard;
    for (Index t = 1; t < 16; ++t) {
      CHECK_NOTHROW(sin_pe.forward(step, kB, t));
      CHECK_NOTHROW(sin_pe.backward(dstep));
      CHECK_NOTHROW(learned.forward(step, kB, t));
      CHECK_NOTHROW(learned.backward(dstep));
    }
  }
}
