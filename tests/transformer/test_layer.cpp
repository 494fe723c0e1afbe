// TransformerEncoderLayer / TransformerEncoder behaviour other than gradients: float and
// double, errors, dropout in train and eval mode, generators, copies, requires_input_grad.
#include "helpers.hpp"  // first: see there

#include <heed/core/summary.hpp>
#include <string>

using namespace tr_test;
using heed::TransformerActivation;
using heed::TransformerEncoder;
using heed::TransformerEncoderLayer;
using heed::TransformerEncoderLayerOptions;

namespace {

constexpr Index kD = 8, kH = 2, kFF = 16, kB = 3, kT = 5;


}  // namespace

TEST_CASE_TEMPLATE("TransformerEncoderLayer: float agrees with double, forward and backward", T,
                   float, double) {
  BoolMatrix pad = BoolMatrix::Zero(kB, kT);
  pad(1, 4) = pad(1, 3) = true;
  for (bool norm_first : {false, true})
    for (auto act : {TransformerActivation::relu, TransformerActivation::gelu}) {
      CAPTURE(norm_first);
      const TransformerEncoderLayerOptions o{
          .dim_feedforward = kFF, .dropout = 0.0, .activation = act, .norm_first = norm_first};
      heed::Generator gen(4);
      TransformerEncoderLayer<double> ref(kD, kH, o, gen);
      randomize(ref, 30);
      TransformerEncoderLayer<T> layer(kD, kH, o);
      copy_params(layer, ref);
      const Matrix<double> x = randn(kB * kT, kD, 3), dy = randn(kB * kT, kD, 4);
      const Matrix<double> y_ref = ref.forward(x, kB, {.src_key_padding_mask = &pad, .is_causal = true});
      const Matrix<double> dx_ref = ref.backward(dy);
      const Matrix<T> y = layer.forward(x.cast<T>(), kB, {.src_key_padding_mask = &pad, .is_causal = true});
      const Matrix<T> dx = layer.backward(dy.cast<T>());
      const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-13;
      CHECK(rel_err<double>(y.template cast<double>(), y_ref) < tol);
      CHECK(rel_err<double>(dx.template cast<double>(), dx_ref) < tol);
      auto pl = layer.parameters();
      auto pr = ref.parameters();
      for (std::size_t i = 0; i < pl.size(); ++i) {
        CAPTURE(pl[i].name);
        CHECK(rel_err<double>(pl[i].grad->template cast<double>(), *pr[i].grad) < 10 * tol);
      }
    }
}

TEST_CASE_TEMPLATE("TransformerEncoder: float compiles and agrees with double", T, float, double) {
  heed::Generator gen(5);
  TransformerEncoder<double> ref(kD, kH, 2, {.dim_feedforward = kFF, .dropout = 0.0},
                                 {.norm = heed::LayerNorm<double>(kD)}, gen);
  TransformerEncoder<T> enc(kD, kH, 2, {.dim_feedforward = kFF, .dropout = 0.0},
                            {.norm = heed::LayerNorm<T>(kD)});
  copy_params(enc, ref);
  const Matrix<double> x = randn(kB * kT, kD, 6), dy = randn(kB * kT, kD, 7);
  const Matrix<double> y_ref = ref.forward(x, kB, {.is_causal = true});
  const Matrix<double> dx_ref = ref.backward(dy);
  const Matrix<T> y = enc.forward(x.cast<T>(), kB, {.is_causal = true});
  const Matrix<T> dx = enc.backward(dy.cast<T>());
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-13;
  CHECK(rel_err<double>(y.template cast<double>(), y_ref) < tol);
  CHECK(rel_err<double>(dx.template cast<double>(), dx_ref) < tol);
}

