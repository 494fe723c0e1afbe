#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <heed/layers/embedding.hpp>
#include <heed/layers/gru.hpp>
#include <heed/layers/linear.hpp>
#include <heed/layers/lstm.hpp>
#include <heed/losses/cross_entropy.hpp>
#include <heed/testing/gradcheck.hpp>

#include "common/helpers.hpp"
#include "recurrent_reference.hpp"

using heed::Index;
using heed::Labels;
using heed::Matrix;
using heed::testing::check_gradient;
using heed::testing::GradcheckResult;
using heed::testing::merge;
using heed_test::labels;
using heed_test::randn;

namespace {

// Numeric vs analytic gradient of every parameter of `net` for the scalar `loss`. The analytic
// gradients must already be in the parameters' grads.
template <class Net, class F>
void check_params(Net& net, F& loss, GradcheckResult& res) {
  for (auto& p : net.parameters()) {
    const Matrix<double> grad = *p.grad;
    merge(res, check_gradient(net.name() + " " + p.name, *p.value, grad, loss));
  }
}

double dot(const Matrix<double>& a, const Matrix<double>& b) { return a.cwiseProduct(b).sum(); }

// scale * sin(1.3 i + seed) over the row-major flat index, as recurrent_reference.py's fill().
Matrix<double> fill(Index r, Index c, double seed, double scale = 1.0) {
  Matrix<double> m(r, c);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = scale * std::sin(1.3 * double(i) + seed);
  return m;
}

Matrix<double> as_matrix(const std::vector<double>& v, Index r, Index c) {
  REQUIRE(Index(v.size()) == r * c);
  return Eigen::Map<const Matrix<double>>(v.data(), r, c);
}

}  // namespace

// ---- cells ----------------------------------------------------------------------------------

TEST_CASE("GRUCell: three chained steps, gradients wrt x, h0 and every parameter") {
  const Index B = 2, I = 3, H = 4, T = 3;
  heed::Generator gen(1);
  heed::GRUCell<double> cell(I, H, true, gen);
  Matrix<double> X = randn(T * B, I, 2);  // step t: rows [t*B, (t+1)*B)
  Matrix<double> h0 = randn(B, H, 3, 0.5);
  const Matrix<double> R = randn(T * B, H, 4);
  auto loss = [&] {
    cell.clear();  // the closure never back-propagates
    Matrix<double> h = h0;
    double l = 0;
    for (Index t = 0; t < T; ++t) {
      h = cell.forward(X.middleRows(t * B, B), h);
      l += dot(h, R.middleRows(t * B, B));
    }
    return l;
  };
  loss();
  CHECK(cell.cached_steps() == T);
  cell.zero_grad();
  Matrix<double> dX(T * B, I), dh = Matrix<double>::Zero(B, H);
  for (Index t = T - 1; t >= 0; --t) {
    const auto g = cell.backward(dh + R.middleRows(t * B, B));
    dX.middleRows(t * B, B) = g.dx;
    dh = g.dh;
  }
  CHECK(cell.cached_steps() == 0);
  CHECK_THROWS_WITH_AS(cell.backward(dh), doctest::Contains("GRUCell: backward called with no cached step"),
                       heed::ValueError);
  GradcheckResult res;
  merge(res, check_gradient("x", X, dX, loss));
  merge(res, check_gradient("h0", h0, dh, loss));
  check_params(cell, loss, res);
  INFO(res.detail);
  CHECK(res.ok);
  CHECK(res.checked == T * B * I + B * H + cell.num_parameters());
}

TEST_CASE("LSTMCell: three chained steps, gradients wrt x, h0, c0 and every parameter") {
  const Index B = 2, I = 3, H = 4, T = 3;
  heed::Generator gen(5);
  heed::LSTMCell<double> cell(I, H, true, gen);
  Matrix<double> X = randn(T * B, I, 6);
  Matrix<double> h0 = randn(B, H, 7, 0.5), c0 = randn(B, H, 8, 0.5);
  const Matrix<double> R = randn(T * B, H, 9), Rc = randn(B, H, 10);
  auto loss = [&] {
    cell.clear();
    Matrix<double> h = h0, c = c0;
    double l = 0;
    for (Index t = 0; t < T; ++t) {
      const auto s = cell.forward(X.middleRows(t * B, B), h, c);
      h = s.h;
      c = s.c;
      l += dot(h, R.middleRows(t * B, B));
    }
    return l + dot(c, Rc);
  };
  loss();
  cell.zero_grad();
  Matrix<double> dX(T * B, I), dh = Matrix<double>::Zero(B, H), dc = Rc;
  for (Index t = T - 1; t >= 0; --t) {
    const auto g = cell.backward(dh + R.middleRows(t * B, B), dc);
    dX.middleRows(t * B, B) = g.dx;
    dh = g.dh;
    dc = g.dc;
  }
  GradcheckResult res;
  merge(res, check_gradient("x", X, dX, loss));
  merge(res, check_gradient("h0", h0, dh, loss));
  merge(res, check_gradient("c0", c0, dc, loss));
  check_params(cell, loss, res);
  INFO(res.detail);
  CHECK(res.ok);
  CHECK(res.checked == T * B * I + 2 * B * H + cell.num_parameters());
}

