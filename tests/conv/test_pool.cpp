// MaxPool2d, MaxPool1d, AvgPool2d, AdaptiveAvgPool2d: finite-difference gradients, PyTorch
// parity on the fixtures conv_reference.py writes (data/<config>_{f32,f64}.safetensors), max
// pooling's ties and NaN, argument checks, a Conv2d -> ReLU -> MaxPool2d -> Linear network, and
// thread-count independence.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>
#include <heed/heed.hpp>
#include <heed/testing/gradcheck.hpp>

#include "common/errors.hpp"
#include "common/helpers.hpp"
#include "conv/fixture.hpp"

using heed::Index;
using heed::Matrix;
using heed_test::error_of;
using heed_test::randn;
namespace fixture = heed_test::fixture;

namespace {

// Every pooling fixture's configuration, as conv_reference.py's CONFIGS, and the input's C*H*W.
struct Config {
  std::string name;
  Index width;  // C*H*W (C*L for MaxPool1d) of one sample
};
const std::vector<Config> kConfigs = {
    {"maxpool_k2", 3 * 6 * 7},          {"maxpool_pad_stride", 2 * 7 * 8}, {"maxpool_dilation_ceil", 2 * 9 * 8},
    {"maxpool_ceil_drop", 2 * 5 * 6},   {"maxpool1d", 3 * 12},             {"avgpool_k2", 3 * 6 * 7},
    {"avgpool_pad_ceil", 2 * 8 * 7},    {"avgpool_exclude_pad", 2 * 8 * 7}, {"avgpool_divisor", 2 * 7 * 6},
    {"adaptive_avg", 2 * 7 * 10},       {"adaptive_avg_up", 2 * 4 * 7},
};

template <typename T>
std::unique_ptr<heed::Module<T>> make(const std::string& name) {
  using heed::Size2;
  if (name == "maxpool_k2") return std::make_unique<heed::MaxPool2d<T>>(2, heed::MaxPool2dOptions{.input = {6, 7}});
  if (name == "maxpool_pad_stride")
    return std::make_unique<heed::MaxPool2d<T>>(3, heed::MaxPool2dOptions{.input = {7, 8}, .stride = {2, 1}, .padding = 1});
  if (name == "maxpool_dilation_ceil")
    return std::make_unique<heed::MaxPool2d<T>>(
        Size2{3, 2}, heed::MaxPool2dOptions{.input = {9, 8}, .stride = 2, .padding = 1, .dilation = {2, 1}, .ceil_mode = true});
  if (name == "maxpool_ceil_drop")
    return std::make_unique<heed::MaxPool2d<T>>(
        2, heed::MaxPool2dOptions{.input = {5, 6}, .stride = 2, .padding = 1, .ceil_mode = true});
  if (name == "maxpool1d")
    return std::make_unique<heed::MaxPool1d<T>>(
        3, heed::MaxPool1dOptions{.input = 12, .stride = 2, .padding = 1, .dilation = 2, .ceil_mode = true});
  if (name == "avgpool_k2") return std::make_unique<heed::AvgPool2d<T>>(2, heed::AvgPool2dOptions{.input = {6, 7}});
  if (name == "avgpool_pad_ceil")
    return std::make_unique<heed::AvgPool2d<T>>(
        3, heed::AvgPool2dOptions{.input = {8, 7}, .stride = 2, .padding = 1, .ceil_mode = true});
  if (name == "avgpool_exclude_pad")
    return std::make_unique<heed::AvgPool2d<T>>(
        Size2{3, 2}, heed::AvgPool2dOptions{.input = {8, 7}, .stride = {2, 1}, .padding = 1, .ceil_mode = true,
                                            .count_include_pad = false});
  if (name == "avgpool_divisor")
    return std::make_unique<heed::AvgPool2d<T>>(
        3, heed::AvgPool2dOptions{.input = {7, 6}, .stride = 2, .padding = 1, .divisor_override = 5});
  if (name == "adaptive_avg")
    return std::make_unique<heed::AdaptiveAvgPool2d<T>>(Size2{3, 4}, heed::AdaptiveAvgPool2dOptions{.input = {7, 10}});
  if (name == "adaptive_avg_up")
    return std::make_unique<heed::AdaptiveAvgPool2d<T>>(Size2{5, 3}, heed::AdaptiveAvgPool2dOptions{.input = {4, 7}});
  FAIL("unknown config " << name);
  return nullptr;
}

template <typename T>
Matrix<T> row(std::initializer_list<T> v) {
  Matrix<T> m(1, static_cast<Index>(v.size()));
  Index i = 0;
  for (T x : v) m(0, i++) = x;
  return m;
}

}  // namespace

