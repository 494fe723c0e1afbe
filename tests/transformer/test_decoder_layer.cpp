// TransformerDecoderLayer / TransformerDecoder behaviour other than gradients: float and
// double, errors, dropout streams, copies, requires_input_grad / requires_memory_grad, buffer
// reuse and no allocation after the first step, masks copied, summary.
#include "helpers.hpp"  // first: see there

#include <heed/core/summary.hpp>
#include <string>

using namespace tr_test;
using heed::TransformerActivation;
using heed::TransformerDecoder;
using heed::TransformerDecoderLayer;
using heed::TransformerDecoderLayerArgs;
using heed::TransformerLayerOptions;

namespace {

constexpr Index kD = 8, kH = 2, kFF = 16, kB = 3, kTt = 5, kTm = 4;


struct Pads {
  BoolMatrix tgt = BoolMatrix::Zero(kB, kTt), mem = BoolMatrix::Zero(kB, kTm);
  Pads() {
    tgt(1, 4) = tgt(1, 3) = true;
    mem(2, 3) = true;
  }
  TransformerDecoderLayerArgs<double> args(bool causal = true) const {
    return {.tgt_key_padding_mask = &tgt, .memory_key_padding_mask = &mem, .tgt_is_causal = causal};
  }
};

}  // namespace

TEST_CASE_TEMPLATE("TransformerDecoderLayer: float agrees with double, forward and backward", T,
                   float, double) {
  const Pads pads;
  // The float layer takes the masks as Matrix<T> args (only the float bias is typed).
  const TransformerDecoderLayerArgs<T> targs{.tgt_key_padding_mask = &pads.tgt,
                                             .memory_key_padding_mask = &pads.mem,
                                             .tgt_is_causal = true};
  for (bool norm_first : {false, true})
    for (auto act : {TransformerActivation::relu, TransformerActivation::gelu}) {
      CAPTURE(norm_first);
      const TransformerLayerOptions o{
          .dim_feedforward = kFF, .dropout = 0.0, .activation = act, .norm_first = norm_first};
      heed::Generator gen(4);
      TransformerDecoderLayer<double> ref(kD, kH, o, gen);
      randomize(ref, 30);
      TransformerDecoderLayer<T> layer(kD, kH, o);
      copy_params(layer, ref);
      const Matrix<double> x = randn(kB * kTt, kD, 3), m = randn(kB * kTm, kD, 5),
                           dy = randn(kB * kTt, kD, 4);
      const Matrix<double> y_ref = ref.forward(x, m, kB, pads.args());
      const auto g_ref = ref.backward(dy);
      const Matrix<T> y = layer.forward(x.cast<T>(), m.cast<T>(), kB, targs);
      const auto g = layer.backward(dy.cast<T>());
      const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-13;
      CHECK(rel_err<double>(y.template cast<double>(), y_ref) < tol);
      CHECK(rel_err<double>(g.dtgt.template cast<double>(), g_ref.dtgt) < tol);
      CHECK(rel_err<double>(g.dmemory.template cast<double>(), g_ref.dmemory) < tol);
      auto pl = layer.parameters();
      auto pr = ref.parameters();
      for (std::size_t i = 0; i < pl.size(); ++i) {
        CAPTURE(pl[i].name);
        CHECK(rel_err<double>(pl[i].grad->template cast<double>(), *pr[i].grad) < 10 * tol);
      }
    }
}