TEST_CASE("Cells: eval mode caches nothing; gradients may be fed back as inputs (aliasing)") {
  heed::GRUCell<double> cell(2, 2);
  const Matrix<double> x = randn(3, 2, 1);
  cell.eval();
  const Matrix<double>* h = &cell.forward(x);
  for (int i = 0; i < 5; ++i) h = &cell.forward(x, *h);  // output slot reused as input
  CHECK(cell.cached_steps() == 0);
  const Matrix<double> h_eval = *h;
  cell.train();
  Matrix<double> hh = cell.forward(x);
  for (int i = 0; i < 5; ++i) hh = cell.forward(x, hh);
  CHECK(hh.isApprox(h_eval));
  // Feeding the returned dh straight back in (it is the cell's own buffer) is safe.
  const Matrix<double>* dh = &cell.backward(Matrix<double>::Ones(3, 2)).dh;
  for (int i = 0; i < 5; ++i) dh = &cell.backward(*dh).dh;
  CHECK(dh->allFinite());
  CHECK(cell.cached_steps() == 0);

  heed::LSTMCell<double> lc(2, 2);
  lc.forward(x);
  lc.forward(x);
  lc.clear();
  CHECK(lc.cached_steps() == 0);
  CHECK_THROWS_AS(lc.backward(Matrix<double>::Zero(3, 2)), heed::ValueError);
}

TEST_CASE("Cells: requires_input_grad(false) skips dx; no-bias cells have two parameters") {
  heed::GRUCell<double> g(3, 2, false);
  CHECK(g.parameters().size() == 2);
  g.requires_input_grad(false);
  g.forward(randn(4, 3, 1));
  CHECK(g.backward(randn(4, 2, 2)).dx.rows() == 0);
  heed::LSTMCell<double> l(3, 2, false);
  CHECK(l.parameters().size() == 2);
  CHECK(l.parameters()[1].name == "weight_hh");
  CHECK(l.num_parameters() == 4 * 2 * 3 + 4 * 2 * 2);
}

// ---- sequence layers ------------------------------------------------------------------------

namespace {

// Gradient check of a full-sequence GRU: loss = sum(R .* output) + sum(R2 .* h_n).
GradcheckResult gradcheck_gru(heed::GRU<double>& gru, Index B, Index T, bool with_h0,
                              const Labels& lengths, std::uint64_t seed) {
  const Index I = gru.input_size(), H = gru.hidden_size();
  const Index S = gru.num_layers() * gru.num_directions() * B;
  Matrix<double> x = randn(B * T, I, seed);
  Matrix<double> h0 = with_h0 ? randn(S, H, seed + 1, 0.5) : Matrix<double>();
  const Matrix<double> R = randn(B * T, gru.num_directions() * H, seed + 2);
  const Matrix<double> R2 = randn(S, H, seed + 3);
  auto loss = [&] {
    const auto o = gru.forward(x, B, h0, lengths);
    return dot(o.output, R) + dot(o.h_n, R2);
  };
  gru.zero_grad();
  loss();
  const auto g = gru.backward(R, R2);
  const Matrix<double> dx = g.dx, dh0 = g.dh0;
  GradcheckResult res;
  merge(res, check_gradient("x", x, dx, loss));
  if (with_h0) merge(res, check_gradient("h0", h0, dh0, loss));
  check_params(gru, loss, res);
  return res;
}

GradcheckResult gradcheck_lstm(heed::LSTM<double>& lstm, Index B, Index T, bool with_state,
                               const Labels& lengths, std::uint64_t seed) {
  const Index I = lstm.input_size(), H = lstm.hidden_size();
  const Index S = lstm.num_layers() * lstm.num_directions() * B;
  Matrix<double> x = randn(B * T, I, seed);
  Matrix<double> h0 = with_state ? randn(S, H, seed + 1, 0.5) : Matrix<double>();
  Matrix<double> c0 = with_state ? randn(S, H, seed + 2, 0.5) : Matrix<double>();
  const Matrix<double> R = randn(B * T, lstm.num_directions() * H, seed + 3);
  const Matrix<double> R2 = randn(S, H, seed + 4), R3 = randn(S, H, seed + 5);
  auto loss = [&] {
    const auto o = lstm.forward(x, B, h0, c0, lengths);
    return dot(o.output, R) + dot(o.h_n, R2) + dot(o.c_n, R3);
  };
  lstm.zero_grad();
  loss();
  const auto g = lstm.backward(R, R2, R3);
  const Matrix<double> dx = g.dx, dh0 = g.dh0, dc0 = g.dc0;
  GradcheckResult res;
  merge(res, check_gradient("x", x, dx, loss));
  if (with_state) {
    merge(res, check_gradient("h0", h0, dh0, loss));
    merge(res, check_gradient("c0", c0, dc0, loss));
  }
  check_params(lstm, loss, res);
  return res;
}

}  // namespace

TEST_CASE("GRU: gradient check, one layer, full length, zero h0") {
  heed::Generator gen(11);
  heed::GRU<double> gru(3, 4, {}, gen);
  const auto r = gradcheck_gru(gru, 2, 4, false, Labels(), 12);
  INFO(r.detail);
  CHECK(r.ok);
}

