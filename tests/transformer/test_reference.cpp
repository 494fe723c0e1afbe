// TransformerEncoderLayer and TransformerEncoder against numbers computed once with PyTorch
// 1.13 (reference_values.py writes reference_values.hpp; torch is not needed to run this).
// Outputs, the input gradient and every parameter gradient agree within 1e-10 (absolute, in
// double; the values are O(1)).
#include <algorithm>
#include <string>

#include "helpers.hpp"
#include "reference_values.hpp"

using namespace tr_test;
using heed::TransformerActivation;
using heed::TransformerEncoder;
using heed::TransformerEncoderLayer;

namespace {

constexpr Index kD = 4, kH = 2, kFF = 6, kB = 2, kT = 3;
constexpr double kTol = 1e-10;
double g_worst = 0;  // the largest difference seen, reported at the end

// reference_values.py's set_params.
template <class M>
void set_params(M& m) {
  int k = 0;
  for (auto& p : m.parameters()) {
    *p.value = fill(p.value->rows(), p.value->cols(), 10 + k++, 0.5);
    if (p.name.find("norm") != std::string::npos && p.name.ends_with("weight"))
      p.value->array() += 1.0;
  }
}

Matrix<double> ref(const std::vector<double>& v, Index rows, Index cols) {
  REQUIRE(static_cast<Index>(v.size()) == rows * cols);
  return Eigen::Map<const Matrix<double>>(v.data(), rows, cols);
}

double max_abs(const Matrix<double>& a, const Matrix<double>& b) {
  REQUIRE(a.rows() == b.rows());
  REQUIRE(a.cols() == b.cols());
  const double e = (a - b).cwiseAbs().maxCoeff();
  g_worst = std::max(g_worst, e);
  return e;
}

BoolMatrix padding() {
  BoolMatrix pad = BoolMatrix::Zero(kB, kT);
  pad(0, 2) = true;
  return pad;
}

// Forward and backward of m on reference_values.py's input and loss, compared with
// <name>_out, <name>_dx and <name>_dparams.
template <class M, class Fwd>
void compare(M& m, Fwd fwd, const std::vector<double>& out, const std::vector<double>& dx,
             const std::vector<double>& dparams) {
  m.zero_grad();
  const Matrix<double> y = fwd(fill(kB * kT, kD, 1));
  CHECK(max_abs(y, ref(out, kB * kT, kD)) < kTol);
  const Matrix<double> g = m.backward(fill(kB * kT, kD, 2));
  CHECK(max_abs(g, ref(dx, kB * kT, kD)) < kTol);
  std::size_t at = 0;
  for (auto& p : m.parameters()) {
    CAPTURE(p.name);
    const Index n = p.grad->size();
    REQUIRE(at + n <= dparams.size());
    const Matrix<double> want =
        Eigen::Map<const Matrix<double>>(dparams.data() + at, p.grad->rows(), p.grad->cols());
    CHECK(max_abs(*p.grad, want) < kTol);
    at += n;
  }
  CHECK(at == dparams.size());
}

// Rows of non-padded steps only (PyTorch's eval fast path differs at padded ones).
void compare_valid_rows(const Matrix<double>& y, const std::vector<double>& out,
                        const BoolMatrix& pad) {
  const Matrix<double> want = ref(out, kB * kT, kD);
  for (Index b = 0; b < kB; ++b)
    for (Index t = 0; t < kT; ++t) {
      if (pad(b, t)) continue;
      CAPTURE(b);
      CAPTURE(t);
      CHECK(max_abs(y.row(b * kT + t), want.row(b * kT + t)) < kTol);
    }
}

std::vector<std::string> keys(heed::ModuleBase<double>& m) { return m.state_dict().keys(); }

}  // namespace