TEST_CASE("pooling: finite-difference input gradients for every configuration") {
  for (const auto& cfg : kConfigs) {
    const std::string name = cfg.name;
    CAPTURE(name);
    auto m = make<double>(name);
    // N(0, 1) draws: no ties, and no two values of a window within the step of each other.
    const Matrix<double> x = randn(2, cfg.width, 5);
    const auto res = heed::testing::check_module(*m, x);
    CHECK_MESSAGE(res.ok, res.detail);
    CHECK(res.checked == x.size());
  }
}

TEST_CASE("pooling: finite-difference gradients where windows overlap heavily (stride 1) and C is large") {
  heed::MaxPool2d<double> mp(3, {.input = {5, 6}, .stride = 1, .padding = 1});
  auto r1 = heed::testing::check_module(mp, randn(2, 4 * 30, 21));
  CHECK_MESSAGE(r1.ok, r1.detail);
  heed::AvgPool2d<double> ap(3, {.input = {5, 6}, .stride = 1, .padding = 1, .count_include_pad = false});
  auto r2 = heed::testing::check_module(ap, randn(2, 4 * 30, 22));
  CHECK_MESSAGE(r2.ok, r2.detail);
  heed::AdaptiveAvgPool2d<double> ad({4, 5}, {.input = {5, 6}});  // every window overlaps the next
  auto r3 = heed::testing::check_module(ad, randn(2, 4 * 30, 23));
  CHECK_MESSAGE(r3.ok, r3.detail);
}

TEST_CASE_TEMPLATE("pooling matches PyTorch: output and input gradient", T, float, double) {
  for (const auto& cfg : kConfigs) {
    const std::string path = fixture::path<T>(cfg.name);
    if (path.empty()) continue;  // float32: some configs only
    CAPTURE(path);
    auto m = make<T>(cfg.name);
    const auto f = heed::io::open_tensors(path);
    const Matrix<T> x = f->matrix<T>("__input__.x");  // (N, C, H, W) as (N, C*H*W)
    const Matrix<T> dy = f->matrix<T>("__input__.dy");
    REQUIRE(x.cols() == cfg.width);
    fixture::compare(*f, "y", m->forward(x));
    fixture::compare(*f, "dx", m->backward(dy));
  }
}

TEST_CASE("pooling vs PyTorch: the largest differences (printed)") {
  fixture::print_worst("pooling");
}

