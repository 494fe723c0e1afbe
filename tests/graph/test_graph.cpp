// heed::Graph: composites that write only their forward; fan-out summed in one place.
#include <doctest/doctest.h>

#include <cstdio>
#include <heed/heed.hpp>
#include <heed/testing/gradcheck.hpp>

#include "common/helpers.hpp"

using heed::Index;
using heed::Matrix;
using heed_test::randn;

namespace {

// Embedding -> self-attention with a padding mask -> residual -> LayerNorm -> masked mean ->
// Linear: the README's model, templated so float and double both compile.
template <typename T>
struct Classifier : heed::ModuleBase<T> {
  heed::Embedding<T> emb;
  heed::MultiheadAttention<T> attn;
  heed::LayerNorm<T> norm;
  heed::MaskedMeanPool<T> pool;
  heed::Linear<T> head;

  Classifier(Index vocab, Index dim, Index heads, Index classes, heed::Generator& gen)
      : emb(vocab, dim, 0, gen), attn(dim, heads, {}, gen), norm(dim), head(dim, classes, true, gen) {}

  heed::Children<T> children() override {
    return {{"emb", &emb}, {"attn", &attn}, {"norm", &norm}, {"pool", &pool}, {"head", &head}};
  }
  std::string name() const override { return "Classifier"; }

  heed::Var<T> forward(heed::Graph<T>& g, const heed::Tokens& ids, const heed::BoolMatrix& pad) {
    const Index B = ids.rows();
    auto x = g(emb, ids);                                      // (B*T, E)
    auto a = g(attn, x, x, x, B, {.key_padding_mask = &pad, .need_weights = false});
    auto h = g(norm, x + a);                                   // residual, then LayerNorm
    return g(head, g(pool, h, B, &pad));                       // (B, classes)
  }
};

// The same shape of model over a float input instead of ids, for a gradient check of the input.
struct Block : heed::ModuleBase<double> {
  heed::Linear<double> in{3, 4};
  heed::MultiheadAttention<double> attn{4, 2};
  heed::LayerNorm<double> norm{4};
  heed::Linear<double> side{3, 4};
  heed::MaskedMeanPool<double> pool;
  heed::Linear<double> head{4, 2};
  heed::Children<double> children() override {
    return {{"in", &in}, {"attn", &attn}, {"norm", &norm}, {"side", &side}, {"pool", &pool}, {"head", &head}};
  }
  std::string name() const override { return "Block"; }

  // x feeds two modules (in and side); h feeds q, k, v and the residual.
  heed::Var<double> forward(heed::Graph<double>& g, heed::Var<double> x, Index B,
                            const heed::BoolMatrix& pad, bool need_weights) {
    auto h = g(in, x);
    auto a = g(attn, h, h, h, B, {.key_padding_mask = &pad, .need_weights = need_weights});
    auto n = g(norm, h + a + g(side, x));
    return g(head, g(pool, n, B, &pad));
  }
};

// Sequences of ids in [3, 9], padded with 0; label 1 when 7 occurs more often than 8.
struct Batch {
  heed::Tokens ids;
  heed::Labels lengths, labels;
};
Batch make_batch(Index B, Index T, heed::Generator& gen) {
  Batch b{heed::Tokens::Zero(B, T), heed::Labels(B), heed::Labels(B)};
  for (Index i = 0; i < B; ++i) {
    int sevens, eights;
    do {
      const Index len = 2 + static_cast<Index>(gen.below(static_cast<std::uint64_t>(T - 1)));
      b.lengths(i) = static_cast<int>(len);
      sevens = eights = 0;
      for (Index t = 0; t < len; ++t) {
        b.ids(i, t) = 3 + static_cast<int>(gen.below(7));
        sevens += b.ids(i, t) == 7;
        eights += b.ids(i, t) == 8;
      }
    } while (sevens == eights);
    b.labels(i) = sevens > eights;
  }
  return b;
}

}  // namespace

TEST_CASE("Graph: gradient check through fan-out (x into two modules, q = k = v, residual sums)") {
  const Index B = 3, T = 4;
  Block m;
  Matrix<double> x = randn(B * T, 3, 1);
  const heed::BoolMatrix pad = heed::key_padding_mask(heed_test::labels({4, 2, 3}), T);
  for (bool weights : {false, true}) {  // fused and plain attention paths
    heed::Graph<double> g;
    const Matrix<double> R = randn(B, 2, 2);
    auto loss = [&] {
      g.clear();
      return m.forward(g, g.input(x), B, pad, weights).value().cwiseProduct(R).sum();
    };
    m.zero_grad();
    g.clear();
    auto xin = g.input(x, /*requires_grad=*/true);
    auto out = m.forward(g, xin, B, pad, weights);
    g.backward(out, R);
    const Matrix<double> dx = xin.grad();
    std::vector<Matrix<double>> grads;
    for (auto& p : m.parameters()) grads.push_back(*p.grad);
    auto res = heed::testing::check_gradient("x", x, dx, loss);
    std::size_t i = 0;
    for (auto& p : m.parameters()) heed::testing::merge(res, heed::testing::check_gradient(p.name, *p.value, grads[i++], loss));
    CHECK_MESSAGE(res.ok, res.detail);
    CHECK(res.checked > 100);
  }
}