TEST_CASE_TEMPLATE("TransformerDecoder: float compiles and agrees with double", T, float, double) {
  heed::Generator gen(5);
  TransformerDecoder<double> ref(kD, kH, 2, {.dim_feedforward = kFF, .dropout = 0.0},
                                 {.norm = heed::LayerNorm<double>(kD)}, gen);
  TransformerDecoder<T> dec(kD, kH, 2, {.dim_feedforward = kFF, .dropout = 0.0},
                            {.norm = heed::LayerNorm<T>(kD)});
  copy_params(dec, ref);
  const Matrix<double> x = randn(kB * kTt, kD, 6), m = randn(kB * kTm, kD, 8),
                       dy = randn(kB * kTt, kD, 7);
  const Matrix<double> y_ref = ref.forward(x, m, kB, {.tgt_is_causal = true});
  const auto g_ref = ref.backward(dy);
  const Matrix<T> y = dec.forward(x.cast<T>(), m.cast<T>(), kB, {.tgt_is_causal = true});
  const auto g = dec.backward(dy.cast<T>());
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-13;
  CHECK(rel_err<double>(y.template cast<double>(), y_ref) < tol);
  CHECK(rel_err<double>(g.dtgt.template cast<double>(), g_ref.dtgt) < tol);
  CHECK(rel_err<double>(g.dmemory.template cast<double>(), g_ref.dmemory) < tol);
}

TEST_CASE("TransformerDecoderLayer: errors name the module and the shapes") {
  using heed::ShapeError;
  using heed::ValueError;
  CHECK(error_of<ValueError>([] { TransformerDecoderLayer<double>(6, 4); }) ==
        "TransformerDecoderLayer: d_model 6 not divisible by nhead 4");
  CHECK(error_of<ValueError>([] { TransformerDecoderLayer<double>(0, 1); }).find(
            "TransformerDecoderLayer: d_model and nhead must be positive") == 0);
  CHECK(error_of<ValueError>([] { TransformerDecoderLayer<double>(4, 2, {.dim_feedforward = 0}); }) ==
        "TransformerDecoderLayer: dim_feedforward must be positive, got 0");
  CHECK(error_of<ValueError>([] { TransformerDecoderLayer<double>(4, 2, {.dropout = 1.0}); }) ==
        "TransformerDecoderLayer: dropout must be in [0, 1), got 1");
  CHECK(error_of<ValueError>([] { TransformerDecoderLayer<double>(4, 2, {.layer_norm_eps = 0}); }) ==
        "TransformerDecoderLayer: layer_norm_eps must be positive, got 0");

  TransformerDecoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF});
  CHECK(error_of<ValueError>([&] { layer.backward(Matrix<double>::Zero(kB * kTt, kD)); }) ==
        "TransformerDecoderLayer: backward called before forward");
  const Matrix<double> x = randn(kB * kTt, kD, 1), m = randn(kB * kTm, kD, 2);
  CHECK(error_of<ShapeError>([&] { layer.forward(randn(kB * kTt, kD + 1, 1), m, kB); }) ==
        "TransformerDecoderLayer: tgt expected (*, 8), got (15, 9)");
  CHECK(error_of<ShapeError>([&] { layer.forward(x, randn(kB * kTm, kD - 1, 1), kB); }) ==
        "TransformerDecoderLayer: memory expected (*, 8), got (12, 7)");
  CHECK(error_of<ShapeError>([&] { layer.forward(x, randn(kB * kTm + 1, kD, 1), kB); }) ==
        "TransformerDecoderLayer: memory rows 13 not a positive multiple of batch size 3");
  CHECK(error_of<ShapeError>([&] { layer.forward(x, m, 4); }) ==
        "TransformerDecoderLayer: tgt rows 15 not a positive multiple of batch size 4");
  CHECK(error_of<ValueError>([&] { layer.forward(x, m, 0); }) ==
        "TransformerDecoderLayer: batch size must be positive, got 0");
  const BoolMatrix sq = BoolMatrix::Zero(kTt, kTt), wide = BoolMatrix::Zero(kTt, kTt + 1);
  const Matrix<double> fsq = Matrix<double>::Zero(kTt, kTt);
  CHECK(error_of<ShapeError>([&] { layer.forward(x, m, kB, {.tgt_mask = &wide}); }) ==
        "TransformerDecoderLayer: tgt_mask expected (5, 5), got (5, 6)");
  const Matrix<double> bad_bias = Matrix<double>::Zero(kTt - 1, kTt);
  CHECK(error_of<ShapeError>([&] { layer.forward(x, m, kB, {.tgt_bias = &bad_bias}); }) ==
        "TransformerDecoderLayer: tgt_bias expected (5, 5), got (4, 5)");
  CHECK(error_of<ShapeError>([&] { layer.forward(x, m, kB, {.memory_mask = &sq}); }) ==
        "TransformerDecoderLayer: memory_mask expected (5, 4), got (5, 5)");
  CHECK(error_of<ShapeError>([&] { layer.forward(x, m, kB, {.memory_bias = &fsq}); }) ==
        "TransformerDecoderLayer: memory_bias expected (5, 4), got (5, 5)");
  const BoolMatrix tpad_t = BoolMatrix::Zero(kTt, kB), mpad_t = BoolMatrix::Zero(kB, kTt);
  CHECK(error_of<ShapeError>([&] { layer.forward(x, m, kB, {.tgt_key_padding_mask = &tpad_t}); }) ==
        "TransformerDecoderLayer: tgt_key_padding_mask expected (3, 5), got (5, 3)");
  CHECK(error_of<ShapeError>([&] {
          layer.forward(x, m, kB, {.memory_key_padding_mask = &mpad_t});
        }) == "TransformerDecoderLayer: memory_key_padding_mask expected (3, 4), got (3, 5)");
  layer.forward(x, m, kB);
  CHECK(error_of<ShapeError>([&] { layer.backward(Matrix<double>::Zero(kB * kTt, kD - 1)); }) ==
        "TransformerDecoderLayer: gradient expected (15, 8), got (15, 7)");
}