TEST_CASE("pooling: output sizes (PyTorch's ceil_mode rule), channels inferred per call, names and repr") {
  heed::MaxPool2d<double> p(2, {.input = {28, 28}});
  CHECK(p.name() == "MaxPool2d");
  CHECK(p.output_hw() == std::pair<Index, Index>{14, 14});
  CHECK(p.output_size(32) == 32 * 196);
  CHECK(p.extra_repr() == "kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=false");
  CHECK(p.channels() == -1);
  CHECK(p.forward(Matrix<double>::Zero(2, 5 * 784)).cols() == 5 * 196);
  CHECK(p.channels() == 5);
  CHECK(p.forward(Matrix<double>::Zero(3, 784)).cols() == 196);  // another C, same module
  CHECK(p.channels() == 1);
  CHECK(p.backward(Matrix<double>::Zero(3, 196)).cols() == 784);

  heed::MaxPool2d<double> q({2, 3}, {.input = {8, 9}, .stride = {1, 2}});
  CHECK(q.extra_repr() == "kernel_size=(2, 3), stride=(1, 2), padding=0, dilation=1, ceil_mode=false");
  CHECK(q.output_hw() == std::pair<Index, Index>{7, 4});

  // ceil_mode: 5 rows, kernel 2 stride 2: ceil((5 - 2) / 2) + 1 = 3 windows (floor: 2) ...
  CHECK(heed::MaxPool2d<double>(2, {.input = {5, 5}, .ceil_mode = true}).output_hw() == std::pair<Index, Index>{3, 3});
  CHECK(heed::MaxPool2d<double>(2, {.input = {5, 5}}).output_hw() == std::pair<Index, Index>{2, 2});
  // ... but with padding 1 the 4th window would start at row 5, in the bottom padding: dropped.
  CHECK(heed::MaxPool2d<double>(2, {.input = {5, 6}, .padding = 1, .ceil_mode = true}).output_hw() ==
        std::pair<Index, Index>{3, 4});

  heed::MaxPool1d<double> p1(3, {.input = 12, .stride = 2, .padding = 1, .dilation = 2, .ceil_mode = true});
  CHECK(p1.name() == "MaxPool1d");
  CHECK(p1.output_length() == 6);
  CHECK(p1.output_size(3) == 18);
  CHECK(p1.extra_repr() == "kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=true");
  CHECK(heed::MaxPool1d<double>(3, {.input = 12}).extra_repr() ==
        "kernel_size=3, stride=3, padding=0, dilation=1, ceil_mode=false");

  heed::AvgPool2d<double> a(3, {.input = {8, 7}, .stride = 2, .padding = 1, .ceil_mode = true});
  CHECK(a.name() == "AvgPool2d");
  CHECK(a.output_hw() == std::pair<Index, Index>{5, 4});
  CHECK(a.extra_repr() == "kernel_size=3, stride=2, padding=1");
  CHECK(heed::AvgPool2d<double>({2, 3}, {.input = {8, 9}, .padding = {1, 0}}).extra_repr() ==
        "kernel_size=(2, 3), stride=(2, 3), padding=(1, 0)");

  heed::AdaptiveAvgPool2d<double> ad({3, 4}, {.input = {7, 10}});
  CHECK(ad.name() == "AdaptiveAvgPool2d");
  CHECK(ad.output_hw() == std::pair<Index, Index>{3, 4});
  CHECK(ad.extra_repr() == "output_size=(3, 4)");
  CHECK(heed::AdaptiveAvgPool2d<double>(2, {.input = {7, 10}}).extra_repr() == "output_size=2");
  CHECK(p.parameters().empty());
}

TEST_CASE("pooling: exact values of small cases (divisors, adaptive windows)") {
  // 1 channel, 3 x 3: 1..9. AvgPool2d(2, stride 1, padding 1) on the corners: window
  // [-1, 1) x [-1, 1) holds only x(0, 0) = 1; counted over the padded input (4) or not (1).
  const Matrix<double> x = row<double>({1, 2, 3, 4, 5, 6, 7, 8, 9});
  heed::AvgPool2d<double> inc(2, {.input = {3, 3}, .stride = 1, .padding = 1});
  heed::AvgPool2d<double> exc(2, {.input = {3, 3}, .stride = 1, .padding = 1, .count_include_pad = false});
  heed::AvgPool2d<double> div(2, {.input = {3, 3}, .stride = 1, .padding = 1, .divisor_override = 2});
  CHECK(inc.forward(x)(0, 0) == 0.25);
  CHECK(exc.forward(x)(0, 0) == 1.0);
  CHECK(div.forward(x)(0, 0) == 0.5);
  CHECK(inc.forward(x)(0, 5) == (1 + 2 + 4 + 5) / 4.0);  // (1, 1) of the 4 x 4 output: inside
  // Adaptive 3 -> 2: rows [0, 2) and [1, 3), the middle row in both.
  heed::AdaptiveAvgPool2d<double> ad(2, {.input = {3, 3}});
  CHECK(ad.forward(x) == row<double>({3, 4, 6, 7}));
  CHECK(ad.backward(row<double>({4, 4, 4, 4})) == row<double>({1, 2, 1, 2, 4, 2, 1, 2, 1}));
}

