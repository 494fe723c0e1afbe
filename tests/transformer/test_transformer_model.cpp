// Transformer<T> (nn.Transformer): gradient check of src, tgt and every parameter, PyTorch's
// initialisation, errors. Its PyTorch reference values are in test_decoder_reference.cpp.
#include "helpers.hpp"  // first: see there

using namespace tr_test;
using heed::Transformer;
using heed::TransformerActivation;

namespace {

constexpr Index kD = 4, kH = 2, kFF = 6, kB = 2, kTs = 4, kTt = 3;

}  // namespace

TEST_CASE("Transformer: gradient check of src, tgt and every parameter, both norm orders") {
  BoolMatrix src_pad = BoolMatrix::Zero(kB, kTs), tgt_pad = BoolMatrix::Zero(kB, kTt);
  src_pad(1, 3) = true;
  tgt_pad(0, 2) = true;
  for (bool norm_first : {false, true}) {
    CAPTURE(norm_first);
    heed::Generator gen(4);
    Transformer<double> tr(kD, kH,
                           {.num_encoder_layers = 2, .num_decoder_layers = 1,
                            .dim_feedforward = kFF, .dropout = 0.0,
                            .activation = norm_first ? TransformerActivation::gelu
                                                     : TransformerActivation::relu,
                            .norm_first = norm_first},
                           gen);
    randomize(tr, 40);
    Matrix<double> src = randn(kB * kTs, kD, 1), tgt = randn(kB * kTt, kD, 2);
    const Matrix<double> R = randn(kB * kTt, kD, 3);
    const heed::TransformerArgs<double> args{.src_key_padding_mask = &src_pad,
                                             .tgt_key_padding_mask = &tgt_pad,
                                             .memory_key_padding_mask = &src_pad,
                                             .tgt_is_causal = true};
    auto loss = [&] { return tr.forward(src, tgt, kB, args).cwiseProduct(R).sum(); };
    tr.zero_grad();
    tr.forward(src, tgt, kB, args);
    const auto g = tr.backward(R);
    const Matrix<double> dsrc = g.dsrc, dtgt = g.dtgt;
    heed::testing::GradcheckResult res;
    heed::testing::merge(res, heed::testing::check_gradient("src", src, dsrc, loss));
    heed::testing::merge(res, heed::testing::check_gradient("tgt", tgt, dtgt, loss));
    std::vector<Matrix<double>> grads;
    for (auto& p : tr.parameters()) grads.push_back(*p.grad);
    std::size_t i = 0;
    for (auto& p : tr.parameters())
      heed::testing::merge(res, heed::testing::check_gradient(p.name, *p.value, grads[i++], loss));
    CHECK_MESSAGE(res.ok, res.detail);
  }
}

TEST_CASE("Transformer: PyTorch's initialisation (xavier on every matrix, norms and biases kept)") {
  heed::Generator gen(8);
  const Index d = 16, ff = 48;
  Transformer<double> tr(d, 4, {.num_encoder_layers = 2, .num_decoder_layers = 2,
                                .dim_feedforward = ff}, gen);
  CHECK(tr.name() == "Transformer");
  CHECK(tr.d_model() == d);
  CHECK(tr.nhead() == 4);
  int matrices = 0;
  for (auto& p : tr.parameters()) {
    CAPTURE(p.name);
    if (p.name.find("norm") != std::string::npos) {
      // LayerNorm: weight 1, bias 0
      CHECK(p.value->isConstant(p.name.ends_with("weight") ? 1.0 : 0.0));
    } else if (p.name.ends_with("bias")) {
      if (p.name.find("linear") != std::string::npos) {  // nn.Linear's U(+-1/sqrt(fan_in))
        const double in = p.name.find("linear1") != std::string::npos ? double(d) : double(ff);
        CHECK(p.value->cwiseAbs().maxCoeff() <= 1 / std::sqrt(in));
        CHECK_FALSE(p.value->isZero());
      } else {
        CHECK(p.value->isZero());  // the attention projections' biases start at zero
      }
    } else {
      ++matrices;
      // xavier_uniform_: U(+-sqrt(6 / (fan_in + fan_out))) with the PyTorch shape (out, in)
      const double bound = std::sqrt(6.0 / double(p.value->rows() + p.value->cols()));
      CHECK(p.value->cwiseAbs().maxCoeff() <= bound);
      CHECK(p.value->cwiseAbs().maxCoeff() > 0.8 * bound);
    }
  }
  CHECK(matrices == 2 * 4 + 2 * 6);  // encoder: in_proj, out_proj, linear1, linear2; decoder: 6
  // Redrawn per parameter: the copied layers no longer share weights.
  auto& enc = tr.encoder();
  CHECK(enc.layer(0).linear1().parameters()[0].value->isApprox(
            *enc.layer(1).linear1().parameters()[0].value) == false);
}

TEST_CASE("Transformer: errors name the module and the shapes") {
  Transformer<double> tr(kD, kH, {.num_encoder_layers = 1, .num_decoder_layers = 1,
                                  .dim_feedforward = kFF});
  CHECK(error_of<heed::ValueError>([] {
          Transformer<double>(kD, kH, {.num_encoder_layers = 0});
        }) == "Transformer: num_encoder_layers and num_decoder_layers must be positive, got 0 and 6");
  CHECK(error_of<heed::ShapeError>([&] {
          tr.forward(randn(kB * kTs, kD, 1), randn(kB * kTt, kD + 1, 2), kB);
        }).starts_with("Transformer: tgt expected"));
  BoolMatrix bad(kB, kTt);  // memory padding must be (B, Ts)
  bad.setZero();
  CHECK(error_of<heed::ShapeError>([&] {
          tr.forward(randn(kB * kTs, kD, 1), randn(kB * kTt, kD, 2), kB,
                     {.memory_key_padding_mask = &bad});
        }).starts_with("Transformer: memory_key_padding_mask expected (2, 4)"));
  CHECK_THROWS_AS(tr.backward(randn(kB * kTt, kD, 3)), heed::Error);  // no forward yet
}

TEST_CASE("Transformer compiles and runs in float") {
  Transformer<float> tr(kD, kH, {.num_encoder_layers = 1, .num_decoder_layers = 1,
                                 .dim_feedforward = kFF, .dropout = 0.0});
  const Matrix<float> y = tr.forward(randn<float>(kB * kTs, kD, 1), randn<float>(kB * kTt, kD, 2), kB,
                                     {.tgt_is_causal = true});
  CHECK(y.rows() == kB * kTt);
  CHECK(y.allFinite());
  const auto g = tr.backward(Matrix<float>::Ones(kB * kTt, kD));
  CHECK(g.dsrc.rows() == kB * kTs);
  CHECK(g.dtgt.rows() == kB * kTt);
}
