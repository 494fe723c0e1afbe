// MultiheadAttention against numbers computed once with torch.nn.MultiheadAttention
// (reference_values.py writes reference_values.hpp; torch is not needed to run this).
#include <cmath>

#include "helpers.hpp"
#include "reference_values.hpp"

using namespace attn_test;
using heed::BoolMatrix;
using heed::MultiheadAttention;

namespace {

// reference_values.py's fill(): scale * sin(1.3 i + seed) over the row-major flat index.
Matrix<double> fill(Index rows, Index cols, double seed, double scale = 1.0) {
  Matrix<double> m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = scale * std::sin(1.3 * double(i) + seed);
  return m;
}

void set_params(MultiheadAttention<double>& mha) {
  int k = 0;
  for (auto& p : mha.parameters()) {
    *p.value = fill(p.value->rows(), p.value->cols(), 10 + k, 0.5);
    ++k;
  }
}

Matrix<double> ref(const std::vector<double>& v, Index rows, Index cols) {
  REQUIRE(static_cast<Index>(v.size()) == rows * cols);
  return Eigen::Map<const Matrix<double>>(v.data(), rows, cols);
}

}  // namespace

TEST_CASE("MultiheadAttention: matches PyTorch, self-attention with padding and causal masks") {
  const Index E = 4, B = 2, T = 3;
  MultiheadAttention<double> mha(E, 2);
  set_params(mha);
  const Matrix<double> x = fill(B * T, E, 1);
  BoolMatrix pad = BoolMatrix::Zero(B, T);
  pad(0, 2) = true;
  for (bool need_weights : {true, false}) {
    CAPTURE(need_weights);
    mha.zero_grad();
    auto [out, w] = mha.forward(x, B, {.key_padding_mask = &pad, .is_causal = true,
                                       .need_weights = need_weights});
    CHECK(rel_err<double>(out, ref(attn_ref::self_out, B * T, E)) < 1e-12);
    if (need_weights) CHECK(rel_err<double>(w, ref(attn_ref::self_weights, B * T, T)) < 1e-12);
    auto [dq, dk, dv] = mha.backward(fill(B * T, E, 2));
    const Matrix<double> dx = dq + dk + dv;
    CHECK(rel_err<double>(dx, ref(attn_ref::self_dx, B * T, E)) < 1e-12);
    auto ps = mha.parameters();
    CHECK(rel_err<double>(*ps[0].grad, ref(attn_ref::self_din_proj_weight, 3 * E, E)) < 1e-12);
    CHECK(rel_err<double>(*ps[3].grad, ref(attn_ref::self_dout_proj_bias, 1, E)) < 1e-12);
  }
}

TEST_CASE("MultiheadAttention: matches PyTorch, cross-attention with kdim, vdim and a float mask") {
  const Index E = 4, B = 2, Tq = 2, Tk = 3, kdim = 3, vdim = 5;
  MultiheadAttention<double> mha(E, 2, {.kdim = kdim, .vdim = vdim});
  set_params(mha);
  const Matrix<double> q = fill(B * Tq, E, 3), k = fill(B * Tk, kdim, 4), v = fill(B * Tk, vdim, 5);
  const Matrix<double> bias = fill(Tq, Tk, 6);
  auto [out, w] = mha.forward(q, k, v, B, {.attn_bias = &bias, .average_attn_weights = false});
  CHECK(rel_err<double>(out, ref(attn_ref::cross_out, B * Tq, E)) < 1e-12);
  CHECK(rel_err<double>(w, ref(attn_ref::cross_weights, B * 2 * Tq, Tk)) < 1e-12);
  auto [dq, dk, dv] = mha.backward(fill(B * Tq, E, 7));
  CHECK(rel_err<double>(dq, ref(attn_ref::cross_dq, B * Tq, E)) < 1e-12);
  CHECK(rel_err<double>(dk, ref(attn_ref::cross_dk, B * Tk, kdim)) < 1e-12);
  CHECK(rel_err<double>(dv, ref(attn_ref::cross_dv, B * Tk, vdim)) < 1e-12);
  CHECK(mha.parameters()[1].name == "k_proj_weight");
  CHECK(rel_err<double>(*mha.parameters()[1].grad, ref(attn_ref::cross_dk_proj_weight, E, kdim)) <
        1e-12);
}
