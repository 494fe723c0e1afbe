// SpatialAttention2d (CBAM's spatial attention): finite-difference gradients, PyTorch parity on
// tests/conv/conv_reference.py's spatial* fixtures (the module is written out in that script),
// the map it exposes, and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <heed/heed.hpp>
#include <heed/testing/gradcheck.hpp>

#include "common/helpers.hpp"
#include "conv/fixture.hpp"

using heed::Index;
using heed::Matrix;
using heed_test::randn;
namespace fixture = heed_test::fixture;

TEST_CASE("SpatialAttention2d: finite-difference gradients of input and conv weight (kernel 7 and 3)") {
  for (Index k : {7, 3}) {
    CAPTURE(k);
    heed::Generator g(3);
    heed::SpatialAttention2d<double> sa({.input = {5, 4}, .kernel_size = k}, g);
    const Matrix<double> x = randn(2, 3 * 20, 9 + k);
    const auto res = heed::testing::check_module(sa, x);
    CHECK_MESSAGE(res.ok, res.detail);
    CHECK(res.checked == x.size() + 2 * k * k);
  }
}

TEST_CASE_TEMPLATE("SpatialAttention2d matches PyTorch: output, input gradient and conv weight gradient", T, float,
                   double) {
  struct Config {
    const char* name;
    Index k, H, W;
  };
  for (const Config& c : {Config{"spatial7", 7, 6, 5}, Config{"spatial3", 3, 4, 4}}) {
    const std::string path = fixture::path<T>(c.name);
    if (path.empty()) continue;  // float32: spatial7 only
    CAPTURE(path);
    heed::SpatialAttention2d<T> sa({.input = {c.H, c.W}, .kernel_size = c.k});
    heed::load_weights(sa, path, {.rename = fixture::skip_reserved});
    heed::io::Safetensors f(path);
    sa.zero_grad();
    fixture::compare(f, "y", sa.forward(f.matrix<T>("__input__.x")));
    fixture::compare(f, "dx", sa.backward(f.matrix<T>("__input__.dy")));
    fixture::compare(f, "dconv.weight", *sa.conv().parameters()[0].grad);
  }
  // After a ReLU every channel is 0 at some positions: the max's gradient is split among the
  // tied channels, as torch.amax's (here 1 in 8 positions of 3 channels).
  if (const std::string path = fixture::path<T>("spatial_relu"); !path.empty()) {
    heed::Sequential<T> net(heed::ReLU<T>(), heed::SpatialAttention2d<T>({.input = {4, 4}, .kernel_size = 3}));
    heed::load_weights(net, path, {.rename = fixture::skip_reserved});
    heed::io::Safetensors f(path);
    const Matrix<T> x = f.matrix<T>("__input__.x");
    Index tied = 0;
    for (Index n = 0; n < x.rows(); ++n)
      for (Index p = 0; p < 16; ++p) tied += x(n, p) <= 0 && x(n, 16 + p) <= 0 && x(n, 32 + p) <= 0;
    CHECK(tied > 0);
    net.zero_grad();
    fixture::compare(f, "y", net.forward(x));
    fixture::compare(f, "dx", net.backward(f.matrix<T>("__input__.dy")));
    fixture::compare(f, "d1.conv.weight", *net.parameters()[0].grad);
  }
  fixture::print_worst("SpatialAttention2d");
}

TEST_CASE("SpatialAttention2d: the map is sigmoid of the conv over [mean; max], every channel scaled by it") {
  heed::Generator g(1);
  heed::SpatialAttention2d<double> sa({.input = {3, 3}, .kernel_size = 3}, g);
  sa.conv().weight().setZero();
  sa.conv().weight()(0, 9 + 4) = 1.0;  // the max map's centre tap: s = max_c x
  const Matrix<double> x = randn(2, 4 * 9, 5);
  const Matrix<double> y = sa.forward(x);
  const Matrix<double>& m = sa.attention_map();
  REQUIRE(m.rows() == 2);
  REQUIRE(m.cols() == 9);
  for (Index n = 0; n < 2; ++n)
    for (Index p = 0; p < 9; ++p) {
      double mx = -1e300;
      for (Index c = 0; c < 4; ++c) mx = std::max(mx, x(n, c * 9 + p));
      CHECK(m(n, p) == doctest::Approx(1 / (1 + std::exp(-mx))).epsilon(1e-14));
      for (Index c = 0; c < 4; ++c) CHECK(y(n, c * 9 + p) == doctest::Approx(x(n, c * 9 + p) * m(n, p)).epsilon(1e-14));
    }
  // Registered child: PyTorch's key and shape.
  const auto ps = sa.parameters();
  REQUIRE(ps.size() == 1);
  CHECK(ps[0].name == "conv.weight");
  CHECK(heed::torch_shape(ps[0]) == std::vector<Index>{1, 2, 3, 3});
  CHECK(sa.extra_repr() == "kernel_size=3");
  // NaN in a channel propagates through the max, as torch.amax.
  Matrix<double> bad = x;
  bad(0, 9 + 2) = std::numeric_limits<double>::quiet_NaN();
  CHECK(std::isnan(sa.forward(bad)(0, 2)));
}

TEST_CASE("SpatialAttention2d refuses bad options and inputs, naming the shapes") {
  CHECK_THROWS_WITH_AS(heed::SpatialAttention2d<float>({.input = {4, 4}, .kernel_size = 4}),
                       "SpatialAttention2d: kernel_size must be odd and positive (the map keeps H x W), got 4",
                       heed::ValueError);
  CHECK_THROWS_WITH_AS(heed::SpatialAttention2d<float>({}),
                       "SpatialAttention2d: input size must be positive, got (0, 0) (set the options' .input)",
                       heed::ValueError);
  heed::SpatialAttention2d<float> sa({.input = {4, 5}, .kernel_size = 3});
  CHECK_THROWS_WITH_AS(sa.forward(Matrix<float>::Zero(2, 30)),
                       "SpatialAttention2d: input expected (N, C*20) for a 4x5 map, got (2, 30)", heed::ShapeError);
  CHECK_THROWS_AS(sa.backward(Matrix<float>::Zero(2, 40)), heed::ValueError);  // before forward
  sa.forward(Matrix<float>::Zero(2, 40));
  CHECK_THROWS_WITH_AS(sa.backward(Matrix<float>::Zero(2, 20)),
                       "SpatialAttention2d: gradient expected (2, 40), got (2, 20)", heed::ShapeError);
}

TEST_CASE("SpatialAttention2d: output and gradients are bit-identical with 1 and 2 threads") {
  const int saved = Eigen::nbThreads();
  auto run = [](int threads) {
    Eigen::setNbThreads(threads);
    heed::Generator g(4);
    heed::SpatialAttention2d<double> sa({.input = {24, 24}}, g);  // 32 * 64 * 576 * 4 > 1e6: threaded
    const Matrix<double> x = randn(32, 64 * 576, 6);
    std::vector<Matrix<double>> out{sa.forward(x)};
    out.push_back(sa.backward(randn(32, 64 * 576, 7)));
    out.push_back(*sa.parameters()[0].grad);
    return out;
  };
  const auto one = run(1), two = run(2);
  for (std::size_t i = 0; i < one.size(); ++i) CHECK(one[i] == two[i]);
  Eigen::setNbThreads(saved);
}