TEST_CASE("TransformerEncoderLayer: errors name the module and the shapes") {
  using heed::ShapeError;
  using heed::ValueError;
  CHECK(error_of<ValueError>([] { TransformerEncoderLayer<double>(6, 4); }) ==
        "TransformerEncoderLayer: d_model 6 not divisible by nhead 4");
  CHECK(error_of<ValueError>([] { TransformerEncoderLayer<double>(0, 1); }).find(
            "TransformerEncoderLayer: d_model and nhead must be positive") == 0);
  CHECK(error_of<ValueError>([] { TransformerEncoderLayer<double>(4, 2, {.dim_feedforward = 0}); })
            .find("dim_feedforward must be positive") != std::string::npos);
  CHECK(error_of<ValueError>([] { TransformerEncoderLayer<double>(4, 2, {.dropout = 1.0}); })
            .find("dropout must be in [0, 1)") != std::string::npos);
  CHECK(error_of<ValueError>([] { TransformerEncoderLayer<double>(4, 2, {.layer_norm_eps = 0}); })
            .find("layer_norm_eps must be positive") != std::string::npos);

  TransformerEncoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF});
  CHECK(error_of<ValueError>([&] { layer.backward(Matrix<double>::Zero(kB * kT, kD)); }) ==
        "TransformerEncoderLayer: backward called before forward");
  const Matrix<double> x = randn(kB * kT, kD, 1);
  CHECK(error_of<ShapeError>([&] { layer.forward(randn(kB * kT, kD + 1, 1), kB); }) ==
        "TransformerEncoderLayer: src expected (*, 8), got (15, 9)");
  CHECK(error_of<ShapeError>([&] { layer.forward(x, 4); }) ==
        "TransformerEncoderLayer: src rows 15 not a positive multiple of batch size 4");
  CHECK(error_of<ValueError>([&] { layer.forward(x, 0); }) ==
        "TransformerEncoderLayer: batch size must be positive, got 0");
  const BoolMatrix bad_mask = BoolMatrix::Zero(kT, kT + 1);
  CHECK(error_of<ShapeError>([&] { layer.forward(x, kB, {.src_mask = &bad_mask}); }) ==
        "TransformerEncoderLayer: src_mask expected (5, 5), got (5, 6)");
  const Matrix<double> bad_bias = Matrix<double>::Zero(kT - 1, kT);
  CHECK(error_of<ShapeError>([&] { layer.forward(x, kB, {.src_bias = &bad_bias}); }) ==
        "TransformerEncoderLayer: src_bias expected (5, 5), got (4, 5)");
  const BoolMatrix bad_pad = BoolMatrix::Zero(kT, kB);
  CHECK(error_of<ShapeError>([&] { layer.forward(x, kB, {.src_key_padding_mask = &bad_pad}); }) ==
        "TransformerEncoderLayer: src_key_padding_mask expected (3, 5), got (5, 3)");
  layer.forward(x, kB);
  CHECK(error_of<ShapeError>([&] { layer.backward(Matrix<double>::Zero(kB * kT, kD - 1)); }) ==
        "TransformerEncoderLayer: gradient expected (15, 8), got (15, 7)");
}

TEST_CASE("TransformerEncoder: errors name the module and the shapes") {
  using heed::ShapeError;
  using heed::ValueError;
  TransformerEncoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF});
  CHECK(error_of<ValueError>([&] { TransformerEncoder<double>(layer, 0); }) ==
        "TransformerEncoder: num_layers must be positive, got 0");
  CHECK(error_of<ShapeError>([&] {
          TransformerEncoder<double>(layer, 2, {.norm = heed::LayerNorm<double>(kD + 1)});
        }) == "TransformerEncoder: norm expected LayerNorm(8), got LayerNorm(9)");
  CHECK(error_of<ValueError>([] { TransformerEncoder<double>(6, 4, 2); }) ==
        "TransformerEncoderLayer: d_model 6 not divisible by nhead 4");
  TransformerEncoder<double> enc(layer, 2);
  CHECK(error_of<ValueError>([&] { enc.backward(Matrix<double>::Zero(kB * kT, kD)); }) ==
        "TransformerEncoder: backward called before forward");
  CHECK(error_of<ShapeError>([&] { enc.forward(randn(kB * kT, kD - 1, 1), kB); }) ==
        "TransformerEncoder: src expected (*, 8), got (15, 7)");
  const BoolMatrix bad_pad = BoolMatrix::Zero(kB + 1, kT);
  CHECK(error_of<ShapeError>([&] {
          enc.forward(randn(kB * kT, kD, 1), kB, {.src_key_padding_mask = &bad_pad});
        }) == "TransformerEncoder: src_key_padding_mask expected (3, 5), got (4, 5)");
  enc.forward(randn(kB * kT, kD, 1), kB);
  CHECK(error_of<ShapeError>([&] { enc.backward(Matrix<double>::Zero(kB * kT - 1, kD)); }) ==
        "TransformerEncoder: gradient expected (15, 8), got (14, 8)");
}

