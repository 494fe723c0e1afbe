// TransformerDecoderLayer and TransformerDecoder called through heed::Graph: gradients reach
// both tgt and memory, equal to the modules' own backward, with memory produced by an encoder
// in the same graph (an encoder-decoder), and with a constant memory or tgt.
#include "helpers.hpp"  // first: see there

#include <heed/graph.hpp>

using namespace tr_test;
using heed::TransformerDecoder;
using heed::TransformerDecoderLayer;
using heed::TransformerEncoder;

namespace {
using Base = heed::ModuleBase<double>;
}

TEST_CASE("Graph: encoder -> decoder layer -> decoder, as their own backward") {
  constexpr Index D = 8, H = 2, FF = 16, B = 2, Ts = 4, Tt = 3;
  BoolMatrix spad = BoolMatrix::Zero(B, Ts);
  spad(1, 3) = true;
  const Matrix<double> src = randn(B * Ts, D, 1), tgt = randn(B * Tt, D, 3),
                       dy = randn(B * Tt, D, 2);
  heed::Generator gen(6);
  TransformerEncoder<double> enc(D, H, 1, {.dim_feedforward = FF, .dropout = 0.0}, {}, gen);
  TransformerDecoderLayer<double> layer(D, H, {.dim_feedforward = FF, .dropout = 0.0}, gen);
  TransformerDecoder<double> dec(D, H, 2, {.dim_feedforward = FF, .dropout = 0.0, .norm_first = true},
                                 {.norm = heed::LayerNorm<double>(D)}, gen);
  randomize(enc, 10);
  randomize(layer, 20);
  randomize(dec, 40);
  const heed::TransformerDecoderArgs<double> args{.memory_key_padding_mask = &spad,
                                                  .tgt_is_causal = true};

  // Direct: mem = enc(src); h = layer(tgt, mem); out = dec(h, mem) + h
  const Matrix<double> mem = enc.forward(src, B, {.src_key_padding_mask = &spad});
  const Matrix<double> h = layer.forward(tgt, mem, B, args);
  const Matrix<double> out = dec.forward(h, mem, B, args) + h;
  const auto gd = dec.backward(dy);
  const Matrix<double> dh = gd.dtgt + dy;
  Matrix<double> dmem = gd.dmemory;
  const auto gl = layer.backward(dh);
  const Matrix<double> dtgt = gl.dtgt;
  dmem += gl.dmemory;
  const Matrix<double> dsrc = enc.backward(dmem);
  std::vector<Matrix<double>> want;
  for (auto* m : {static_cast<Base*>(&enc), static_cast<Base*>(&layer), static_cast<Base*>(&dec)})
    for (auto& p : m->parameters()) want.push_back(*p.grad);

  heed::Graph<double> g;
  for (int step = 0; step < 2; ++step) {  // twice: the graph's buffers are reused
    g.clear();
    enc.zero_grad();
    layer.zero_grad();
    dec.zero_grad();
    auto sv = g.input(src, /*requires_grad=*/true);
    auto tv = g.input(tgt, /*requires_grad=*/true);
    auto mv = g(enc, sv, B, {.src_key_padding_mask = &spad});
    auto hv = g(layer, tv, mv, B, args);
    auto ov = g(dec, hv, mv, B, args) + hv;
    CHECK(rel_err<double>(ov.value(), out) < 1e-14);
    g.backward(ov, dy);
    CHECK(rel_err<double>(tv.grad(), dtgt) < 1e-14);
    CHECK(rel_err<double>(mv.grad(), dmem) < 1e-14);  // summed over both consumers
    CHECK(rel_err<double>(sv.grad(), dsrc) < 1e-14);
    std::size_t i = 0;
    for (auto* m : {static_cast<Base*>(&enc), static_cast<Base*>(&layer), static_cast<Base*>(&dec)})
      for (auto& p : m->parameters()) {
        CAPTURE(p.name);
        CHECK(rel_err<double>(*p.grad, want[i++]) < 1e-14);
      }
  }
  // A constant memory: no memory gradient computed; a constant tgt: no tgt gradient.
  g.clear();
  auto tc = g.input(tgt, true);
  auto mc = g.input(mem);
  auto y = g(layer, tc, mc, B);
  CHECK_FALSE(layer.requires_memory_grad());
  CHECK(layer.requires_input_grad());
  g.backward(y, dy);
  CHECK(mc.grad().size() == 0);
  CHECK(tc.grad().rows() == B * Tt);
  g.clear();
  auto tk = g.input(tgt);
  auto mk = g.input(mem, true);
  auto y2 = g(dec, tk, mk, B);
  CHECK_FALSE(dec.requires_input_grad());
  CHECK(dec.requires_memory_grad());
  g.backward(y2, dy);
  CHECK(tk.grad().size() == 0);
  CHECK(mk.grad().rows() == B * Ts);
  // A second call of one module in one forward is refused (one cache per module).
  g.clear();
  auto a = g(layer, g.input(tgt), g.input(mem), B);
  CHECK_THROWS_AS(g(layer, a, g.input(mem), B), heed::ValueError);
}

TEST_CASE("Graph<float>: a transformer decoder composes in float too") {
  constexpr Index D = 8, B = 2, Tt = 3, Tm = 5;
  TransformerDecoder<float> dec(D, 2, 2, {.dim_feedforward = 16, .dropout = 0.0});
  TransformerDecoderLayer<float> head(D, 2, {.dim_feedforward = 16, .dropout = 0.0});
  const Matrix<float> x = randn<float>(B * Tt, D, 1), m = randn<float>(B * Tm, D, 3),
                      dy = randn<float>(B * Tt, D, 2);
  heed::Graph<float> g;
  auto xv = g.input(x, true);
  auto mv = g.input(m, true);
  auto y = g(head, g(dec, xv, mv, B, {.tgt_is_causal = true}), mv, B);
  g.backward(y, dy);
  CHECK(xv.grad().rows() == B * Tt);
  CHECK(mv.grad().rows() == B * Tm);
  CHECK(xv.grad().allFinite());
  CHECK(mv.grad().allFinite());
}