TEST_CASE_TEMPLATE("MaxPool: ties go to the first maximum in scan order, NaN propagates, overlaps add up", T, float,
                   double) {
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  heed::MaxPool2d<T> p(2, {.input = {2, 2}});
  CHECK(p.forward(row<T>({1, 3, 3, 2}))(0, 0) == 3);
  CHECK(p.backward(row<T>({7})) == row<T>({0, 7, 0, 0}));
  // NaN wins over every number, and a later NaN over an earlier one (PyTorch's index).
  CHECK(std::isnan(p.forward(row<T>({1, nan, 3, nan}))(0, 0)));
  CHECK(p.backward(row<T>({7})) == row<T>({0, 0, 0, 7}));
  CHECK(std::isnan(p.forward(row<T>({nan, 5, 1, 2}))(0, 0)));
  CHECK(p.backward(row<T>({7})) == row<T>({7, 0, 0, 0}));
  // All -inf: -inf, the gradient to the window's first element.
  CHECK(p.forward(row<T>({-inf, -inf, -inf, -inf}))(0, 0) == -inf);
  CHECK(p.backward(row<T>({7})) == row<T>({7, 0, 0, 0}));
  // Overlapping windows: equal values go to each window's first; one maximum gathers them all.
  heed::MaxPool1d<T> q(2, {.input = 3, .stride = 1});
  CHECK(q.forward(row<T>({5, 5, 5})) == row<T>({5, 5}));
  CHECK(q.backward(row<T>({1, 2})) == row<T>({1, 2, 0}));
  heed::MaxPool1d<T> r(3, {.input = 5, .stride = 1, .padding = 1});
  CHECK(r.forward(row<T>({0, 1, 9, 2, 3})) == row<T>({1, 9, 9, 9, 3}));
  CHECK(r.backward(row<T>({1, 2, 3, 4, 5})) == row<T>({0, 1, 9, 0, 5}));
  // AvgPool: NaN propagates to every window holding it.
  heed::AvgPool2d<T> a(2, {.input = {2, 4}});
  const Matrix<T> ya = a.forward(row<T>({1, nan, 3, 4, 5, 6, 7, 8}));
  CHECK(std::isnan(ya(0, 0)));
  CHECK(ya(0, 1) == T(5.5));
}

TEST_CASE("MaxPool2d: a window of padding only (dilation) gives -inf and no gradient") {
  // W = 1, kernel 2 with dilation 2 and padding 1: the taps are columns -1 and 1, both outside.
  heed::MaxPool2d<double> p({1, 2}, {.input = {1, 1}, .padding = {0, 1}, .dilation = {1, 2}});
  REQUIRE(p.output_hw() == std::pair<Index, Index>{1, 1});
  CHECK(p.forward(row<double>({4}))(0, 0) == -std::numeric_limits<double>::infinity());
  CHECK(p.backward(row<double>({7})) == row<double>({0}));
}