TEST_CASE("TransformerEncoderLayer: dropout is active in train mode only") {
  heed::Generator gen(9);
  TransformerEncoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF, .dropout = 0.5}, gen);
  TransformerEncoderLayer<double> no_drop(kD, kH, {.dim_feedforward = kFF, .dropout = 0.0});
  copy_params(no_drop, layer);
  const Matrix<double> x = randn(kB * kT, kD, 2);
  layer.eval();
  const Matrix<double> e1 = layer.forward(x, kB);
  const Matrix<double> e2 = layer.forward(x, kB);
  CHECK(e1 == e2);                       // eval: deterministic
  CHECK(e1 == no_drop.forward(x, kB));   // ... and dropout is the identity
  CHECK(layer.self_attn().used_fused());  // no active dropout: the fused kernel
  layer.train();
  CHECK(layer.dropout().training());     // train() reaches every submodule
  CHECK(layer.self_attn().training());
  const Matrix<double> t1 = layer.forward(x, kB);
  CHECK_FALSE(layer.self_attn().used_fused());  // attention dropout needs the plain path
  const Matrix<double> t2 = layer.forward(x, kB);
  CHECK(rel_err<double>(t1, e1) > 1e-3);  // masks applied
  CHECK(rel_err<double>(t1, t2) > 1e-3);  // and fresh masks per call
  // Restoring every stream replays the same masks (what a Checkpoint relies on).
  auto reseed = [&] {
    std::uint64_t s = 100;
    for (auto& [path, g] : layer.generators()) g->seed(s++);
  };
  reseed();
  const Matrix<double> r1 = layer.forward(x, kB);
  reseed();
  CHECK(layer.forward(x, kB) == r1);
}

TEST_CASE("TransformerEncoderLayer: dropout streams are registered as generators") {
  TransformerEncoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF, .dropout = 0.1});
  std::vector<std::string> names;
  for (auto& [path, g] : layer.generators()) names.push_back(path);
  CHECK(names == std::vector<std::string>{"self_attn", "dropout", "dropout1", "dropout2"});
  // Without dropout MultiheadAttention keeps no stream; the Dropout modules still have one
  // (as PyTorch still has the modules).
  TransformerEncoderLayer<double> none(kD, kH, {.dim_feedforward = kFF, .dropout = 0.0});
  CHECK(none.generators().size() == 3);

  // The encoder's copies get their own streams: layers do not drop the same units.
  TransformerEncoder<double> enc(layer, 3);
  std::vector<std::string> enc_names;
  for (auto& [path, g] : enc.generators()) enc_names.push_back(path);
  CHECK(enc_names.size() == 12);
  CHECK(enc_names[0] == "layers.0.self_attn");
  CHECK(enc_names[11] == "layers.2.dropout2");
  const std::uint64_t a = heed::Generator(enc.layer(0).dropout().generator()).bits();
  const std::uint64_t b = heed::Generator(enc.layer(1).dropout().generator()).bits();
  const std::uint64_t c = heed::Generator(enc.layer(2).dropout().generator()).bits();
  CHECK(a == heed::Generator(layer.dropout().generator()).bits());  // layer 0 keeps the prototype's
  CHECK(a != b);
  CHECK(b != c);
}