TEST_CASE("GRU: gradient check, 2 layers, bidirectional, h0, lengths with padding") {
  heed::Generator gen(13);
  heed::GRU<double> gru(3, 4, {.num_layers = 2, .bidirectional = true}, gen);
  const auto r = gradcheck_gru(gru, 3, 4, true, labels({4, 2, 3}), 14);
  INFO(r.detail);
  CHECK(r.ok);
  CHECK(r.checked == 3 * 4 * 3 + 2 * 2 * 3 * 4 + gru.num_parameters());
  heed::GRU<double> nb(2, 3, {.num_layers = 2, .bias = false}, gen);  // without biases
  const auto r2 = gradcheck_gru(nb, 2, 3, true, labels({1, 3}), 15);
  INFO(r2.detail);
  CHECK(r2.ok);
}

TEST_CASE("LSTM: gradient check, one layer, full length, zero state") {
  heed::Generator gen(21);
  heed::LSTM<double> lstm(3, 4, {}, gen);
  const auto r = gradcheck_lstm(lstm, 2, 4, false, Labels(), 22);
  INFO(r.detail);
  CHECK(r.ok);
}

TEST_CASE("LSTM: gradient check, 2 layers, bidirectional, h0/c0, lengths with padding") {
  heed::Generator gen(23);
  heed::LSTM<double> lstm(3, 4, {.num_layers = 2, .bidirectional = true}, gen);
  const auto r = gradcheck_lstm(lstm, 3, 4, true, labels({4, 2, 3}), 24);
  INFO(r.detail);
  CHECK(r.ok);
  CHECK(r.checked == 3 * 4 * 3 + 2 * (2 * 2 * 3 * 4) + lstm.num_parameters());
}

TEST_CASE("GRU/LSTM: parameter names and shapes follow PyTorch's state_dict") {
  heed::GRU<float> gru(5, 3, {.num_layers = 2, .bidirectional = true});
  const auto ps = gru.parameters();
  REQUIRE(ps.size() == 16);
  CHECK(ps[0].name == "weight_ih_l0");
  CHECK(ps[3].name == "bias_hh_l0");
  CHECK(ps[4].name == "weight_ih_l0_reverse");
  CHECK(ps[8].name == "weight_ih_l1");
  CHECK(ps[15].name == "bias_hh_l1_reverse");
  CHECK(ps[0].value->rows() == 9);
  CHECK(ps[0].value->cols() == 5);
  CHECK(ps[8].value->cols() == 6);  // layer 1 reads both directions
  CHECK(ps[3].value->cols() == 9);
  heed::LSTM<float> lstm(5, 3, {.num_layers = 1, .bias = false});
  const auto ls = lstm.parameters();
  REQUIRE(ls.size() == 2);
  CHECK(ls[1].name == "weight_hh_l0");
  CHECK(ls[1].value->rows() == 12);
  // U(-1/sqrt(H), 1/sqrt(H)) everywhere
  heed::GRU<double> big(64, 100);
  for (auto& p : big.parameters()) {
    CHECK(p.value->cwiseAbs().maxCoeff() <= 0.1);
    CHECK(p.value->cwiseAbs().maxCoeff() > 0.09);
  }
  heed::Generator g1(3), g2(3);
  heed::LSTM<double> a(4, 4, {}, g1), b(4, 4, {}, g2);
  CHECK(*a.parameters()[1].value == *b.parameters()[1].value);
}

TEST_CASE("GRU/LSTM: one-layer sequence equals the cell stepped by hand") {
  const Index B = 2, T = 3, I = 3, H = 4;
  heed::Generator g1(31), g2(31);
  heed::GRU<double> gru(I, H, {}, g1);
  heed::GRUCell<double> cell(I, H, true, g2);  // same draws, same order: same weights
  CHECK(*gru.parameters()[1].value == cell.weight_hh());
  const Matrix<double> x = randn(B * T, I, 32);
  const auto o = gru.forward(x, B);
  Matrix<double> h = Matrix<double>::Zero(B, H);
  for (Index t = 0; t < T; ++t) {
    Matrix<double> xt(B, I);
    for (Index b = 0; b < B; ++b) xt.row(b) = x.row(b * T + t);
    h = cell.forward(xt, h);
    for (Index b = 0; b < B; ++b) CHECK(o.output.row(b * T + t).isApprox(h.row(b), 1e-12));
  }
  CHECK(o.h_n.isApprox(h, 1e-12));

  heed::Generator g3(33), g4(33);
  heed::LSTM<double> lstm(I, H, {}, g3);
  heed::LSTMCell<double> lc(I, H, true, g4);
  const auto lo = lstm.forward(x, B);
  Matrix<double> hh = Matrix<double>::Zero(B, H), cc = hh;
  for (Index t = 0; t < T; ++t) {
    Matrix<double> xt(B, I);
    for (Index b = 0; b < B; ++b) xt.row(b) = x.row(b * T + t);
    const auto s = lc.forward(xt, hh, cc);
    hh = s.h;
    cc = s.c;
  }
  CHECK(lo.h_n.isApprox(hh, 1e-12));
  CHECK(lo.c_n.isApprox(cc, 1e-12));
}

