// Finite-difference gradient checks (double) of TransformerDecoderLayer and TransformerDecoder:
// tgt, memory and every parameter, in both norm orders and both activations, under each mask.
#include "helpers.hpp"  // first: see there

using namespace tr_test;
using heed::TransformerActivation;
using heed::TransformerDecoder;
using heed::TransformerDecoderLayer;
using heed::TransformerDecoderLayerArgs;
using heed::TransformerLayerOptions;

namespace {

constexpr Index kD = 4, kH = 2, kFF = 6, kB = 2, kTt = 3, kTm = 4;

// dL/dtgt, dL/dmemory and every parameter's gradient for L = sum(R .* m.forward(tgt, memory)).
template <class M>
heed::testing::GradcheckResult check_decoder(M& m, Matrix<double> tgt, Matrix<double> memory,
                                             const TransformerDecoderLayerArgs<double>& args,
                                             std::uint64_t seed = 5) {
  using heed::testing::check_gradient;
  auto fwd = [&]() -> const Matrix<double>& { return m.forward(tgt, memory, kB, args); };
  const Matrix<double> R = randn(tgt.rows(), kD, seed);
  auto loss = [&]() { return fwd().cwiseProduct(R).sum(); };
  m.zero_grad();
  fwd();
  const auto g = m.backward(R);
  const Matrix<double> dtgt = g.dtgt, dmem = g.dmemory;
  std::vector<Matrix<double>> grads;
  for (auto& p : m.parameters()) grads.push_back(*p.grad);
  heed::testing::GradcheckResult res;
  heed::testing::merge(res, check_gradient("tgt", tgt, dtgt, loss));
  heed::testing::merge(res, check_gradient("memory", memory, dmem, loss));
  std::size_t i = 0;
  for (auto& p : m.parameters())
    heed::testing::merge(res, check_gradient(p.name, *p.value, grads[i++], loss));
  return res;
}

heed::testing::GradcheckResult check_layer(TransformerLayerOptions o,
                                           const TransformerDecoderLayerArgs<double>& args,
                                           std::uint64_t seed) {
  heed::Generator gen(seed);
  o.dim_feedforward = kFF;
  o.dropout = 0.0;
  TransformerDecoderLayer<double> layer(kD, kH, o, gen);
  randomize(layer, seed + 100);
  return check_decoder(layer, randn(kB * kTt, kD, seed + 1), randn(kB * kTm, kD, seed + 2), args);
}

struct Case {
  const char* name;
  TransformerDecoderLayerArgs<double> args;
};

}  // namespace

TEST_CASE("TransformerDecoderLayer: gradient check, post/pre-norm x relu/gelu x masks") {
  BoolMatrix tpad = BoolMatrix::Zero(kB, kTt), mpad = BoolMatrix::Zero(kB, kTm);
  tpad(0, 2) = true;               // sample 0: 2 valid target steps
  mpad(1, 3) = mpad(1, 2) = true;  // sample 1: 2 valid memory steps
  BoolMatrix tmask = BoolMatrix::Zero(kTt, kTt), mmask = BoolMatrix::Zero(kTt, kTm);
  tmask(0, 1) = tmask(2, 0) = true;
  mmask(0, 1) = mmask(1, 0) = mmask(2, 3) = true;
  const Matrix<double> tbias = randn(kTt, kTt, 77), mbias = randn(kTt, kTm, 78);
  const Case cases[] = {
      {"no mask", {}},
      {"tgt_key_padding_mask", {.tgt_key_padding_mask = &tpad}},
      {"memory_key_padding_mask", {.memory_key_padding_mask = &mpad}},
      {"bool tgt_mask and memory_mask", {.tgt_mask = &tmask, .memory_mask = &mmask}},
      {"float tgt_mask and memory_mask", {.tgt_bias = &tbias, .memory_bias = &mbias}},
      {"tgt causal", {.tgt_is_causal = true}},
      {"everything",
       {.tgt_bias = &tbias, .memory_mask = &mmask, .memory_bias = &mbias,
        .tgt_key_padding_mask = &tpad, .memory_key_padding_mask = &mpad, .tgt_is_causal = true}},
  };
  std::uint64_t seed = 1;
  for (bool norm_first : {false, true})
    for (auto act : {TransformerActivation::relu, TransformerActivation::gelu})
      for (const Case& c : cases) {
        CAPTURE(norm_first);
        CAPTURE(act == TransformerActivation::gelu);
        CAPTURE(c.name);
        auto r = check_layer({.activation = act, .norm_first = norm_first}, c.args, seed++);
        INFO(r.detail);
        CHECK(r.ok);
        CHECK(r.checked > 0);
      }
}

TEST_CASE("TransformerDecoderLayer: gradient check without biases") {
  for (bool norm_first : {false, true}) {
    CAPTURE(norm_first);
    auto r = check_layer({.norm_first = norm_first, .bias = false}, {.tgt_is_causal = true}, 40);
    INFO(r.detail);
    CHECK(r.ok);
  }
}

TEST_CASE("TransformerDecoderLayer: gradient check with dropout (fixed masks)") {
  for (bool norm_first : {false, true}) {
    CAPTURE(norm_first);
    heed::Generator gen(3);
    TransformerDecoderLayer<double> layer(
        kD, kH, {.dim_feedforward = kFF, .dropout = 0.3, .norm_first = norm_first}, gen);
    randomize(layer, 50);
    layer.train();
    auto gens = layer.generators();
    REQUIRE(gens.size() == 6);  // two attentions, dropout, dropout1-3
    // A layer whose forward first resets every stream, so the finite differences see one mask.
    struct Fixed {
      TransformerDecoderLayer<double>& l;
      decltype(gens)& g;
      const Matrix<double>& forward(const Matrix<double>& t, const Matrix<double>& m, Index B,
                                    const TransformerDecoderLayerArgs<double>& a) {
        std::uint64_t s = 11;
        for (auto& [path, gen] : g) gen->seed(s++);
        return l.forward(t, m, B, a);
      }
      auto backward(const Matrix<double>& d) { return l.backward(d); }
      auto parameters() { return l.parameters(); }
      void zero_grad() { l.zero_grad(); }
    } fixed{layer, gens};
    auto r = check_decoder(fixed, randn(kB * kTt, kD, 9), randn(kB * kTm, kD, 10), {});
    INFO(r.detail);
    CHECK(r.ok);
  }
}

TEST_CASE("TransformerDecoder: gradient check, 2 layers and a final norm (dmemory summed)") {
  BoolMatrix tpad = BoolMatrix::Zero(kB, kTt), mpad = BoolMatrix::Zero(kB, kTm);
  tpad(1, 2) = true;
  mpad(0, 3) = true;
  for (bool norm_first : {false, true}) {
    CAPTURE(norm_first);
    heed::Generator gen(8);
    TransformerDecoder<double> dec(
        kD, kH, 2,
        {.dim_feedforward = kFF, .dropout = 0.0, .activation = TransformerActivation::gelu,
         .norm_first = norm_first},
        {.norm = heed::LayerNorm<double>(kD)}, gen);
    randomize(dec, 60);
    auto r = check_decoder(dec, randn(kB * kTt, kD, 10), randn(kB * kTm, kD, 11),
                           {.tgt_key_padding_mask = &tpad, .memory_key_padding_mask = &mpad,
                            .tgt_is_causal = true});
    INFO(r.detail);
    CHECK(r.ok);
    CHECK(dec.parameters().size() == 2 * 18 + 2);
  }
}