TEST_CASE("TransformerEncoder: copies share initial weights, fresh layers do not") {
  heed::Generator gen(12);
  TransformerEncoderLayer<double> proto(kD, kH, {.dim_feedforward = kFF}, gen);
  TransformerEncoder<double> copies(proto, 2, {.norm = heed::LayerNorm<double>(kD)});
  const auto sd = copies.state_dict();
  for (const auto& entry : proto.state_dict()) {  // not [key, value]: clang 14 cannot CAPTURE a binding
    const std::string& key = entry.first;
    CAPTURE(key);
    CHECK(sd.at("layers.0." + key) == entry.second);
    CHECK(sd.at("layers.1." + key) == entry.second);
  }
  TransformerEncoder<double> fresh(kD, kH, 2, {.dim_feedforward = kFF}, {}, gen);
  const auto fd = fresh.state_dict();
  CHECK(fd.at("layers.0.linear1.weight") != fd.at("layers.1.linear1.weight"));
  CHECK(fd.at("layers.0.self_attn.in_proj_weight") != fd.at("layers.1.self_attn.in_proj_weight"));
  CHECK(fresh.norm() == nullptr);
  CHECK(fresh.num_layers() == 2);
  // PyTorch's parameter count for d_model 8, dim_feedforward 16: 8*8*4 + 8*4 (attention),
  // 16*8 + 16 + 8*16 + 8 (feed-forward), 4*8 (norms) = 600 per layer.
  CHECK(proto.num_parameters() == 600);
  CHECK(copies.num_parameters() == 2 * 600 + 16);
}

TEST_CASE("TransformerEncoderLayer: bias=false drops the Linear and attention biases") {
  TransformerEncoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF, .bias = false});
  CHECK(layer.state_dict().keys() ==
        std::vector<std::string>{"self_attn.in_proj_weight", "self_attn.out_proj.weight",
                                 "linear1.weight", "linear2.weight", "norm1.weight",
                                 "norm1.bias", "norm2.weight", "norm2.bias"});
}

TEST_CASE("requires_input_grad(false): no input gradient, the same parameter gradients") {
  BoolMatrix pad = BoolMatrix::Zero(kB, kT);
  pad(0, 4) = true;
  const Matrix<double> x = randn(kB * kT, kD, 1), dy = randn(kB * kT, kD, 2);
  for (bool norm_first : {false, true}) {
    CAPTURE(norm_first);
    heed::Generator gen(3);
    TransformerEncoder<double> enc(kD, kH, 2,
                                   {.dim_feedforward = kFF, .dropout = 0.0, .norm_first = norm_first},
                                   {.norm = heed::LayerNorm<double>(kD)}, gen);
    enc.forward(x, kB, {.src_key_padding_mask = &pad});
    CHECK(enc.backward(dy).rows() == kB * kT);
    std::vector<Matrix<double>> want;
    for (auto& p : enc.parameters()) want.push_back(*p.grad);
    enc.zero_grad();
    enc.requires_input_grad(false);
    enc.forward(x, kB, {.src_key_padding_mask = &pad});
    const Matrix<double>& dx = enc.backward(dy);
    CHECK(dx.rows() == 0);
    CHECK(dx.cols() == kD);
    std::size_t i = 0;
    for (auto& p : enc.parameters()) {
      CAPTURE(p.name);
      CHECK(rel_err<double>(*p.grad, want[i++]) < 1e-14);
    }
    // Layers after the first still pass their input gradient on.
    CHECK(enc.layer(1).requires_input_grad());
  }
}

TEST_CASE("TransformerEncoderLayer: buffers are reused across calls of one shape") {
  TransformerEncoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF});
  const Matrix<double> x = randn(kB * kT, kD, 1), dy = randn(kB * kT, kD, 2);
  const double* y = layer.forward(x, kB).data();
  const double* dx = layer.backward(dy).data();
  CHECK(layer.forward(x, kB).data() == y);
  CHECK(layer.backward(dy).data() == dx);
}