TEST_CASE("TransformerDecoder: errors name the module and the shapes") {
  using heed::ShapeError;
  using heed::ValueError;
  TransformerDecoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF});
  CHECK(error_of<ValueError>([&] { TransformerDecoder<double>(layer, 0); }) ==
        "TransformerDecoder: num_layers must be positive, got 0");
  CHECK(error_of<ShapeError>([&] {
          TransformerDecoder<double>(layer, 2, {.norm = heed::LayerNorm<double>(kD + 1)});
        }) == "TransformerDecoder: norm expected LayerNorm(8), got LayerNorm(9)");
  CHECK(error_of<ValueError>([] { TransformerDecoder<double>(6, 4, 2); }) ==
        "TransformerDecoderLayer: d_model 6 not divisible by nhead 4");
  TransformerDecoder<double> dec(layer, 2);
  const Matrix<double> x = randn(kB * kTt, kD, 1), m = randn(kB * kTm, kD, 2);
  CHECK(error_of<ValueError>([&] { dec.backward(Matrix<double>::Zero(kB * kTt, kD)); }) ==
        "TransformerDecoder: backward called before forward");
  CHECK(error_of<ShapeError>([&] { dec.forward(x, randn(kB * kTm, kD + 1, 1), kB); }) ==
        "TransformerDecoder: memory expected (*, 8), got (12, 9)");
  const BoolMatrix bad_pad = BoolMatrix::Zero(kB + 1, kTm);
  CHECK(error_of<ShapeError>([&] { dec.forward(x, m, kB, {.memory_key_padding_mask = &bad_pad}); }) ==
        "TransformerDecoder: memory_key_padding_mask expected (3, 4), got (4, 4)");
  dec.forward(x, m, kB);
  CHECK(error_of<ShapeError>([&] { dec.backward(Matrix<double>::Zero(kB * kTt - 1, kD)); }) ==
        "TransformerDecoder: gradient expected (15, 8), got (14, 8)");
}

