// Finite-difference gradient checks (double) of TransformerEncoderLayer and TransformerEncoder:
// the input and every parameter, in both norm orders and both activations, under each mask.
#include "helpers.hpp"

using namespace tr_test;
using heed::TransformerActivation;
using heed::TransformerEncoder;
using heed::TransformerEncoderLayer;
using heed::TransformerEncoderLayerArgs;
using heed::TransformerEncoderLayerOptions;

namespace {

constexpr Index kD = 4, kH = 2, kFF = 6, kB = 2, kT = 3;

heed::testing::GradcheckResult check_layer(TransformerEncoderLayerOptions o,
                                           const TransformerEncoderLayerArgs<double>& args,
                                           std::uint64_t seed) {
  heed::Generator gen(seed);
  o.dim_feedforward = kFF;
  o.dropout = 0.0;
  TransformerEncoderLayer<double> layer(kD, kH, o, gen);
  randomize(layer, seed + 100);
  return check(layer, randn(kB * kT, kD, seed + 1), [&](const Matrix<double>& x) -> const Matrix<double>& {
    return layer.forward(x, kB, args);
  });
}

struct Case {
  const char* name;
  TransformerEncoderLayerArgs<double> args;
};

}  // namespace

TEST_CASE("TransformerEncoderLayer: gradient check, post/pre-norm x relu/gelu x masks") {
  BoolMatrix pad = BoolMatrix::Zero(kB, kT);
  pad(0, 2) = true;  // right padding: sample 0 has 2 valid steps
  BoolMatrix mask = BoolMatrix::Zero(kT, kT);
  mask(0, 1) = true;
  mask(2, 0) = true;
  const Matrix<double> bias = randn(kT, kT, 77);
  const Case cases[] = {
      {"no mask", {}},
      {"src_key_padding_mask", {.src_key_padding_mask = &pad}},
      {"bool src_mask", {.src_mask = &mask}},
      {"float src_mask", {.src_bias = &bias}},
      {"causal", {.is_causal = true}},
      {"causal + padding + float mask",
       {.src_bias = &bias, .src_key_padding_mask = &pad, .is_causal = true}},
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

TEST_CASE("TransformerEncoderLayer: gradient check without biases") {
  for (bool norm_first : {false, true}) {
    CAPTURE(norm_first);
    auto r = check_layer({.norm_first = norm_first, .bias = false}, {.is_causal = true}, 40);
    INFO(r.detail);
    CHECK(r.ok);
  }
}

TEST_CASE("TransformerEncoderLayer: gradient check with dropout (fixed masks)") {
  for (bool norm_first : {false, true}) {
    CAPTURE(norm_first);
    heed::Generator gen(3);
    TransformerEncoderLayer<double> layer(
        kD, kH, {.dim_feedforward = kFF, .dropout = 0.3, .norm_first = norm_first}, gen);
    randomize(layer, 50);
    layer.train();
    // Reset every stream before each forward so the finite differences see one mask.
    auto gens = layer.generators();
    REQUIRE(gens.size() == 4);
    auto fwd = [&](const Matrix<double>& x) -> const Matrix<double>& {
      std::uint64_t s = 11;
      for (auto& [path, g] : gens) g->seed(s++);
      return layer.forward(x, kB);
    };
    auto r = check(layer, randn(kB * kT, kD, 9), fwd);
    INFO(r.detail);
    CHECK(r.ok);
  }
}

TEST_CASE("TransformerEncoder: gradient check, 2 layers and a final norm") {
  BoolMatrix pad = BoolMatrix::Zero(kB, kT);
  pad(1, 2) = true;
  for (bool norm_first : {false, true}) {
    CAPTURE(norm_first);
    heed::Generator gen(8);
    TransformerEncoder<double> enc(
        kD, kH, 2,
        {.dim_feedforward = kFF, .dropout = 0.0, .activation = TransformerActivation::gelu,
         .norm_first = norm_first},
        {.norm = heed::LayerNorm<double>(kD)}, gen);
    randomize(enc, 60);
    auto r = check(enc, randn(kB * kT, kD, 10), [&](const Matrix<double>& x) -> const Matrix<double>& {
      return enc.forward(x, kB, {.src_key_padding_mask = &pad, .is_causal = true});
    });
    INFO(r.detail);
    CHECK(r.ok);
    CHECK(enc.parameters().size() == 2 * 12 + 2);
  }
}
