#include "helpers.hpp"

using namespace attn_test;
using heed::BoolMatrix;

TEST_CASE("Attention: shape errors name the module and both shapes") {
  heed::Attention<float> att;
  const Matrix<float> q = Matrix<float>::Zero(6, 4), k = Matrix<float>::Zero(8, 4),
                      v = Matrix<float>::Zero(8, 3);
  CHECK_THROWS_WITH_AS(att.forward(q, Matrix<float>::Zero(8, 5), v, 2),
                       doctest::Contains("Attention<ScaledDotProduct>: scaled dot-product score "
                                         "needs queries and keys of equal width, got 4 and 5"),
                       heed::ShapeError);
  CHECK_THROWS_WITH_AS(att.forward(q, k, Matrix<float>::Zero(6, 3), 2),
                       "Attention<ScaledDotProduct>: values expected 8 rows (as keys), got 6",
                       heed::ShapeError);
  CHECK_THROWS_WITH_AS(att.forward(Matrix<float>::Zero(7, 4), k, v, 2),
                       doctest::Contains("queries rows 7 not a positive multiple of batch size 2"),
                       heed::ShapeError);
  CHECK_THROWS_WITH_AS(att.forward(q, k, v, 0),
                       "Attention<ScaledDotProduct>: batch size must be positive, got 0",
                       heed::ValueError);
  BoolMatrix pad = BoolMatrix::Zero(2, 3);
  CHECK_THROWS_WITH_AS(att.forward(q, k, v, 2, {.key_padding_mask = &pad}),
                       "Attention<ScaledDotProduct>: key_padding_mask expected (2, 4), got (2, 3)",
                       heed::ShapeError);
  BoolMatrix am = BoolMatrix::Zero(4, 4);
  CHECK_THROWS_WITH_AS(att.forward(q, k, v, 2, {.attn_mask = &am}),
                       "Attention<ScaledDotProduct>: attn_mask expected (3, 4), got (4, 4)",
                       heed::ShapeError);
  Matrix<float> bias = Matrix<float>::Zero(3, 5);
  CHECK_THROWS_WITH_AS(att.forward(q, k, v, 2, {.attn_bias = &bias}),
                       "Attention<ScaledDotProduct>: attn_bias expected (3, 4), got (3, 5)",
                       heed::ShapeError);
  att.forward(q, k, v, 2);
  CHECK_THROWS_WITH_AS(att.backward(Matrix<float>::Zero(6, 4)),
                       "Attention<ScaledDotProduct>: gradient expected (6, 3), got (6, 4)",
                       heed::ShapeError);
  CHECK_THROWS_AS(heed::Attention<float>(heed::ScaledDotProductScore<float>(), 1.0),
                  heed::ValueError);
}

TEST_CASE("Scores: parameterised scores check their widths") {
  heed::Attention<double, heed::AdditiveScore> add(heed::AdditiveScore<double>(5, 4, 6));
  CHECK_THROWS_WITH_AS(
      add.forward(Matrix<double>::Zero(2, 5), Matrix<double>::Zero(2, 3), Matrix<double>::Zero(2, 1), 1),
      "Attention<Additive>: additive score expects queries of width 5 and keys of width 4, got 5 and 3",
      heed::ShapeError);
  heed::Attention<double, heed::GeneralScore> gen(heed::GeneralScore<double>(5, 4));
  CHECK_THROWS_WITH_AS(
      gen.forward(Matrix<double>::Zero(2, 6), Matrix<double>::Zero(2, 4), Matrix<double>::Zero(2, 1), 1),
      doctest::Contains("Attention<General>: general score expects queries of width 5"),
      heed::ShapeError);
  CHECK_THROWS_AS(heed::AdditiveScore<double>(5, 4, 0), heed::ValueError);
  CHECK_THROWS_AS(heed::GeneralScore<double>(0, 4), heed::ValueError);
}

TEST_CASE("MultiheadAttention: argument and shape errors") {
  CHECK_THROWS_WITH_AS(heed::MultiheadAttention<float>(10, 3),
                       "MultiheadAttention: embed_dim 10 not divisible by num_heads 3",
                       heed::ValueError);
  CHECK_THROWS_AS(heed::MultiheadAttention<float>(8, 2, {.dropout = 1.0}), heed::ValueError);
  CHECK_THROWS_AS(heed::MultiheadAttention<float>(0, 2), heed::ValueError);
  heed::MultiheadAttention<float> mha(8, 2, {.kdim = 5, .vdim = 3});
  const Matrix<float> q = Matrix<float>::Zero(4, 8), k = Matrix<float>::Zero(6, 5),
                      v = Matrix<float>::Zero(6, 3);
  CHECK_THROWS_WITH_AS(mha.forward(q, Matrix<float>::Zero(6, 8), v, 2),
                       "MultiheadAttention: key expected (*, 5), got (6, 8)", heed::ShapeError);
  CHECK_THROWS_WITH_AS(mha.forward(Matrix<float>::Zero(4, 7), k, v, 2),
                       "MultiheadAttention: query expected (*, 8), got (4, 7)", heed::ShapeError);
  CHECK_THROWS_WITH_AS(mha.forward(q, k, Matrix<float>::Zero(6, 4), 2),
                       "MultiheadAttention: value expected (*, 3), got (6, 4)", heed::ShapeError);
  BoolMatrix pad = BoolMatrix::Zero(2, 6);
  CHECK_THROWS_WITH_AS(mha.forward(q, k, v, 2, {.key_padding_mask = &pad}),
                       "MultiheadAttention: key_padding_mask expected (2, 3), got (2, 6)",
                       heed::ShapeError);
  mha.forward(q, k, v, 2);
  CHECK_THROWS_WITH_AS(mha.backward(Matrix<float>::Zero(4, 7)),
                       "MultiheadAttention: gradient expected (4, 8), got (4, 7)",
                       heed::ShapeError);
}

TEST_CASE("FusedAttention: argument and shape errors") {
  CHECK_THROWS_AS(heed::FusedAttention<float>(std::nullopt, 0), heed::ValueError);
  heed::FusedAttention<float> fa;
  CHECK_THROWS_WITH_AS(fa.forward(Matrix<float>::Zero(4, 8), Matrix<float>::Zero(6, 5),
                                  Matrix<float>::Zero(6, 3), 2),
                       "FusedAttention: queries and keys must have equal width, got 8 and 5",
                       heed::ShapeError);
  CHECK_THROWS_WITH_AS(fa.forward(Matrix<float>::Zero(4, 8), Matrix<float>::Zero(5, 8),
                                  Matrix<float>::Zero(5, 3), 2),
                       doctest::Contains("keys rows 5 not a positive multiple of batch size 2"),
                       heed::ShapeError);
}