TEST_CASE("TransformerEncoderLayer: matches PyTorch, train mode, post/pre-norm x relu/gelu") {
  const BoolMatrix pad = padding();
  struct Case {
    bool norm_first;
    TransformerActivation act;
    const std::vector<double>&out, &dx, &dparams;
  };
  const Case cases[] = {
      {false, TransformerActivation::relu, tr_ref::post_relu_out, tr_ref::post_relu_dx,
       tr_ref::post_relu_dparams},
      {false, TransformerActivation::gelu, tr_ref::post_gelu_out, tr_ref::post_gelu_dx,
       tr_ref::post_gelu_dparams},
      {true, TransformerActivation::relu, tr_ref::pre_relu_out, tr_ref::pre_relu_dx,
       tr_ref::pre_relu_dparams},
      {true, TransformerActivation::gelu, tr_ref::pre_gelu_out, tr_ref::pre_gelu_dx,
       tr_ref::pre_gelu_dparams},
  };
  for (const Case& c : cases) {
    CAPTURE(c.norm_first);
    CAPTURE(c.act == TransformerActivation::gelu);
    TransformerEncoderLayer<double> layer(
        kD, kH, {.dim_feedforward = kFF, .dropout = 0.0, .activation = c.act,
                 .norm_first = c.norm_first});
    set_params(layer);
    layer.train();
    // PyTorch got the causal mask as a bool src_mask; here it is the is_causal flag.
    compare(layer, [&](const Matrix<double>& x) -> const Matrix<double>& {
      return layer.forward(x, kB, {.src_key_padding_mask = &pad, .is_causal = true});
    }, c.out, c.dx, c.dparams);
    // ... and the same mask passed as a bool src_mask gives the same numbers.
    BoolMatrix causal(kT, kT);
    for (Index i = 0; i < kT; ++i)
      for (Index j = 0; j < kT; ++j) causal(i, j) = j > i;
    compare(layer, [&](const Matrix<double>& x) -> const Matrix<double>& {
      return layer.forward(x, kB, {.src_mask = &causal, .src_key_padding_mask = &pad});
    }, c.out, c.dx, c.dparams);
  }
}

TEST_CASE("TransformerEncoderLayer: matches PyTorch with a float src_mask") {
  const BoolMatrix pad = padding();
  const Matrix<double> bias = fill(kT, kT, 6);
  TransformerEncoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF, .dropout = 0.0});
  set_params(layer);
  compare(layer, [&](const Matrix<double>& x) -> const Matrix<double>& {
    return layer.forward(x, kB, {.src_bias = &bias, .src_key_padding_mask = &pad});
  }, tr_ref::float_mask_out, tr_ref::float_mask_dx, tr_ref::float_mask_dparams);
}

TEST_CASE("TransformerEncoderLayer: matches PyTorch in eval mode (dropout 0.1 inactive)") {
  const BoolMatrix pad = padding();
  TransformerEncoderLayer<double> layer(
      kD, kH, {.dim_feedforward = kFF, .dropout = 0.1, .activation = TransformerActivation::gelu});
  set_params(layer);
  layer.eval();
  auto fwd = [&](const Matrix<double>& x) -> const Matrix<double>& {
    return layer.forward(x, kB, {.src_key_padding_mask = &pad});
  };
  // With gradients PyTorch runs its ordinary path: every row, every gradient.
  compare(layer, fwd, tr_ref::eval_out, tr_ref::eval_dx, tr_ref::eval_dparams);
  // Without, its fast path (torch._transformer_encoder_layer_fwd): non-padded rows only.
  compare_valid_rows(fwd(fill(kB * kT, kD, 1)), tr_ref::eval_fast_out, pad);
}

TEST_CASE("TransformerEncoder: matches PyTorch, 2 layers and a final norm") {
  const BoolMatrix pad = padding();
  TransformerEncoderLayer<double> proto(kD, kH, {.dim_feedforward = kFF, .dropout = 0.0});
  TransformerEncoder<double> enc(proto, 2, {.norm = heed::LayerNorm<double>(kD)});
  set_params(enc);
  enc.train();
  auto fwd = [&](const Matrix<double>& x) -> const Matrix<double>& {
    return enc.forward(x, kB, {.src_key_padding_mask = &pad, .is_causal = true});
  };
  compare(enc, fwd, tr_ref::encoder_out, tr_ref::encoder_dx, tr_ref::encoder_dparams);
  // PyTorch's eval mode without gradients runs on a nested tensor: non-padded rows only.
  enc.eval();
  compare_valid_rows(enc.forward(fill(kB * kT, kD, 1), kB, {.src_key_padding_mask = &pad}),
                     tr_ref::encoder_eval_fast_out, pad);
}

TEST_CASE("state_dict keys and order equal PyTorch's") {
  TransformerEncoderLayer<double> layer(kD, kH, {.dim_feedforward = kFF});
  CHECK(keys(layer) == tr_ref::layer_keys);
  TransformerEncoder<double> enc(layer, 2, {.norm = heed::LayerNorm<double>(kD)});
  CHECK(keys(enc) == tr_ref::encoder_keys);
  TransformerEncoder<double> fresh(kD, kH, 2, {.dim_feedforward = kFF},
                                   {.norm = heed::LayerNorm<double>(kD)});
  CHECK(keys(fresh) == tr_ref::encoder_keys);
}

TEST_CASE("reference comparison: largest difference seen" * doctest::may_fail(false)) {
  MESSAGE("largest |heed - PyTorch| over every reference comparison: " << g_worst);
  CHECK(g_worst < kTol);
}