TEST_CASE_TEMPLATE("pooling refuses bad arguments and inputs, naming the module and the shapes", T, float, double) {
  heed::MaxPool2d<T> p(3, {.input = {6, 7}});
  CHECK(error_of<heed::ValueError>([&] { p.backward(Matrix<T>::Zero(2, 4)); }) ==
        "MaxPool2d: backward called before forward");
  CHECK(error_of<heed::ShapeError>([&] { p.forward(Matrix<T>::Zero(2, 43)); }) ==
        "MaxPool2d: input expected (*, C*6*7) = (*, a positive multiple of 42), got (2, 43)");
  CHECK(error_of<heed::ShapeError>([&] { p.forward(Matrix<T>::Zero(2, 0)); }) ==
        "MaxPool2d: input expected (*, C*6*7) = (*, a positive multiple of 42), got (2, 0)");
  p.forward(Matrix<T>::Zero(2, 3 * 42));  // C = 3, (Ho, Wo) = (2, 2)
  CHECK(error_of<heed::ShapeError>([&] { p.backward(Matrix<T>::Zero(2, 11)); }) ==
        "MaxPool2d: gradient expected (2, 12), got (2, 11)");
  CHECK(error_of<heed::ShapeError>([&] { p.backward(Matrix<T>::Zero(3, 12)); }) ==
        "MaxPool2d: gradient expected (2, 12), got (3, 12)");

  using MO = heed::MaxPool2dOptions;
  auto max2d = [](heed::Size2 k, const MO& o) { heed::MaxPool2d<T> m(k, o); };
  CHECK(error_of<heed::ValueError>([&] { max2d({3, 0}, MO{.input = {5, 5}}); }) ==
        "MaxPool2d: kernel_size must be positive, got (3, 0)");
  CHECK(error_of<heed::ValueError>([&] { max2d(3, MO{.input = {5, 5}, .stride = {1, -1}}); }) ==
        "MaxPool2d: stride must be positive (0: the kernel size), got (1, -1)");
  CHECK(error_of<heed::ValueError>([&] { max2d(3, MO{.input = {5, 5}, .dilation = 0}); }) ==
        "MaxPool2d: dilation must be positive, got (0, 0)");
  CHECK(error_of<heed::ValueError>([&] { max2d(3, MO{.input = {5, 5}, .padding = -1}); }) ==
        "MaxPool2d: padding must be non-negative, got (-1, -1)");
  CHECK(error_of<heed::ValueError>([&] { max2d(3, MO{.input = {5, 5}, .padding = {1, 2}}); }) ==
        "MaxPool2d: padding must be at most half the kernel size, got padding=(1, 2) for kernel_size=(3, 3)");
  CHECK(error_of<heed::ValueError>([&] { max2d(3, MO{}); }) ==
        "MaxPool2d: input size must be positive, got (0, 0) (set the options' .input)");
  CHECK(error_of<heed::ShapeError>([&] { max2d(3, MO{.input = {2, 5}}); }) ==
        "MaxPool2d: output size (0, 1) is too small for input (2, 5) with kernel_size=(3, 3), stride=(3, 3), "
        "padding=(0, 0)");
  CHECK(error_of<heed::ShapeError>([&] { max2d(3, MO{.input = {4, 4}, .stride = 1, .dilation = 2, .ceil_mode = true}); }) ==
        "MaxPool2d: output size (0, 0) is too small for input (4, 4) with kernel_size=(3, 3), stride=(1, 1), "
        "padding=(0, 0), dilation=(2, 2), ceil_mode=true");
  max2d(4, MO{.input = {4, 4}, .padding = 2});  // 4 / 2 = 2: allowed, as PyTorch

  heed::MaxPool1d<T> p1(3, {.input = 12});
  CHECK(error_of<heed::ShapeError>([&] { p1.forward(Matrix<T>::Zero(1, 25)); }) ==
        "MaxPool1d: input expected (*, C*12) = (*, a positive multiple of 12), got (1, 25)");
  CHECK(error_of<heed::ValueError>([&] { p1.backward(Matrix<T>::Zero(1, 4)); }) ==
        "MaxPool1d: backward called before forward");
  CHECK(error_of<heed::ShapeError>([] { heed::MaxPool1d<T> m(5, {.input = 3}); }) ==
        "MaxPool1d: output size (0,) is too small for input (3,) with kernel_size=(5,), stride=(5,), padding=(0,)");
  CHECK(error_of<heed::ValueError>([] { heed::MaxPool1d<T> m(3, {.input = 8, .padding = 2}); }) ==
        "MaxPool1d: padding must be at most half the kernel size, got padding=(2,) for kernel_size=(3,)");
  CHECK(error_of<heed::ValueError>([] { heed::MaxPool1d<T> m(3, {.input = 8, .stride = -2}); }) ==
        "MaxPool1d: stride must be positive (0: the kernel size), got (-2,)");

  using AO = heed::AvgPool2dOptions;
  CHECK(error_of<heed::ValueError>([] { heed::AvgPool2d<T> m(3, AO{.input = {5, 5}, .divisor_override = -1}); }) ==
        "AvgPool2d: divisor_override must be positive (0: none), got -1");
  CHECK(error_of<heed::ValueError>([] { heed::AvgPool2d<T> m(2, AO{.input = {5, 5}, .padding = 2}); }) ==
        "AvgPool2d: padding must be at most half the kernel size, got padding=(2, 2) for kernel_size=(2, 2)");
  CHECK(error_of<heed::ShapeError>([] { heed::AvgPool2d<T> m(3, AO{.input = {5, 2}}); }) ==
        "AvgPool2d: output size (1, 0) is too small for input (5, 2) with kernel_size=(3, 3), stride=(3, 3), "
        "padding=(0, 0)");
  heed::AvgPool2d<T> a(2, {.input = {4, 4}});
  CHECK(error_of<heed::ValueError>([&] { a.backward(Matrix<T>::Zero(1, 4)); }) ==
        "AvgPool2d: backward called before forward");
  CHECK(error_of<heed::ShapeError>([&] { a.forward(Matrix<T>::Zero(1, 17)); }) ==
        "AvgPool2d: input expected (*, C*4*4) = (*, a positive multiple of 16), got (1, 17)");

  using DO = heed::AdaptiveAvgPool2dOptions;
  CHECK(error_of<heed::ValueError>([] { heed::AdaptiveAvgPool2d<T> m({3, 0}, DO{.input = {5, 5}}); }) ==
        "AdaptiveAvgPool2d: output_size must be positive, got (3, 0)");
  CHECK(error_of<heed::ValueError>([] { heed::AdaptiveAvgPool2d<T> m(3); }) ==
        "AdaptiveAvgPool2d: input size must be positive, got (0, 0) (set the options' .input)");
  heed::AdaptiveAvgPool2d<T> ad(2, {.input = {5, 5}});
  ad.forward(Matrix<T>::Zero(2, 50));
  CHECK(error_of<heed::ShapeError>([&] { ad.backward(Matrix<T>::Zero(2, 4)); }) ==
        "AdaptiveAvgPool2d: gradient expected (2, 8), got (2, 4)");
}