TEST_CASE("GRU/LSTM: lengths behave like packed sequences") {
  // Each padded sample must give exactly what it gives alone, truncated to its length.
  const Index B = 3, T = 5, I = 2, H = 3;
  const Labels len = labels({5, 2, 3});
  heed::GRU<double> gru(I, H, {.num_layers = 2, .bidirectional = true});
  heed::LSTM<double> lstm(I, H, {.num_layers = 2, .bidirectional = true});
  const Matrix<double> x = randn(B * T, I, 41);
  const Matrix<double> h0 = randn(4 * B, H, 42), c0 = randn(4 * B, H, 43);
  const auto go = gru.forward(x, B, h0, len);
  const Matrix<double> gy = go.output, ghn = go.h_n;
  const auto lo = lstm.forward(x, B, h0, c0, len);
  const Matrix<double> ly = lo.output, lhn = lo.h_n, lcn = lo.c_n;
  for (Index b = 0; b < B; ++b) {
    const Index n = len(b);
    Matrix<double> h0b(4, H), c0b(4, H);  // sample b's rows of every layer and direction
    for (Index k = 0; k < 4; ++k) {
      h0b.row(k) = h0.row(k * B + b);
      c0b.row(k) = c0.row(k * B + b);
    }
    const Matrix<double> xb = x.middleRows(b * T, n);
    const auto ga = gru.forward(xb, 1, h0b);
    const auto la = lstm.forward(xb, 1, h0b, c0b);
    CHECK(gy.middleRows(b * T, n).isApprox(ga.output, 1e-12));
    CHECK(ly.middleRows(b * T, n).isApprox(la.output, 1e-12));
    CHECK(gy.middleRows(b * T + n, T - n).isZero(0));
    CHECK(ly.middleRows(b * T + n, T - n).isZero(0));
    for (Index k = 0; k < 4; ++k) {
      CHECK(ghn.row(k * B + b).isApprox(ga.h_n.row(k), 1e-12));
      CHECK(lhn.row(k * B + b).isApprox(la.h_n.row(k), 1e-12));
      CHECK(lcn.row(k * B + b).isApprox(la.c_n.row(k), 1e-12));
    }
  }
  // Padded steps receive no gradient, and lengths of 0 give h_n = h0.
  gru.forward(x, B, h0, len);
  const Matrix<double> dx = gru.backward(randn(B * T, 2 * H, 44), randn(4 * B, H, 45)).dx;
  CHECK(dx.middleRows(1 * T + 2, 3).isZero(0));
  const auto z = gru.forward(x, B, h0, labels({0, 0, 0}));
  CHECK(z.output.isZero(0));
  CHECK(z.h_n == h0);
  // Full lengths are the same as no lengths.
  const Matrix<double> full = gru.forward(x, B, h0, labels({5, 5, 5})).output;
  CHECK(gru.forward(x, B, h0).output == full);
  const Matrix<double> lfull = lstm.forward(x, B, h0, c0, labels({5, 5, 5})).output;
  CHECK(lstm.forward(x, B, h0, c0).output == lfull);
}

TEST_CASE("GRU/LSTM: requires_input_grad(false) skips dx, parameter gradients unchanged") {
  const Index B = 2, T = 3;
  const Matrix<double> x = randn(B * T, 3, 81), dy = randn(B * T, 8, 82);
  heed::Generator g1(83), g2(83);
  heed::GRU<double> a(3, 4, {.num_layers = 2, .bidirectional = true}, g1);
  heed::GRU<double> b(3, 4, {.num_layers = 2, .bidirectional = true}, g2);
  b.requires_input_grad(false);
  a.forward(x, B);
  b.forward(x, B);
  CHECK(a.backward(dy).dx.rows() == B * T);
  CHECK(b.backward(dy).dx.rows() == 0);
  for (std::size_t i = 0; i < a.parameters().size(); ++i)
    CHECK(*a.parameters()[i].grad == *b.parameters()[i].grad);
}