TEST_CASE("Graph: an input without requires_grad gets no gradient and its first module skips dx") {
  Block m;
  heed::Graph<double> g;
  const heed::BoolMatrix pad = heed::key_padding_mask(heed_test::labels({2, 2}), 2);
  auto x = g.input(randn(4, 3, 3));
  g.backward(m.forward(g, x, 2, pad, false), randn(2, 2, 4));
  CHECK(x.grad().size() == 0);
  CHECK_FALSE(m.in.requires_input_grad());
  CHECK(m.attn.requires_input_grad());  // its input is a module output
  CHECK_FALSE(m.in.parameters()[0].grad->isZero());
}

TEST_CASE("Graph: misuse is refused with a message") {
  heed::Graph<double> g, other;
  heed::Linear<double> lin(3, 3);
  auto x = g.input(randn(2, 3, 5));
  auto y = g(lin, x);
  CHECK_THROWS_WITH_AS(g(lin, y),
                       "Graph: Linear called twice in one forward; its cache holds one call (use one "
                       "module per position)",
                       heed::ValueError);
  CHECK_THROWS_WITH_AS(other.backward(y, Matrix<double>::Zero(2, 3)), "Graph: a Var of another graph",
                       heed::ValueError);
  CHECK_THROWS_WITH_AS(g.backward(y, Matrix<double>::Zero(3, 3)),
                       "Graph: output gradient expected (2, 3), got (3, 3)", heed::ShapeError);
  CHECK_THROWS_WITH_AS(g.add(x, g.input(Matrix<double>::Zero(3, 3))),
                       "Graph: add expected equal shapes, got (2, 3) and (3, 3)", heed::ShapeError);
  g.backward(y, Matrix<double>::Ones(2, 3));
  CHECK_THROWS_WITH_AS(g.backward(y, Matrix<double>::Ones(2, 3)),
                       "Graph: backward already ran for this forward; clear() and run forward again",
                       heed::ValueError);
  g.clear();
  CHECK_THROWS_WITH_AS(y.value(), "Graph: a Var from before clear(); run the forward again",
                       heed::ValueError);
  CHECK_NOTHROW(g(lin, g.input(randn(2, 3, 6))));  // a new forward may call it again
}

TEST_CASE("Graph: GRU and LSTM over a padded batch, gradient check") {
  const Index B = 2, T = 3;
  heed::GRU<double> gru(2, 3);
  heed::LSTM<double> lstm(3, 2);
  heed::MaskedMeanPool<double> pool;
  const heed::Labels len = heed_test::labels({3, 2});
  const heed::BoolMatrix pad = heed::key_padding_mask(len, T);
  Matrix<double> x = randn(B * T, 2, 7);
  heed::Graph<double> g;
  auto fwd = [&](heed::Var<double> in) { return g(pool, g(lstm, g(gru, in, B, len), B, len), B, &pad); };
  const Matrix<double> R = randn(B, 2, 8);
  auto loss = [&] {
    g.clear();
    return fwd(g.input(x)).value().cwiseProduct(R).sum();
  };
  g.clear();
  gru.zero_grad();
  lstm.zero_grad();
  auto xin = g.input(x, true);
  g.backward(fwd(xin), R);
  const Matrix<double> dx = xin.grad();
  const Matrix<double> dw = *gru.parameters()[0].grad;
  auto res = heed::testing::check_gradient("x", x, dx, loss);
  heed::testing::merge(res, heed::testing::check_gradient("gru.weight_ih_l0", *gru.parameters()[0].value, dw, loss));
  CHECK_MESSAGE(res.ok, res.detail);
}

TEST_CASE_TEMPLATE("Graph: a user composite trains on batches of varying length, then saves and loads", T,
                   float, double) {
  heed::Generator gen(3);
  Classifier<T> model(10, 16, 2, 2, gen);
  heed::Adam<T> opt(model.parameters(), {.lr = T(3e-3)});
  heed::CrossEntropyLoss<T> ce;
  heed::Graph<T> g;
  heed::Generator data(11);
  for (int step = 0; step < 150; ++step) {
    const Index Tlen = 6 + step % 7;  // the padded length changes every batch
    const Batch b = make_batch(32, Tlen, data);
    const heed::BoolMatrix pad = heed::key_padding_mask(b.lengths, Tlen);
    g.clear();
    opt.zero_grad();
    auto logits = model.forward(g, b.ids, pad);
    ce.forward(logits.value(), b.labels);
    g.backward(logits, ce.backward());
    opt.step();
  }
  model.eval();
  const Batch test = make_batch(400, 12, data);
  const heed::BoolMatrix pad = heed::key_padding_mask(test.lengths, 12);
  g.clear();
  const Matrix<T> logits = model.forward(g, test.ids, pad).value();
  const double acc = heed::accuracy(logits, test.labels);
  MESSAGE("held-out accuracy " << acc);
  CHECK(acc > 0.9);
  // padding ids do not matter: replacing them changes no logit
  heed::Tokens noisy = test.ids;
  for (Index i = 0; i < noisy.rows(); ++i)
    for (Index t = test.lengths(i); t < 12; ++t) noisy(i, t) = 5;
  g.clear();
  CHECK((model.forward(g, noisy, pad).value() - logits).cwiseAbs().maxCoeff() == 0);

  const std::string path = "/tmp/heed_test_graph_classifier_" + std::to_string(sizeof(T)) + ".heed";
  heed::save(model, path);
  heed::Generator other(99);
  Classifier<T> fresh(10, 16, 2, 2, other);
  fresh.eval();
  heed::load(fresh, path);
  for (auto& [k, v] : fresh.state_dict()) CHECK(v == model.state_dict().at(k));
  g.clear();
  CHECK(fresh.forward(g, test.ids, pad).value() == logits);
  std::remove(path.c_str());
}
