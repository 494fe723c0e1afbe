// TransformerEncoderLayer and TransformerEncoder called through heed::Graph: the recorded
// backward gives the same gradients as the modules' own backward, also under fan-out (a
// residual around the encoder) and with a constant input (no input gradient computed).
#include "helpers.hpp"  // first: see there

#include <heed/graph.hpp>

using namespace tr_test;
using heed::TransformerEncoder;
using heed::TransformerEncoderLayer;

TEST_CASE("Graph: TransformerEncoderLayer and TransformerEncoder, as their own backward") {
  constexpr Index D = 8, H = 2, FF = 16, B = 2, T = 4;
  BoolMatrix pad = BoolMatrix::Zero(B, T);
  pad(1, 3) = true;
  const Matrix<double> x = randn(B * T, D, 1), dy = randn(B * T, D, 2);
  heed::Generator gen(6);
  TransformerEncoderLayer<double> layer(D, H, {.dim_feedforward = FF, .dropout = 0.0}, gen);
  TransformerEncoder<double> enc(D, H, 2, {.dim_feedforward = FF, .dropout = 0.0, .norm_first = true},
                                 {.norm = heed::LayerNorm<double>(D)}, gen);
  randomize(layer, 20);
  randomize(enc, 40);

  // Direct: out = enc(layer(x)) + layer(x)
  const Matrix<double>& h0 = layer.forward(x, B, {.src_key_padding_mask = &pad});
  const Matrix<double> h = h0;
  const Matrix<double> out = enc.forward(h, B, {.src_key_padding_mask = &pad, .is_causal = true}) + h;
  const Matrix<double> dh = enc.backward(dy) + dy;
  const Matrix<double> dx = layer.backward(dh);
  std::vector<Matrix<double>> want;
  for (auto* m : {static_cast<heed::ModuleBase<double>*>(&layer), static_cast<heed::ModuleBase<double>*>(&enc)})
    for (auto& p : m->parameters()) want.push_back(*p.grad);

  layer.zero_grad();
  enc.zero_grad();
  heed::Graph<double> g;
  for (int step = 0; step < 2; ++step) {  // twice: the graph's buffers are reused
    g.clear();
    layer.zero_grad();
    enc.zero_grad();
    auto xv = g.input(x, /*requires_grad=*/true);
    auto hv = g(layer, xv, B, {.src_key_padding_mask = &pad});
    auto ov = g(enc, hv, B, {.src_key_padding_mask = &pad, .is_causal = true}) + hv;
    CHECK(rel_err<double>(ov.value(), out) < 1e-14);
    g.backward(ov, dy);
    CHECK(rel_err<double>(xv.grad(), dx) < 1e-14);
    std::size_t i = 0;
    for (auto* m : {static_cast<heed::ModuleBase<double>*>(&layer), static_cast<heed::ModuleBase<double>*>(&enc)})
      for (auto& p : m->parameters()) {
        CAPTURE(p.name);
        CHECK(rel_err<double>(*p.grad, want[i++]) < 1e-14);
      }
  }
  // A constant input: the first module is told not to compute its input gradient.
  g.clear();
  auto cv = g.input(x);
  auto yv = g(layer, cv, B);
  CHECK_FALSE(layer.requires_input_grad());
  g.backward(yv, dy);
  CHECK(cv.grad().size() == 0);
  // A second call of one module in one forward is refused (one cache per module).
  g.clear();
  auto a = g(layer, g.input(x), B);
  CHECK_THROWS_AS(g(layer, a, B), heed::ValueError);
}

TEST_CASE("Graph<float>: a transformer encoder composes in float too") {
  constexpr Index D = 8, B = 2, T = 3;
  TransformerEncoder<float> enc(D, 2, 2, {.dim_feedforward = 16, .dropout = 0.0});
  TransformerEncoderLayer<float> head(D, 2, {.dim_feedforward = 16, .dropout = 0.0});
  const Matrix<float> x = randn<float>(B * T, D, 1), dy = randn<float>(B * T, D, 2);
  heed::Graph<float> g;
  auto xv = g.input(x, true);
  auto y = g(head, g(enc, xv, B, {.is_causal = true}), B);
  g.backward(y, dy);
  CHECK(xv.grad().rows() == B * T);
  CHECK(xv.grad().allFinite());
}