TEST_CASE("GRU/LSTM: PyTorch reference (2 layers, bidirectional, packed lengths, h0/c0)") {
  // Values computed once by recurrent_reference.py with torch.nn.GRU / torch.nn.LSTM.
  const Index I = 3, H = 4, B = 3, T = 4, S = 2 * 2 * B;
  const Labels len = labels({4, 2, 3});
  const Matrix<double> x = fill(B * T, I, 1.0), h0 = fill(S, H, 2.0, 0.5), c0 = fill(S, H, 3.0, 0.5);
  const Matrix<double> R = fill(B * T, 2 * H, 50.0), R2 = fill(S, H, 51.0), R3 = fill(S, H, 52.0);
  auto set_params = [](auto& net) {
    int k = 0;
    for (auto& p : net.parameters()) {
      *p.value = fill(p.value->rows(), p.value->cols(), 10 + k, 0.5);
      ++k;
    }
  };
  auto param_grads = [](auto& net) {
    std::vector<double> g;
    for (auto& p : net.parameters()) g.insert(g.end(), p.grad->data(), p.grad->data() + p.grad->size());
    return Matrix<double>(Eigen::Map<const Matrix<double>>(g.data(), 1, Index(g.size())));
  };
  const double tol = 1e-10;
  SUBCASE("GRU") {
    heed::GRU<double> gru(I, H, {.num_layers = 2, .bidirectional = true});
    set_params(gru);
    const auto o = gru.forward(x, B, h0, len);
    CHECK(o.output.isApprox(as_matrix(rnn_ref::gru_output, B * T, 2 * H), tol));
    CHECK(o.h_n.isApprox(as_matrix(rnn_ref::gru_h_n, S, H), tol));
    const auto g = gru.backward(R, R2);
    CHECK(g.dx.isApprox(as_matrix(rnn_ref::gru_dx, B * T, I), tol));
    CHECK(g.dh0.isApprox(as_matrix(rnn_ref::gru_dh0, S, H), tol));
    const Matrix<double> pg = param_grads(gru);
    CHECK(pg.isApprox(as_matrix(rnn_ref::gru_param_grads, 1, pg.cols()), tol));
  }
  SUBCASE("LSTM") {
    heed::LSTM<double> lstm(I, H, {.num_layers = 2, .bidirectional = true});
    set_params(lstm);
    const auto o = lstm.forward(x, B, h0, c0, len);
    CHECK(o.output.isApprox(as_matrix(rnn_ref::lstm_output, B * T, 2 * H), tol));
    CHECK(o.h_n.isApprox(as_matrix(rnn_ref::lstm_h_n, S, H), tol));
    CHECK(o.c_n.isApprox(as_matrix(rnn_ref::lstm_c_n, S, H), tol));
    const auto g = lstm.backward(R, R2, R3);
    CHECK(g.dx.isApprox(as_matrix(rnn_ref::lstm_dx, B * T, I), tol));
    CHECK(g.dh0.isApprox(as_matrix(rnn_ref::lstm_dh0, S, H), tol));
    CHECK(g.dc0.isApprox(as_matrix(rnn_ref::lstm_dc0, S, H), tol));
    const Matrix<double> pg = param_grads(lstm);
    CHECK(pg.isApprox(as_matrix(rnn_ref::lstm_param_grads, 1, pg.cols()), tol));
  }
}

TEST_CASE("GRU/LSTM: float agrees with double") {
  const Index B = 3, T = 4, I = 3, H = 5;
  const Labels len = labels({4, 1, 3});
  const Matrix<double> x = randn(B * T, I, 51), dy = randn(B * T, 2 * H, 52);
  const Matrix<double> h0 = randn(4 * B, H, 53, 0.5), dhn = randn(4 * B, H, 54);
  const heed::RNNOptions opt{.num_layers = 2, .bidirectional = true};
  {
    heed::Generator gf(55), gd(55);
    heed::GRU<float> f(I, H, opt, gf);
    heed::GRU<double> d(I, H, opt, gd);
    const Matrix<float> yf = f.forward(x.cast<float>(), B, h0.cast<float>(), len).output;
    CHECK(yf.cast<double>().isApprox(d.forward(x, B, h0, len).output, 1e-5));
    const auto gfl = f.backward(dy.cast<float>(), dhn.cast<float>());
    const auto gdb = d.backward(dy, dhn);
    CHECK(gfl.dx.cast<double>().isApprox(gdb.dx, 1e-4));
    CHECK(gfl.dh0.cast<double>().isApprox(gdb.dh0, 1e-4));
    CHECK(f.parameters()[4].grad->cast<double>().isApprox(*d.parameters()[4].grad, 1e-4));
  }
  {
    heed::Generator gf(56), gd(56);
    heed::LSTM<float> f(I, H, opt, gf);
    heed::LSTM<double> d(I, H, opt, gd);
    const Matrix<float> yf = f.forward(x.cast<float>(), B, h0.cast<float>(), Matrix<float>(), len).output;
    CHECK(yf.cast<double>().isApprox(d.forward(x, B, h0, Matrix<double>(), len).output, 1e-5));
    const auto gfl = f.backward(dy.cast<float>(), dhn.cast<float>());
    const auto gdb = d.backward(dy, dhn);
    CHECK(gfl.dx.cast<double>().isApprox(gdb.dx, 1e-4));
    CHECK(gfl.dc0.cast<double>().isApprox(gdb.dc0, 1e-4));
    CHECK(f.parameters()[9].grad->cast<double>().isApprox(*d.parameters()[9].grad, 1e-4));
  }
  {
    heed::Generator gf(57), gd(57);
    heed::GRUCell<float> f(I, H, true, gf);
    heed::GRUCell<double> d(I, H, true, gd);
    const Matrix<double> xs = randn(B, I, 58);
    CHECK(f.forward(xs.cast<float>()).cast<double>().isApprox(d.forward(xs), 1e-5));
    heed::LSTMCell<float> lf(I, H, true, gf);
    heed::LSTMCell<double> ld(I, H, true, gd);
    CHECK(lf.forward(xs.cast<float>()).c.cast<double>().isApprox(ld.forward(xs).c, 1e-5));
  }
}