TEST_CASE("Conv2d -> ReLU -> MaxPool2d -> Linear in a Sequential: sizes chain, gradients check") {
  heed::Generator g(4);
  heed::Conv2d<double> conv(1, 3, 3, {.input = {6, 6}, .padding = 1}, g);  // (N, 3*6*6)
  heed::MaxPool2d<double> pool(2, {.input = {6, 6}});
  const Index features = pool.output_size(conv.out_channels());  // 3 * 3 * 3
  CHECK(features == 27);
  heed::Sequential<double> net(std::move(conv), heed::ReLU<double>(), std::move(pool),
                               heed::Linear<double>(features, 4, true, g));
  std::vector<std::string> names;
  for (auto& p : net.parameters()) names.push_back(p.name);
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "3.weight", "3.bias"});
  CHECK(heed::summary(net).find("  (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=false)\n") !=
        std::string::npos);
  const Matrix<double> x = randn(3, 36, 8);
  CHECK(net.forward(x).cols() == 4);
  const auto res = heed::testing::check_module(net, x);
  CHECK_MESSAGE(res.ok, res.detail);
  CHECK(res.checked == x.size() + net.num_parameters());
}

TEST_CASE("pooling: requires_input_grad(false) gives an empty dx; buffers are reused for an unchanged batch shape") {
  heed::MaxPool2d<double> p(2, {.input = {4, 4}});
  heed::AvgPool2d<double> a(2, {.input = {4, 4}});
  for (heed::Module<double>* m : {static_cast<heed::Module<double>*>(&p), static_cast<heed::Module<double>*>(&a)}) {
    const Matrix<double> x = randn(3, 2 * 16, 1), dy = randn(3, 2 * 4, 2);
    const double* y0 = m->forward(x).data();
    const Matrix<double> dx = m->backward(dy);
    const double* dx0 = m->backward(dy).data();
    CHECK(m->forward(x).data() == y0);
    CHECK(m->backward(dy).data() == dx0);
    CHECK(m->backward(dy) == dx);  // not accumulated across calls
    m->requires_input_grad(false);
    CHECK(m->backward(dy).rows() == 0);
    m->requires_input_grad(true);
  }
}