TEST_CASE("No Eigen allocation in a step of fixed shapes after the first") {
  BoolMatrix pad = BoolMatrix::Zero(kB, kT);
  pad(0, 4) = true;
  const Matrix<double> bias = randn(kT, kT, 3);
  const Matrix<double> x = randn(kB * kT, kD, 1), dy = randn(kB * kT, kD, 2);
  for (bool norm_first : {false, true})
    for (bool training : {false, true}) {  // eval: fused attention; train: dropout, plain path
      CAPTURE(norm_first);
      CAPTURE(training);
      TransformerEncoder<double> enc(
          kD, kH, 2,
          {.dim_feedforward = kFF, .dropout = 0.1, .activation = TransformerActivation::gelu,
           .norm_first = norm_first},
          {.norm = heed::LayerNorm<double>(kD)});
      enc.train(training);
      const heed::TransformerEncoderArgs<double> args{
          .src_bias = &bias, .src_key_padding_mask = &pad, .is_causal = true};
      enc.forward(x, kB, args);
      enc.backward(dy);
      NoEigenMalloc guard;
      for (int step = 0; step < 2; ++step) {
        CHECK_NOTHROW(enc.forward(x, kB, args));
        CHECK_NOTHROW(enc.backward(dy));
      }
    }
}

TEST_CASE("TransformerEncoderLayer: a copy has no forward to differentiate") {
  TransformerEncoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF});
  BoolMatrix pad = BoolMatrix::Zero(kB, kT);
  layer.forward(randn(kB * kT, kD, 1), kB, {.src_key_padding_mask = &pad});
  TransformerEncoderLayer<double> copy = layer;
  CHECK(error_of<heed::ValueError>([&] { copy.backward(Matrix<double>::Zero(kB * kT, kD)); }) ==
        "TransformerEncoderLayer: backward called before forward");
  CHECK(copy.state_dict().keys() == layer.state_dict().keys());
  CHECK(copy.state_dict().at("linear1.weight") == layer.state_dict().at("linear1.weight"));
  CHECK_NOTHROW(layer.backward(Matrix<double>::Zero(kB * kT, kD)));  // the original still can
}

TEST_CASE("TransformerEncoderLayer: masks are copied, they need not outlive forward") {
  TransformerEncoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF, .dropout = 0.0});
  const Matrix<double> x = randn(kB * kT, kD, 1), dy = randn(kB * kT, kD, 2);
  BoolMatrix pad = BoolMatrix::Zero(kB, kT);
  pad(2, 4) = true;
  layer.forward(x, kB, {.src_key_padding_mask = &pad});
  const Matrix<double> want = layer.backward(dy);
  {
    BoolMatrix tmp = pad;
    layer.forward(x, kB, {.src_key_padding_mask = &tmp});
    tmp.setOnes();  // changed (and then gone) before backward
  }
  CHECK(layer.backward(dy) == want);
}

TEST_CASE("summary lists the submodules in PyTorch's order") {
  TransformerEncoderLayer<float> layer(kD, kH, {.dim_feedforward = kFF});
  TransformerEncoder<float> enc(layer, 2, {.norm = heed::LayerNorm<float>(kD)});
  const std::string s = heed::summary(enc);
  CHECK(s.find("TransformerEncoder(num_layers=2, norm=LayerNorm)") == 0);
  CHECK(s.find("(0): TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, "
               "dropout=0.1, activation=relu, layer_norm_eps=1e-05, norm_first=false)") !=
        std::string::npos);
  const auto at = [&](const char* what) { return s.find(what); };
  CHECK(at("(self_attn)") < at("(linear1)"));
  CHECK(at("(linear1)") < at("(dropout)"));
  CHECK(at("(linear2)") < at("(norm1)"));
  CHECK(at("(dropout1)") < at("(dropout2)"));
  CHECK(at("(norm): LayerNorm") != std::string::npos);
  CHECK(s.find("Total params: 1,216") != std::string::npos);
}