TEST_CASE("GRU/LSTM/cells: errors name the module, the expected and the actual shape") {
  heed::GRU<float> gru(3, 4, {.num_layers = 2});
  const Matrix<float> x = Matrix<float>::Zero(6, 3);
  CHECK_THROWS_WITH_AS(gru.forward(Matrix<float>::Zero(6, 2), 2),
                       "GRU: input expected (B*T, 3) with B = 2 and T >= 1, got (6, 2)",
                       heed::ShapeError);
  CHECK_THROWS_WITH_AS(gru.forward(x, 4), "GRU: input expected (B*T, 3) with B = 4 and T >= 1, got (6, 3)",
                       heed::ShapeError);
  CHECK_THROWS_WITH_AS(gru.forward(x, 0), "GRU: batch size must be positive, got 0", heed::ValueError);
  CHECK_THROWS_WITH_AS(gru.forward(x, 2, Matrix<float>::Zero(2, 4)),
                       "GRU: h0 expected (4, 4), got (2, 4)", heed::ShapeError);
  CHECK_THROWS_WITH_AS(gru.forward(x, 2, Matrix<float>(), labels({3})),
                       "GRU: lengths expected (2), got (1)", heed::ShapeError);
  CHECK_THROWS_WITH_AS(gru.forward(x, 2, Matrix<float>(), labels({3, 4})),
                       "GRU: lengths[1] = 4 out of range [0, 3]", heed::ValueError);
  CHECK_THROWS_WITH_AS(gru.backward(Matrix<float>::Zero(6, 4)), "GRU: backward called before forward",
                       heed::ValueError);
  gru.forward(x, 2);
  CHECK_THROWS_WITH_AS(gru.backward(Matrix<float>::Zero(6, 8)), "GRU: gradient expected (6, 4), got (6, 8)",
                       heed::ShapeError);
  CHECK_THROWS_WITH_AS(gru.backward(Matrix<float>::Zero(6, 4), Matrix<float>::Zero(2, 4)),
                       "GRU: h_n gradient expected (4, 4), got (2, 4)", heed::ShapeError);
  CHECK_THROWS_WITH_AS(heed::GRU<float>(3, 4, {.num_layers = 0}), "GRU: num_layers must be positive, got 0",
                       heed::ValueError);
  CHECK_THROWS_AS(heed::GRU<float>(0, 4), heed::ValueError);

  heed::LSTM<float> lstm(3, 4, {.bidirectional = true});
  CHECK_THROWS_WITH_AS(lstm.forward(x, 2, Matrix<float>(), Matrix<float>::Zero(4, 3)),
                       "LSTM: c0 expected (4, 4), got (4, 3)", heed::ShapeError);
  lstm.forward(x, 3);
  CHECK_THROWS_WITH_AS(lstm.backward(Matrix<float>::Zero(6, 8), Matrix<float>(), Matrix<float>::Zero(1, 1)),
                       "LSTM: c_n gradient expected (6, 4), got (1, 1)", heed::ShapeError);
  CHECK_THROWS_AS(heed::LSTM<float>(3, -1), heed::ValueError);

  heed::GRUCell<float> cell(3, 4);
  CHECK_THROWS_WITH_AS(cell.forward(Matrix<float>::Zero(2, 5)), "GRUCell: input expected (*, 3), got (2, 5)",
                       heed::ShapeError);
  CHECK_THROWS_WITH_AS(cell.forward(Matrix<float>::Zero(2, 3), Matrix<float>::Zero(3, 4)),
                       "GRUCell: hidden state expected (2, 4), got (3, 4)", heed::ShapeError);
  cell.forward(Matrix<float>::Zero(2, 3));
  CHECK_THROWS_WITH_AS(cell.backward(Matrix<float>::Zero(2, 3)), "GRUCell: gradient expected (2, 4), got (2, 3)",
                       heed::ShapeError);
  heed::LSTMCell<float> lc(3, 4);
  CHECK_THROWS_WITH_AS(lc.forward(Matrix<float>::Zero(2, 3), Matrix<float>(), Matrix<float>::Zero(2, 2)),
                       "LSTMCell: cell state expected (2, 4), got (2, 2)", heed::ShapeError);
}