TEST_CASE("TransformerDecoderLayer: dropout in train mode only; streams are generators") {
  heed::Generator gen(9);
  TransformerDecoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF, .dropout = 0.5}, gen);
  TransformerDecoderLayer<double> no_drop(kD, kH, {.dim_feedforward = kFF, .dropout = 0.0});
  copy_params(no_drop, layer);
  const Matrix<double> x = randn(kB * kTt, kD, 2), m = randn(kB * kTm, kD, 3);
  layer.eval();
  const Matrix<double> e1 = layer.forward(x, m, kB);
  CHECK(e1 == layer.forward(x, m, kB));
  CHECK(e1 == no_drop.forward(x, m, kB));
  layer.train();
  CHECK(layer.dropout3().training());
  CHECK(layer.multihead_attn().training());
  const Matrix<double> t1 = layer.forward(x, m, kB);
  CHECK(rel_err<double>(t1, e1) > 1e-3);
  CHECK(rel_err<double>(t1, layer.forward(x, m, kB)) > 1e-3);

  std::vector<std::string> names;
  for (auto& [path, g] : layer.generators()) names.push_back(path);
  CHECK(names == std::vector<std::string>{"self_attn", "multihead_attn", "dropout", "dropout1",
                                          "dropout2", "dropout3"});
  // The decoder's copies get their own streams.
  TransformerDecoder<double> dec(layer, 2);
  CHECK(dec.generators().size() == 12);
  CHECK(heed::Generator(dec.layer(0).dropout3().generator()).bits() ==
        heed::Generator(layer.dropout3().generator()).bits());
  CHECK(heed::Generator(dec.layer(0).dropout3().generator()).bits() !=
        heed::Generator(dec.layer(1).dropout3().generator()).bits());
}

TEST_CASE("TransformerDecoder: copies share initial weights, fresh layers do not") {
  heed::Generator gen(12);
  TransformerDecoderLayer<double> proto(kD, kH, {.dim_feedforward = kFF}, gen);
  TransformerDecoder<double> copies(proto, 2, {.norm = heed::LayerNorm<double>(kD)});
  const auto sd = copies.state_dict();
  for (const auto& entry : proto.state_dict()) {  // not [key, value]: clang 14 cannot CAPTURE a binding
    const std::string& key = entry.first;
    CAPTURE(key);
    CHECK(sd.at("layers.0." + key) == entry.second);
    CHECK(sd.at("layers.1." + key) == entry.second);
  }
  TransformerDecoder<double> fresh(kD, kH, 2, {.dim_feedforward = kFF}, {}, gen);
  const auto fd = fresh.state_dict();
  CHECK(fd.at("layers.0.multihead_attn.in_proj_weight") !=
        fd.at("layers.1.multihead_attn.in_proj_weight"));
  CHECK(fresh.norm() == nullptr);
  // PyTorch's count for d_model 8, dim_feedforward 16: 2 * (8*8*4 + 8*4) (attentions),
  // 16*8 + 16 + 8*16 + 8 (feed-forward), 6*8 (norms) = 904 per layer (PyTorch: the same).
  CHECK(proto.num_parameters() == 904);
  CHECK(copies.num_parameters() == 2 * 904 + 16);
}

TEST_CASE("TransformerDecoderLayer: bias=false drops the Linear and attention biases") {
  TransformerDecoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF, .bias = false});
  CHECK(layer.state_dict().keys() ==
        std::vector<std::string>{"self_attn.in_proj_weight", "self_attn.out_proj.weight",
                                 "multihead_attn.in_proj_weight",
                                 "multihead_attn.out_proj.weight", "linear1.weight",
                                 "linear2.weight", "norm1.weight", "norm1.bias", "norm2.weight",
                                 "norm2.bias", "norm3.weight", "norm3.bias"});
}

