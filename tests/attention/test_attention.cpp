#include <cmath>

#include "helpers.hpp"

using namespace attn_test;
using heed::AttentionMasks;
using heed::BoolMatrix;

namespace {
constexpr Index B = 2, Tq = 3, Tk = 4;
}

TEST_CASE("Attention: gradient check of dot-product and scaled dot-product scores") {
  heed::Attention<double, heed::DotProductScore> dot;
  heed::Attention<double> scaled;
  auto q = randn(B * Tq, 5, 1), k = randn(B * Tk, 5, 2), v = randn(B * Tk, 3, 3);
  auto run = [&](auto& att) {
    auto r = check_qkv(att, q, k, v, [&](auto& a, auto& b, auto& c) -> const Matrix<double>& {
      return att.forward(a, b, c, B);
    });
    INFO(att.name(), ": ", r.detail);
    CHECK(r.ok);
  };
  run(dot);
  run(scaled);
}

TEST_CASE("Attention: gradient check of additive and general scores incl. parameters") {
  heed::Generator gen(3);
  heed::Attention<double, heed::AdditiveScore> add(heed::AdditiveScore<double>(5, 4, 6, gen));
  heed::Attention<double, heed::GeneralScore> gen_att(heed::GeneralScore<double>(5, 4, gen));
  CHECK(add.parameters().size() == 3);
  CHECK(add.parameters()[0].name == "W_q");
  CHECK(add.parameters()[2].name == "v");
  CHECK(gen_att.parameters()[0].name == "W");
  auto q = randn(B * Tq, 5, 4), k = randn(B * Tk, 4, 5), v = randn(B * Tk, 3, 6);
  {
    auto r = check_qkv(add, q, k, v, [&](auto& a, auto& b, auto& c) -> const Matrix<double>& {
      return add.forward(a, b, c, B);
    });
    INFO(r.detail);
    CHECK(r.ok);
    CHECK(r.checked == q.size() + k.size() + v.size() + 6 * 5 + 6 * 4 + 6);
  }
  {
    auto r = check_qkv(gen_att, q, k, v, [&](auto& a, auto& b, auto& c) -> const Matrix<double>& {
      return gen_att.forward(a, b, c, B);
    });
    INFO(r.detail);
    CHECK(r.ok);
  }
}