TEST_CASE("GRU/LSTM: the returned h_n (and c_n) can be passed straight back as h0 (and c0)") {
  // Stateful use (truncated BPTT, a decoder seeded by the encoder): the arguments alias the
  // layer's own h_n / c_n buffers.
  const Index B = 2, T = 3;
  const heed::RNNOptions opt{.num_layers = 2, .bidirectional = true};
  const Matrix<double> x1 = randn(B * T, 2, 61), x2 = randn(B * T, 2, 62);
  heed::GRU<double> gru(2, 3, opt);
  const auto o1 = gru.forward(x1, B);
  const Matrix<double> hn1 = o1.h_n;
  const Matrix<double> y_copy = gru.forward(x2, B, hn1).output;
  gru.forward(x1, B);
  CHECK(gru.forward(x2, B, o1.h_n).output == y_copy);  // o1.h_n is gru's own buffer
  const Matrix<double> dy = randn(B * T, 6, 63), dhn = randn(4 * B, 3, 64);
  const Matrix<double>& dh0_buffer = gru.backward(dy, dhn).dh0;
  const Matrix<double> dh0_copy = dh0_buffer;
  const Matrix<double> expected = gru.backward(dy, dh0_copy).dh0;
  gru.backward(dy, dhn);                                         // dh0_buffer == dh0_copy again
  CHECK(gru.backward(dy, dh0_buffer).dh0 == expected);          // dh_n aliases dh0

  heed::LSTM<double> lstm(2, 3, opt);
  const auto l1 = lstm.forward(x1, B);
  const Matrix<double> h1 = l1.h_n, c1 = l1.c_n;
  const Matrix<double> ly_copy = lstm.forward(x2, B, h1, c1).output;
  lstm.forward(x1, B);
  CHECK(lstm.forward(x2, B, l1.h_n, l1.c_n).output == ly_copy);
}

TEST_CASE("Seq2Seq wiring: shared Embedding -> GRU encoder (lengths) -> GRUCell decoder -> Linear") {
  // Gradient check of the whole chain: the encoder's h_n seeds the decoder, whose dh flows back
  // into the encoder as d(h_n); source and target tokens share one embedding table.
  const Index V = 5, E = 3, H = 4, B = 2, Ts = 3, Td = 3;
  heed::Generator gen(71);
  heed::Embedding<double> emb(V, E, -1, gen);
  heed::GRU<double> enc(E, H, {}, gen);
  heed::GRUCell<double> dec(E, H, true, gen);
  heed::Linear<double> head(H, V, true, gen);
  // ids: source batch-first (B*Ts), then decoder inputs time-major (step t at rows t*B + b).
  const Labels ids = labels({1, 2, 3, 4, 0, 0, 2, 1, 3, 3, 0, 4});
  const Labels len = labels({3, 2});
  const Matrix<double> R = randn(Td * B, V, 72);
  Matrix<double> Hd(Td * B, H);  // decoder states, step t at rows t*B
  auto loss = [&] {
    dec.clear();
    const Matrix<double>& e = emb.forward(ids);                     // (B*Ts + Td*B, E)
    Matrix<double> h = enc.forward(e.topRows(B * Ts), B, Matrix<double>(), len).h_n;  // (B, H)
    for (Index t = 0; t < Td; ++t) {
      h = dec.forward(e.middleRows(B * Ts + t * B, B), h);
      Hd.middleRows(t * B, B) = h;
    }
    return dot(head.forward(Hd), R);
  };
  emb.zero_grad();
  enc.zero_grad();
  dec.zero_grad();
  head.zero_grad();
  loss();
  const Matrix<double> dHd = head.backward(R);  // (Td*B, H)
  Matrix<double> de(B * Ts + Td * B, E), dh = Matrix<double>::Zero(B, H);
  for (Index t = Td - 1; t >= 0; --t) {
    const auto g = dec.backward(dh + dHd.middleRows(t * B, B));
    de.middleRows(B * Ts + t * B, B) = g.dx;
    dh = g.dh;
  }
  de.topRows(B * Ts) = enc.backward(Matrix<double>::Zero(B * Ts, H), dh).dx;
  emb.backward(de);
  GradcheckResult res;
  check_params(emb, loss, res);
  check_params(enc, loss, res);
  check_params(dec, loss, res);
  check_params(head, loss, res);
  INFO(res.detail);
  CHECK(res.ok);
  CHECK(emb.parameters()[0].grad->row(0).isZero(0) == false);  // id 0 is used, gets gradient
}

// ---- learning -------------------------------------------------------------------------------

TEST_CASE("Embedding + bidirectional GRU + Linear learn to reverse sequences (plain SGD)") {
  // tokens 0..V-1, sequences of length T; target at step t is the input at T-1-t.
  const Index V = 4, T = 4, B = 32, E = 8, H = 16;
  heed::Generator gen(7);
  heed::Embedding<float> emb(V, E, -1, gen);
  heed::GRU<float> gru(E, H, {.bidirectional = true}, gen);
  heed::Linear<float> head(2 * H, V, true, gen);
  heed::CrossEntropyLoss<float> ce;
  std::vector<heed::Parameter<float>> params = emb.parameters();
  for (auto& p : gru.parameters()) params.push_back(p);
  for (auto& p : head.parameters()) params.push_back(p);
  Labels ids(B * T), target(B * T);
  const float lr = 3.0f;
  float loss = 0;
  int step = 0;
  for (; step < 1000; ++step) {  // about 570 steps, 0.15 s
    for (Index b = 0; b < B; ++b)
      for (Index t = 0; t < T; ++t) ids(b * T + t) = static_cast<int>(gen.below(V));
    for (Index b = 0; b < B; ++b)
      for (Index t = 0; t < T; ++t) target(b * T + t) = ids(b * T + T - 1 - t);
    for (auto& p : params) p.grad->setZero();
    const auto& h = gru.forward(emb.forward(ids), B).output;  // (B*T, 2H)
    loss = ce.forward(head.forward(h), target);
    emb.backward(gru.backward(head.backward(ce.backward())).dx);
    for (auto& p : params) *p.value -= lr * *p.grad;
    if (loss < 0.05f) break;
  }
  MESSAGE("reverse task: loss " << loss << " after " << step << " steps");
  CHECK(loss < 0.05f);
}

