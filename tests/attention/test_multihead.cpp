#include <cmath>

#include "helpers.hpp"

using namespace attn_test;
using heed::BoolMatrix;
using heed::MultiheadAttention;
using heed::MultiheadAttentionArgs;

namespace {

heed::testing::GradcheckResult check_mha(MultiheadAttention<double>& mha, Index B, Index Tq,
                                         Index Tk, const MultiheadAttentionArgs<double>& args,
                                         std::uint64_t seed = 1,
                                         std::function<void()> before = {}) {
  auto q = randn(B * Tq, mha.embed_dim(), seed), k = randn(B * Tk, mha.kdim(), seed + 1),
       v = randn(B * Tk, mha.vdim(), seed + 2);
  return check_qkv(mha, q, k, v, [&](auto& a, auto& b, auto& c) -> const Matrix<double>& {
    if (before) before();
    return mha.forward(a, b, c, B, args).output;
  });
}

// Straight from the PyTorch formulas, one scalar at a time: an independent reference.
Matrix<double> naive_mha(MultiheadAttention<double>& mha, const Matrix<double>& q,
                         const Matrix<double>& k, const Matrix<double>& v, Index B,
                         const BoolMatrix* pad, bool causal, Matrix<double>* avg_weights) {
  auto ps = mha.parameters();
  const Matrix<double>& Win = *ps[0].value;  // (3E, E)
  const Matrix<double>& bin = *ps[1].value;  // (1, 3E)
  const Matrix<double>& Wo = *ps[2].value;
  const Matrix<double>& bo = *ps[3].value;
  const Index E = mha.embed_dim(), H = mha.num_heads(), hd = E / H;
  const Index Tq = q.rows() / B, Tk = k.rows() / B;
  Matrix<double> Qp = (q * Win.topRows(E).transpose()).rowwise() + bin.row(0).segment(0, E);
  Matrix<double> Kp = (k * Win.middleRows(E, E).transpose()).rowwise() + bin.row(0).segment(E, E);
  Matrix<double> Vp = (v * Win.bottomRows(E).transpose()).rowwise() + bin.row(0).segment(2 * E, E);
  Matrix<double> ctx = Matrix<double>::Zero(B * Tq, E);
  if (avg_weights) *avg_weights = Matrix<double>::Zero(B * Tq, Tk);
  for (Index b = 0; b < B; ++b)
    for (Index h = 0; h < H; ++h)
      for (Index i = 0; i < Tq; ++i) {
        std::vector<double> s(Tk);
        double mx = -1e300;
        for (Index j = 0; j < Tk; ++j) {
          double dot = 0;
          for (Index c = 0; c < hd; ++c) dot += Qp(b * Tq + i, h * hd + c) * Kp(b * Tk + j, h * hd + c);
          s[j] = dot / std::sqrt(double(hd));
          if ((pad && (*pad)(b, j)) || (causal && j > i)) s[j] = -INFINITY;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (Index j = 0; j < Tk; ++j) sum += (s[j] = std::exp(s[j] - mx));
        for (Index j = 0; j < Tk; ++j) {
          const double p = s[j] / sum;
          if (avg_weights) (*avg_weights)(b * Tq + i, j) += p / H;
          for (Index c = 0; c < hd; ++c) ctx(b * Tq + i, h * hd + c) += p * Vp(b * Tk + j, h * hd + c);
        }
      }
  return (ctx * Wo.transpose()).rowwise() + bo.row(0);
}

}  // namespace

TEST_CASE("MultiheadAttention: gradient check, self-attention, plain and fused paths") {
  heed::Generator gen(2);
  MultiheadAttention<double> mha(4, 2, {}, gen);
  // biases start at zero, as in PyTorch: make them non-zero so they matter
  for (auto& p : mha.parameters())
    if (p.name.find("bias") != std::string::npos) *p.value = randn(1, p.value->cols(), 9);
  BoolMatrix pad = BoolMatrix::Zero(2, 3);
  pad(1, 2) = true;
  for (bool need_weights : {true, false}) {
    CAPTURE(need_weights);
    auto r = check_mha(mha, 2, 3, 3, {.need_weights = need_weights});
    CHECK(mha.used_fused() == !need_weights);
    INFO(r.detail);
    CHECK(r.ok);
    auto r2 = check_mha(mha, 2, 3, 3,
                        {.key_padding_mask = &pad, .is_causal = true, .need_weights = need_weights});
    INFO(r2.detail);
    CHECK(r2.ok);
  }
}

TEST_CASE("MultiheadAttention: gradient check, cross-attention with kdim, vdim != embed_dim") {
  heed::Generator gen(3);
  MultiheadAttention<double> mha(6, 3, {.kdim = 4, .vdim = 5}, gen);
  auto ps = mha.parameters();
  REQUIRE(ps.size() == 6);
  CHECK(ps[0].name == "q_proj_weight");
  CHECK(ps[1].name == "k_proj_weight");
  CHECK(ps[1].value->cols() == 4);
  CHECK(ps[2].name == "v_proj_weight");
  CHECK(ps[2].value->cols() == 5);
  CHECK(ps[3].name == "in_proj_bias");
  for (auto& p : ps)
    if (p.name.find("bias") != std::string::npos) *p.value = randn(1, p.value->cols(), 9);
  Matrix<double> bias = randn(2, 4, 5);
  BoolMatrix am = BoolMatrix::Zero(2, 4);
  am(0, 1) = true;
  for (bool need_weights : {true, false}) {
    CAPTURE(need_weights);
    auto r = check_mha(mha, 2, 2, 4,
                       {.attn_mask = &am, .attn_bias = &bias, .need_weights = need_weights});
    INFO(r.detail);
    CHECK(r.ok);
  }
}

TEST_CASE("MultiheadAttention: gradient check with dropout in training, without bias") {
  heed::Generator gen(4), drop(77);
  MultiheadAttention<double> mha(4, 2, {.dropout = 0.3, .bias = false}, gen);
  auto ps = mha.parameters();
  REQUIRE(ps.size() == 2);
  CHECK(ps[0].name == "in_proj_weight");
  CHECK(ps[1].name == "out_proj.weight");
  MultiheadAttention<double> mha_d(4, 2, {.dropout = 0.3}, drop);
  mha_d.forward(randn(6, 4, 1), 2, {.need_weights = false});
  CHECK_FALSE(mha_d.used_fused());  // dropout active in training: plain path
  auto r = check_mha(mha_d, 2, 3, 3, {.need_weights = false}, 1, [&] { mha_d.generator().seed(5); });
  INFO(r.detail);
  CHECK(r.ok);
  mha_d.eval();
  mha_d.forward(randn(6, 4, 1), 2, {.need_weights = false});
  CHECK(mha_d.used_fused());
}

TEST_CASE("MultiheadAttention: self-attention gradient is dquery + dkey + dvalue") {
  heed::Generator gen(6);
  MultiheadAttention<double> mha(4, 2, {}, gen);
  Matrix<double> x = randn(6, 4, 1);
  const Matrix<double> R = randn(6, 4, 2);
  auto loss = [&] { return mha.forward(x, 2, {.is_causal = true}).output.cwiseProduct(R).sum(); };
  loss();
  auto [dq, dk, dv] = mha.backward(R);
  const Matrix<double> dx = dq + dk + dv;
  auto r = heed::testing::check_gradient("x", x, dx, loss);
  INFO(r.detail);
  CHECK(r.ok);
}

TEST_CASE("MultiheadAttention: PyTorch parameter names, shapes and initialisation") {
  heed::Generator gen(1);
  MultiheadAttention<float> mha(64, 8, {}, gen);
  auto ps = mha.parameters();
  REQUIRE(ps.size() == 4);
  CHECK(ps[0].name == "in_proj_weight");
  CHECK(ps[0].value->rows() == 192);
  CHECK(ps[0].value->cols() == 64);
  CHECK(ps[1].name == "in_proj_bias");
  CHECK(ps[1].value->cols() == 192);
  CHECK(ps[1].value->isZero(0));
  CHECK(ps[2].name == "out_proj.weight");
  CHECK(ps[3].name == "out_proj.bias");
  CHECK(ps[3].value->isZero(0));
  CHECK(mha.num_parameters() == 4 * 64 * 64 + 4 * 64);
  const float xavier = std::sqrt(6.0f / (192 + 64));
  CHECK(ps[0].value->cwiseAbs().maxCoeff() <= xavier);
  CHECK(ps[0].value->cwiseAbs().maxCoeff() > 0.95f * xavier);
  CHECK(ps[2].value->cwiseAbs().maxCoeff() <= 1.0f / 8.0f);
  CHECK(ps[2].value->cwiseAbs().maxCoeff() > 0.95f / 8.0f);
  heed::Generator gen2(1);
  MultiheadAttention<float> again(64, 8, {}, gen2);
  CHECK(*again.parameters()[0].value == *ps[0].value);
  CHECK(mha.head_dim() == 8);
}

TEST_CASE("MultiheadAttention: output and weights match a scalar reference implementation") {
  heed::Generator gen(8);
  MultiheadAttention<double> mha(6, 3, {}, gen);
  for (auto& p : mha.parameters())
    if (p.name.find("bias") != std::string::npos) *p.value = randn(1, p.value->cols(), 3);
  const Index B = 2, Tq = 4, Tk = 5;
  auto q = randn(B * Tq, 6, 1), k = randn(B * Tk, 6, 2), v = randn(B * Tk, 6, 3);
  BoolMatrix pad = BoolMatrix::Zero(B, Tk);
  pad(0, 4) = pad(1, 0) = true;
  Matrix<double> w_ref;
  const Matrix<double> ref = naive_mha(mha, q, k, v, B, &pad, true, &w_ref);
  auto [out, w] = mha.forward(q, k, v, B, {.key_padding_mask = &pad, .is_causal = true});
  CHECK(rel_err<double>(out, ref) < 1e-12);
  CHECK(rel_err<double>(w, w_ref) < 1e-12);
  CHECK(&w == &mha.weights());
  // per-head weights average to the returned ones
  auto [out2, wh] = mha.forward(q, k, v, B,
                                {.key_padding_mask = &pad, .is_causal = true,
                                 .average_attn_weights = false});
  REQUIRE(wh.rows() == B * 3 * Tq);
  Matrix<double> avg = Matrix<double>::Zero(B * Tq, Tk);
  for (Index b = 0; b < B; ++b)
    for (Index h = 0; h < 3; ++h) avg.middleRows(b * Tq, Tq) += wh.middleRows((b * 3 + h) * Tq, Tq) / 3;
  CHECK(rel_err<double>(avg, w_ref) < 1e-12);
  // fused path: same output, no weights
  Matrix<double> out_plain = out2;
  auto [out3, w3] = mha.forward(q, k, v, B,
                                {.key_padding_mask = &pad, .is_causal = true, .need_weights = false});
  CHECK(w3.size() == 0);
  CHECK(rel_err<double>(out3, out_plain) < 1e-12);
}

TEST_CASE_TEMPLATE("MultiheadAttention: fused and plain paths agree, forward and gradients", T,
                   float, double) {
  heed::Generator gen(10);
  MultiheadAttention<T> mha(32, 4, {.kdim = 24, .vdim = 16}, gen);
  struct S { Index B, Tq, Tk; bool causal; };
  for (const S s : {S{1, 70, 100, false}, S{3, 65, 65, true}, S{2, 130, 20, true}, S{1, 1, 1, false}}) {
    CAPTURE(s.B);
    CAPTURE(s.Tq);
    CAPTURE(s.Tk);
    auto q = randn<T>(s.B * s.Tq, 32, 1), k = randn<T>(s.B * s.Tk, 24, 2),
         v = randn<T>(s.B * s.Tk, 16, 3), dout = randn<T>(s.B * s.Tq, 32, 4);
    BoolMatrix pad = BoolMatrix::Zero(s.B, s.Tk);
    if (s.Tk > 3) pad(s.B - 1, s.Tk - 2) = true;
    MultiheadAttentionArgs<T> args{.key_padding_mask = &pad, .is_causal = s.causal};
    mha.zero_grad();
    const Matrix<T> o_plain = mha.forward(q, k, v, s.B, args).output;
    auto gp = mha.backward(dout);
    const Matrix<T> dq = gp.dquery, dk = gp.dkey, dv = gp.dvalue;
    std::vector<Matrix<T>> pg;
    for (auto& p : mha.parameters()) pg.push_back(*p.grad);
    mha.zero_grad();
    args.need_weights = false;
    const Matrix<T> o_fused = mha.forward(q, k, v, s.B, args).output;
    REQUIRE(mha.used_fused());
    auto gf = mha.backward(dout);
    const double tol = sizeof(T) == 8 ? 1e-5 : 1e-4;
    CHECK(rel_err<T>(o_fused, o_plain) < tol);
    CHECK(rel_err<T>(gf.dquery, dq) < tol);
    CHECK(rel_err<T>(gf.dkey, dk) < tol);
    CHECK(rel_err<T>(gf.dvalue, dv) < tol);
    std::size_t i = 0;
    for (auto& p : mha.parameters()) {
      CAPTURE(p.name);
      CHECK(rel_err<T>(*p.grad, pg[i++]) < tol);
    }
  }
}

TEST_CASE("SelfAttention: a Module, gradient-checked with check_module, fused and plain") {
  heed::Generator gen(12);
  heed::SelfAttention<double> sa(4, 2, 3, {}, gen);
  for (auto& p : sa.parameters())
    if (p.name.find("bias") != std::string::npos) *p.value = randn(1, p.value->cols(), 9);
  sa.args().is_causal = true;
  auto r = heed::testing::check_module(sa, randn(6, 4, 1));
  INFO(r.detail);
  CHECK(r.ok);
  CHECK(sa.mha().used_fused());
  sa.args().need_weights = true;
  auto r2 = heed::testing::check_module(sa, randn(6, 4, 2));
  INFO(r2.detail);
  CHECK(r2.ok);
  CHECK(sa.weights().rows() == 6);
  CHECK(sa.parameters()[0].name == "in_proj_weight");
  CHECK_THROWS_WITH_AS(sa.forward(Matrix<double>::Zero(7, 4)),
                       "SelfAttention: input rows 7 not a positive multiple of seq_len 3",
                       heed::ShapeError);
  CHECK_THROWS_WITH_AS(sa.forward(Matrix<double>::Zero(6, 5)),
                       "SelfAttention: input expected (*, 4), got (6, 5)", heed::ShapeError);
  sa.eval();
  CHECK_FALSE(sa.mha().training());
}

TEST_CASE("Attention classes share ModuleBase: parameters, zero_grad, train/eval by base pointer") {
  heed::Generator gen(1);
  heed::MultiheadAttention<float> mha(8, 2, {}, gen);
  heed::Attention<float, heed::AdditiveScore> add(heed::AdditiveScore<float>(4, 4, 3, gen));
  heed::FusedAttention<float> fused;
  std::vector<heed::ModuleBase<float>*> ms{&mha, &add, &fused};
  for (auto* m : ms) {
    m->eval();
    CHECK_FALSE(m->training());
    m->zero_grad();
  }
  CHECK(ms[0]->num_parameters() == 4 * 8 * 8 + 4 * 8);
  CHECK(ms[1]->name() == "Attention<Additive>");
  CHECK(ms[2]->parameters().empty());
}

TEST_CASE("MultiheadAttention: one input passed as query, key and value is kept once, same results") {
  // Self-attention keeps one copy of its input instead of three; the results (output and all
  // gradients) equal those of three separate, equal matrices.
  heed::Generator gen(12);
  MultiheadAttention<double> a(8, 2, {}, gen), b(8, 2, {}, gen);
  for (std::size_t i = 0; i < a.parameters().size(); ++i)
    *b.parameters()[i].value = *a.parameters()[i].value;
  const Matrix<double> x = randn(2 * 3, 8, 3), x2 = x, x3 = x, dy = randn(2 * 3, 8, 4);
  const Matrix<double> ya = a.forward(x, x, x, 2).output;
  const Matrix<double> yb = b.forward(x, x2, x3, 2).output;
  CHECK((ya - yb).cwiseAbs().maxCoeff() == 0.0);
  const auto ga = a.backward(dy);
  const auto gb = b.backward(dy);
  CHECK((ga.dquery - gb.dquery).cwiseAbs().maxCoeff() == 0.0);
  CHECK((ga.dkey - gb.dkey).cwiseAbs().maxCoeff() == 0.0);
  CHECK((ga.dvalue - gb.dvalue).cwiseAbs().maxCoeff() == 0.0);
  for (std::size_t i = 0; i < a.parameters().size(); ++i)
    CHECK((*a.parameters()[i].grad - *b.parameters()[i].grad).cwiseAbs().maxCoeff() == 0.0);
  // Key and value as narrower column blocks of the query's matrix (kdim, vdim < E): the same
  // data pointer, rows and stride, but not one input: each keeps its own copy.
  MultiheadAttention<double> c(8, 2, {.kdim = 5, .vdim = 3}, gen), d(8, 2, {.kdim = 5, .vdim = 3}, gen);
  for (std::size_t i = 0; i < c.parameters().size(); ++i)
    *d.parameters()[i].value = *c.parameters()[i].value;
  const Matrix<double> k = x.leftCols(5), v = x.leftCols(3);
  const Matrix<double> yc = c.forward(x, x.leftCols(5), x.leftCols(3), 2).output;
  const Matrix<double> yd = d.forward(x, k, v, 2).output;
  CHECK((yc - yd).cwiseAbs().maxCoeff() == 0.0);
  const auto gc = c.backward(dy);
  const auto gd = d.backward(dy);
  CHECK(gc.dkey.cols() == 5);
  CHECK((gc.dkey - gd.dkey).cwiseAbs().maxCoeff() == 0.0);
  CHECK((gc.dvalue - gd.dvalue).cwiseAbs().maxCoeff() == 0.0);
}