TEST_CASE("requires_input_grad / requires_memory_grad(false): empty, same parameter gradients") {
  const Pads pads;
  const Matrix<double> x = randn(kB * kTt, kD, 1), m = randn(kB * kTm, kD, 3),
                       dy = randn(kB * kTt, kD, 2);
  for (bool norm_first : {false, true}) {
    CAPTURE(norm_first);
    heed::Generator gen(3);
    TransformerDecoder<double> dec(kD, kH, 2,
                                   {.dim_feedforward = kFF, .dropout = 0.0, .norm_first = norm_first},
                                   {.norm = heed::LayerNorm<double>(kD)}, gen);
    dec.forward(x, m, kB, pads.args());
    const auto g = dec.backward(dy);
    CHECK(g.dtgt.rows() == kB * kTt);
    CHECK(g.dmemory.rows() == kB * kTm);
    const Matrix<double> dtgt = g.dtgt, dmem = g.dmemory;
    std::vector<Matrix<double>> want;
    for (auto& p : dec.parameters()) want.push_back(*p.grad);
    for (auto flags : {std::pair{false, true}, std::pair{true, false}, std::pair{false, false}}) {
      const bool tgt_grad = flags.first, mem_grad = flags.second;  // clang 14: no CAPTURE of a binding
      CAPTURE(tgt_grad);
      CAPTURE(mem_grad);
      dec.zero_grad();
      dec.requires_input_grad(tgt_grad);
      dec.requires_memory_grad(mem_grad);
      dec.forward(x, m, kB, pads.args());
      const auto h = dec.backward(dy);
      if (tgt_grad) CHECK(rel_err<double>(h.dtgt, dtgt) < 1e-14);
      else CHECK((h.dtgt.rows() == 0 && h.dtgt.cols() == kD));
      if (mem_grad) CHECK(rel_err<double>(h.dmemory, dmem) < 1e-14);
      else CHECK((h.dmemory.rows() == 0 && h.dmemory.cols() == kD));
      std::size_t i = 0;
      for (auto& p : dec.parameters()) {
        CAPTURE(p.name);
        CHECK(rel_err<double>(*p.grad, want[i++]) < 1e-14);
      }
      CHECK(dec.layer(1).requires_input_grad());  // layers after the first pass dtgt on
    }
  }
}

TEST_CASE("TransformerDecoder: dmemory is the sum of the layers' dmemory") {
  heed::Generator gen(21);
  TransformerDecoder<double> dec(kD, kH, 3, {.dim_feedforward = kFF, .dropout = 0.0}, {}, gen);
  const Matrix<double> x = randn(kB * kTt, kD, 1), m = randn(kB * kTm, kD, 3),
                       dy = randn(kB * kTt, kD, 2);
  dec.forward(x, m, kB);
  const Matrix<double> dmem = dec.backward(dy).dmemory;
  // Layer by layer, by hand.
  const Matrix<double> x1 = dec.layer(0).forward(x, m, kB);
  const Matrix<double> x2 = dec.layer(1).forward(x1, m, kB);
  dec.layer(2).forward(x2, m, kB);
  const auto g2 = dec.layer(2).backward(dy);
  Matrix<double> sum = g2.dmemory;
  const auto g1 = dec.layer(1).backward(Matrix<double>(g2.dtgt));
  sum += g1.dmemory;
  sum += dec.layer(0).backward(Matrix<double>(g1.dtgt)).dmemory;
  CHECK(rel_err<double>(dmem, sum) < 1e-14);
}

TEST_CASE("TransformerDecoderLayer: buffers are reused across calls of one shape") {
  TransformerDecoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF});
  const Matrix<double> x = randn(kB * kTt, kD, 1), m = randn(kB * kTm, kD, 3),
                       dy = randn(kB * kTt, kD, 2);
  const double* y = layer.forward(x, m, kB).data();
  const auto g = layer.backward(dy);
  const double *dx = g.dtgt.data(), *dm = g.dmemory.data();
  CHECK(layer.forward(x, m, kB).data() == y);
  const auto g2 = layer.backward(dy);
  CHECK(g2.dtgt.data() == dx);
  CHECK(g2.dmemory.data() == dm);
}