TEST_CASE("pooling: output and input gradient are bit-identical with 1 and 2 threads") {
  const int saved = Eigen::nbThreads();
  auto run = [](int threads, heed::Module<double>& m, Index width) {
    Eigen::setNbThreads(threads);
    const Matrix<double> x = randn(16, width, 3);  // 16 * 8 * 1024 * 9 taps: threaded
    std::vector<Matrix<double>> out{m.forward(x)};
    out.push_back(m.backward(randn(16, m.forward(x).cols(), 4)));
    return out;
  };
  heed::MaxPool2d<double> p(3, {.input = {32, 32}, .stride = 1, .padding = 1});
  heed::AvgPool2d<double> a(3, {.input = {32, 32}, .stride = 1, .padding = 1, .count_include_pad = false});
  for (heed::Module<double>* m : {static_cast<heed::Module<double>*>(&p), static_cast<heed::Module<double>*>(&a)}) {
    const auto one = run(1, *m, 8 * 1024), two = run(2, *m, 8 * 1024);
    REQUIRE(one.size() == two.size());
    for (std::size_t i = 0; i < one.size(); ++i) CHECK(one[i] == two[i]);
  }
  Eigen::setNbThreads(saved);
}

TEST_CASE_TEMPLATE("pooling with .channels: a wrong .input whose H*W divides the width is refused", T, float, double) {
  // A Conv2d(1, 8, 3, padding 1) on 28x28 gives (N, 8*28*28); pooling told 14x14 would read it as 32 channels.
  heed::MaxPool2d<T> loose(2, {.input = {14, 14}});
  CHECK(loose.forward(Matrix<T>::Zero(2, 8 * 28 * 28)).cols() == 32 * 7 * 7);  // no way to tell
  heed::MaxPool2d<T> strict(2, {.input = {14, 14}, .channels = 8});
  CHECK_THROWS_WITH_AS(strict.forward(Matrix<T>::Zero(2, 8 * 28 * 28)),
                       "MaxPool2d: input expected (*, 1568) = (*, 8*14*14), got (2, 6272)", heed::ShapeError);
  CHECK(strict.forward(Matrix<T>::Zero(2, 8 * 14 * 14)).cols() == 8 * 7 * 7);
  heed::AvgPool2d<T> avg(2, {.input = {4, 4}, .channels = 3});
  CHECK_THROWS_AS(avg.forward(Matrix<T>::Zero(1, 6 * 16)), heed::ShapeError);
  heed::AdaptiveAvgPool2d<T> ad({2, 2}, {.input = {4, 4}, .channels = 3});
  CHECK_THROWS_AS(ad.forward(Matrix<T>::Zero(1, 6 * 16)), heed::ShapeError);
  heed::MaxPool1d<T> m1(2, {.input = 8, .channels = 2});
  CHECK_THROWS_WITH_AS(m1.forward(Matrix<T>::Zero(1, 32)), "MaxPool1d: input expected (*, 16) = (*, 2*8), got (1, 32)",
                       heed::ShapeError);
  CHECK_THROWS_WITH_AS(heed::MaxPool2d<T>(2, {.input = {4, 4}, .channels = -1}),
                       "MaxPool2d: channels must be >= 0 (0: any), got -1", heed::ValueError);
}