TEST_CASE("LSTM + Linear learn a delayed copy (plain SGD)") {
  // Unidirectional: the target at step t is the input at t-1 (class 0 at t = 0), so the state
  // has to remember one token.
  const Index V = 3, T = 6, B = 32, H = 12;
  heed::Generator gen(9);
  heed::LSTM<float> lstm(V, H, {}, gen);
  heed::Linear<float> head(H, V, true, gen);
  heed::CrossEntropyLoss<float> ce;
  std::vector<heed::Parameter<float>> params = lstm.parameters();
  for (auto& p : head.parameters()) params.push_back(p);
  Matrix<float> x(B * T, V);
  Labels target(B * T);
  float loss = 0;
  int step = 0;
  for (; step < 600; ++step) {
    x.setZero();
    for (Index b = 0; b < B; ++b)
      for (Index t = 0; t < T; ++t) {
        const int tok = static_cast<int>(gen.below(V));
        x(b * T + t, tok) = 1;  // one-hot
        if (t + 1 < T) target(b * T + t + 1) = tok;
      }
    for (Index b = 0; b < B; ++b) target(b * T) = 0;
    for (auto& p : params) p.grad->setZero();
    loss = ce.forward(head.forward(lstm.forward(x, B).output), target);
    lstm.requires_input_grad(false);
    lstm.backward(head.backward(ce.backward()));
    for (auto& p : params) *p.value -= 1.0f * *p.grad;
    if (loss < 0.05f) break;
  }
  MESSAGE("delayed copy: loss " << loss << " after " << step << " steps");
  CHECK(loss < 0.05f);
}

TEST_CASE("GRU/LSTM: NaN/inf in the padding reaches no output, state or gradient") {
  // PyTorch's packed sequences never read padding; heed's lengths must not either: whatever is
  // written into the padded input rows, the results equal those with zeros there.
  const Index B = 3, T = 4, I = 2, H = 3;
  const Labels len = labels({4, 2, 1});
  const Matrix<double> x0 = randn(B * T, I, 71);
  Matrix<double> clean = x0, dirty = x0;
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (Index b = 0; b < B; ++b)
    for (Index t = len(b); t < T; ++t) {
      clean.row(b * T + t).setZero();
      dirty(b * T + t, 0) = nan;
      dirty(b * T + t, 1) = (t % 2 == 0) ? inf : -inf;
    }
  auto grads = [](auto& net) {
    std::vector<Matrix<double>> g;
    for (auto& p : net.parameters()) g.push_back(*p.grad);
    return g;
  };
  for (Index L : {1, 2}) {
    for (bool bi : {false, true}) {
      CAPTURE(L);
      CAPTURE(bi);
      const Index S = L * (bi ? 2 : 1) * B, D = bi ? 2 : 1;
      const Matrix<double> h0 = randn(S, H, 72), c0 = randn(S, H, 73);
      const Matrix<double> R = randn(B * T, D * H, 74), R2 = randn(S, H, 75), R3 = randn(S, H, 76);
      heed::GRU<double> gru(I, H, {.num_layers = L, .bidirectional = bi});
      heed::LSTM<double> lstm(I, H, {.num_layers = L, .bidirectional = bi});
      std::vector<Matrix<double>> gg[2], lg[2];
      Matrix<double> gy[2], ly[2], ghn[2], lhn[2], lcn[2], gdx[2], ldx[2];
      for (int k = 0; k < 2; ++k) {
        const Matrix<double>& x = k == 0 ? clean : dirty;
        gru.zero_grad();
        const auto go = gru.forward(x, B, h0, len);
        gy[k] = go.output;
        ghn[k] = go.h_n;
        gdx[k] = gru.backward(R, R2).dx;
        gg[k] = grads(gru);
        lstm.zero_grad();
        const auto lo = lstm.forward(x, B, h0, c0, len);
        ly[k] = lo.output;
        lhn[k] = lo.h_n;
        lcn[k] = lo.c_n;
        ldx[k] = lstm.backward(R, R2, R3).dx;
        lg[k] = grads(lstm);
      }
      CHECK(gy[1] == gy[0]);
      CHECK(ly[1] == ly[0]);
      CHECK(ghn[1] == ghn[0]);
      CHECK(lhn[1] == lhn[0]);
      CHECK(lcn[1] == lcn[0]);
      CHECK(gdx[1] == gdx[0]);
      CHECK(ldx[1] == ldx[0]);
      CHECK(gdx[1].allFinite());
      CHECK(ldx[1].allFinite());
      for (std::size_t i = 0; i < gg[0].size(); ++i) {
        CHECK(gg[1][i].allFinite());
        CHECK(gg[1][i] == gg[0][i]);
      }
      for (std::size_t i = 0; i < lg[0].size(); ++i) {
        CHECK(lg[1][i].allFinite());
        CHECK(lg[1][i] == lg[0][i]);
      }
    }
  }
}