TEST_CASE("TransformerDecoder: no Eigen allocation in a step of fixed shapes after the first") {
  const Pads pads;
  const Matrix<double> tb = randn(kTt, kTt, 3), mb = randn(kTt, kTm, 4);
  BoolMatrix mm = BoolMatrix::Zero(kTt, kTm);
  mm(0, 0) = true;
  const Matrix<double> x = randn(kB * kTt, kD, 1), m = randn(kB * kTm, kD, 5),
                       dy = randn(kB * kTt, kD, 2);
  for (bool norm_first : {false, true})
    for (bool training : {false, true}) {  // eval: fused attention; train: dropout, plain path
      CAPTURE(norm_first);
      CAPTURE(training);
      TransformerDecoder<double> dec(
          kD, kH, 2,
          {.dim_feedforward = kFF, .dropout = 0.1, .activation = TransformerActivation::gelu,
           .norm_first = norm_first},
          {.norm = heed::LayerNorm<double>(kD)});
      dec.train(training);
      const heed::TransformerDecoderArgs<double> args{
          .tgt_bias = &tb, .memory_mask = &mm, .memory_bias = &mb,
          .tgt_key_padding_mask = &pads.tgt, .memory_key_padding_mask = &pads.mem,
          .tgt_is_causal = true};
      dec.forward(x, m, kB, args);
      dec.backward(dy);
      NoEigenMalloc guard;
      for (int step = 0; step < 2; ++step) {
        CHECK_NOTHROW(dec.forward(x, m, kB, args));
        CHECK_NOTHROW(dec.backward(dy));
      }
    }
}

TEST_CASE("TransformerDecoderLayer: a copy has no forward; masks need not outlive forward") {
  const Pads pads;
  TransformerDecoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF, .dropout = 0.0});
  const Matrix<double> x = randn(kB * kTt, kD, 1), m = randn(kB * kTm, kD, 3),
                       dy = randn(kB * kTt, kD, 2);
  layer.forward(x, m, kB, pads.args());
  TransformerDecoderLayer<double> copy = layer;
  CHECK(error_of<heed::ValueError>([&] { copy.backward(dy); }) ==
        "TransformerDecoderLayer: backward called before forward");
  CHECK(copy.state_dict().at("multihead_attn.in_proj_weight") ==
        layer.state_dict().at("multihead_attn.in_proj_weight"));
  const auto g = layer.backward(dy);
  const Matrix<double> want_t = g.dtgt, want_m = g.dmemory;
  {
    Pads tmp = pads;
    layer.forward(x, m, kB, tmp.args());
    tmp.tgt.setOnes();  // changed (and then gone) before backward
    tmp.mem.setOnes();
  }
  const auto h = layer.backward(dy);
  CHECK(h.dtgt == want_t);
  CHECK(h.dmemory == want_m);
}

TEST_CASE("TransformerDecoder: summary lists the submodules in PyTorch's order") {
  TransformerDecoderLayer<float> layer(kD, kH, {.dim_feedforward = kFF});
  TransformerDecoder<float> dec(layer, 2, {.norm = heed::LayerNorm<float>(kD)});
  const std::string s = heed::summary(dec);
  CHECK(s.find("TransformerDecoder(num_layers=2, norm=LayerNorm)") == 0);
  CHECK(s.find("(0): TransformerDecoderLayer(d_model=8, nhead=2, dim_feedforward=16, "
               "dropout=0.1, activation=relu, layer_norm_eps=1e-05, norm_first=false)") !=
        std::string::npos);
  const auto at = [&](const char* what) { return s.find(what); };
  CHECK(at("(self_attn)") < at("(multihead_attn)"));
  CHECK(at("(multihead_attn)") < at("(linear1)"));
  CHECK(at("(norm2)") < at("(norm3)"));
  CHECK(at("(norm3)") < at("(dropout1)"));
  CHECK(at("(dropout2)") < at("(dropout3)"));
  CHECK(s.find("Total params: 1,824") != std::string::npos);
}
