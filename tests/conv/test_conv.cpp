// Conv2d and Conv1d: finite-difference gradients, PyTorch parity on the fixtures that
// conv_reference.py writes (data/<config>_{f32,f64}.safetensors), argument checks, and
// thread-count independence.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <heed/heed.hpp>
#include <heed/testing/gradcheck.hpp>

#include "common/helpers.hpp"
#include "conv/fixture.hpp"

using heed::Index;
using heed::Matrix;
using heed_test::randn;
namespace fixture = heed_test::fixture;

namespace {

// Every fixture's configuration, as conv_reference.py's CONFIGS, built from `g`.
template <typename T>
std::unique_ptr<heed::detail::ConvCore<T>> make(const std::string& name, heed::Generator& g) {
  using P = heed::Padding;
  if (name == "plain") return std::make_unique<heed::Conv2d<T>>(2, 3, 3, heed::Conv2dOptions{.input = {6, 7}}, g);
  if (name == "stride2_pad1")
    return std::make_unique<heed::Conv2d<T>>(3, 4, 3, heed::Conv2dOptions{.input = {7, 8}, .stride = 2, .padding = 1}, g);
  if (name == "dilation2")
    return std::make_unique<heed::Conv2d<T>>(2, 3, heed::Size2{3, 2}, heed::Conv2dOptions{.input = {8, 9}, .dilation = 2}, g);
  if (name == "groups2")
    return std::make_unique<heed::Conv2d<T>>(4, 6, 3, heed::Conv2dOptions{.input = {5, 6}, .padding = 1, .groups = 2}, g);
  if (name == "same_even")
    return std::make_unique<heed::Conv2d<T>>(2, 3, heed::Size2{4, 2}, heed::Conv2dOptions{.input = {6, 5}, .padding = P("same")}, g);
  if (name == "nobias") return std::make_unique<heed::Conv2d<T>>(2, 3, 3, heed::Conv2dOptions{.input = {5, 5}, .bias = false}, g);
  if (name == "conv1d")
    return std::make_unique<heed::Conv1d<T>>(3, 4, 3, heed::Conv1dOptions{.input = 11, .stride = 2, .padding = 1, .dilation = 2}, g);
  if (name == "conv1d_same_groups")
    return std::make_unique<heed::Conv1d<T>>(4, 6, 4, heed::Conv1dOptions{.input = 9, .padding = "same", .groups = 2}, g);
  FAIL("unknown config " << name);
  return nullptr;
}

const std::vector<std::string> kConfigs = {"plain",  "stride2_pad1", "dilation2", "groups2", "same_even",
                                           "nobias", "conv1d",       "conv1d_same_groups"};

}  // namespace

TEST_CASE("Conv2d/Conv1d: finite-difference gradients of input, weight and bias for every configuration") {
  for (const auto& name : kConfigs) {
    CAPTURE(name);
    heed::Generator g(11);
    auto m = make<double>(name, g);
    const auto& geo = m->geometry();
    const Matrix<double> x = randn(2, geo.C * geo.H * geo.W, 5);
    const auto res = heed::testing::check_module(*m, x);
    CHECK_MESSAGE(res.ok, res.detail);
    CHECK(res.checked == x.size() + m->num_parameters());
  }
}

TEST_CASE("Conv2d: gradients where padding exceeds the kernel's reach (whole rows and columns of padding)") {
  heed::Generator g(12);
  heed::Conv2d<double> c(2, 2, {3, 2}, {.input = {3, 4}, .stride = {2, 3}, .padding = {3, 2}, .dilation = {1, 3}}, g);
  CHECK(c.output_hw() == std::pair<Index, Index>{4, 2});  // (3+6-2-1)/2+1, (4+4-3-1)/3+1
  const auto res = heed::testing::check_module(c, randn(2, 2 * 12, 6));
  CHECK_MESSAGE(res.ok, res.detail);
}

TEST_CASE("Conv2d in a Sequential: output_size() sizes the next layer; names and gradients follow") {
  heed::Generator g(4);
  heed::Conv2d<double> conv(1, 3, 3, {.input = {6, 6}, .stride = 2, .padding = 1}, g);
  const Index features = conv.output_size();  // 3 * 3 * 3
  heed::Sequential<double> net(std::move(conv), heed::Tanh<double>(), heed::Linear<double>(features, 4, true, g));
  std::vector<std::string> names;
  for (auto& p : net.parameters()) names.push_back(p.name);
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  const auto res = heed::testing::check_module(net, randn(3, 36, 8));
  CHECK_MESSAGE(res.ok, res.detail);
}

TEST_CASE("Conv2d: shapes, parameters, output size and repr") {
  heed::Generator g(1);
  heed::Conv2d<double> c(1, 32, 3, {.input = {28, 28}}, g);
  CHECK(c.output_hw() == std::pair<Index, Index>{26, 26});
  CHECK(c.output_size() == 32 * 26 * 26);
  CHECK(c.weight().rows() == 32);
  CHECK(c.weight().cols() == 9);
  auto ps = c.parameters();
  REQUIRE(ps.size() == 2);
  CHECK(ps[0].name == "weight");
  CHECK(ps[0].shape == std::vector<Index>{32, 1, 3, 3});
  CHECK(ps[1].shape == std::vector<Index>{32});
  CHECK(c.weight().cwiseAbs().maxCoeff() <= 1.0 / 3.0);  // U(+-1/sqrt(9))
  CHECK(c.bias().cwiseAbs().maxCoeff() <= 1.0 / 3.0);
  CHECK(c.weight().cwiseAbs().maxCoeff() > 0.25);
  CHECK(c.name() == "Conv2d");
  CHECK(c.extra_repr() == "1, 32, kernel_size=(3, 3), stride=(1, 1)");
  heed::Conv2d<double> d(4, 6, {3, 2}, {.input = {9, 9}, .stride = {2, 1}, .padding = {1, 0}, .dilation = 2, .groups = 2, .bias = false}, g);
  CHECK(d.extra_repr() ==
        "4, 6, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(2, 2), groups=2, bias=false");
  CHECK(d.parameters()[0].shape == std::vector<Index>{6, 2, 3, 2});
  CHECK(d.output_hw() == std::pair<Index, Index>{4, 7});  // (9+2-4-1)/2+1, (9-2-1)/1+1
  heed::Conv2d<double> s(2, 3, {4, 2}, {.input = {6, 5}, .padding = "same"}, g);
  CHECK(s.output_hw() == std::pair<Index, Index>{6, 5});
  CHECK(s.geometry().pt == 1);  // total 3: 1 on top, 2 at the bottom, as PyTorch
  CHECK(s.geometry().pb == 2);
  CHECK(s.extra_repr() == "2, 3, kernel_size=(4, 2), stride=(1, 1), padding=same");
  heed::Conv1d<double> c1(3, 4, 3, {.input = 11, .stride = 2}, g);
  CHECK(c1.name() == "Conv1d");
  CHECK(c1.output_length() == 5);
  CHECK(c1.parameters()[0].shape == std::vector<Index>{4, 3, 3});
  CHECK(c1.extra_repr() == "3, 4, kernel_size=(3,), stride=(2,)");
}

TEST_CASE("Conv2d: backward accumulates; requires_input_grad(false) returns an empty dx, same parameter grads") {
  heed::Generator g(3);
  heed::Conv2d<double> c(4, 6, 3, {.input = {6, 6}, .stride = 2, .padding = 1, .groups = 2}, g);
  const Matrix<double> x = randn(3, 4 * 36, 1);
  const Matrix<double> dy = randn(3, c.output_size(), 2);
  c.zero_grad();
  c.forward(x);
  const Matrix<double> dx = c.backward(dy);
  const auto ps = c.parameters();
  const Matrix<double> dW1 = *ps[0].grad, db1 = *ps[1].grad;
  c.forward(x);
  c.backward(dy);
  CHECK((*ps[0].grad - 2 * dW1).cwiseAbs().maxCoeff() <= 1e-12);
  CHECK((*ps[1].grad - 2 * db1).cwiseAbs().maxCoeff() <= 1e-12);

  c.zero_grad();
  c.requires_input_grad(false);
  c.forward(x);
  const Matrix<double>& none = c.backward(dy);
  CHECK(none.rows() == 0);
  CHECK(*ps[0].grad == dW1);
  CHECK(*ps[1].grad == db1);
  c.requires_input_grad(true);
  c.forward(x);
  CHECK(c.backward(dy) == dx);
}

TEST_CASE_TEMPLATE("Conv2d/Conv1d match PyTorch: output and gradients of input, weight, bias", T, float, double) {
  for (const auto& name : kConfigs) {
    const std::string path = fixture::path<T>(name);
    if (path.empty()) continue;  // float32: some configs only
    CAPTURE(path);
    heed::Generator g(5);
    auto m = make<T>(name, g);
    const auto keys = heed::load_weights(*m, path, {.rename = fixture::skip_reserved});
    CHECK(keys.missing_keys.empty());
    heed::io::Safetensors f(path);
    const Matrix<T> x = f.matrix<T>("__input__.x");   // (N, C, H, W) as (N, C*H*W)
    const Matrix<T> dy = f.matrix<T>("__input__.dy");
    m->zero_grad();
    fixture::compare(f, "y", m->forward(x));
    fixture::compare(f, "dx", m->backward(dy));
    const auto ps = m->parameters();
    fixture::compare(f, "dweight", *ps[0].grad);
    if (f.contains("bias")) {
      REQUIRE(ps.size() == 2);
      fixture::compare(f, "dbias", *ps[1].grad);
    } else {
      CHECK(ps.size() == 1);
    }
    // save_safetensors writes PyTorch's shapes back: weight 4-D (3-D for Conv1d).
    const std::string out = (std::filesystem::temp_directory_path() / ("heed_conv_" + name + ".safetensors")).string();
    heed::save_safetensors(*m, out);
    heed::io::Safetensors back(out);
    CHECK(back.shape("weight") == f.shape("weight"));
    std::filesystem::remove(out);
  }
}

TEST_CASE("Conv2d/Conv1d vs PyTorch: the largest differences (printed)") {
  fixture::print_worst("conv");
}

TEST_CASE_TEMPLATE("Conv2d/Conv1d refuse bad arguments and inputs, naming the module and the shapes", T, float,
                   double) {
  heed::Generator g(1);
  heed::Conv2d<T> c(4, 6, 3, {.input = {5, 9}}, g);
  const Matrix<T> x = Matrix<T>::Zero(2, 4 * 5 * 9 - 1);
  CHECK_THROWS_WITH_AS(c.forward(x), "Conv2d: input expected (*, 180) = (*, 4*5*9), got (2, 179)", heed::ShapeError);
  c.forward(Matrix<T>::Zero(2, 180));
  CHECK_THROWS_WITH_AS(c.backward(Matrix<T>::Zero(2, 5)), "Conv2d: gradient expected (2, 126), got (2, 5)",
                       heed::ShapeError);
  using O = heed::Conv2dOptions;
  auto conv = [&](Index in, Index out, heed::Size2 k, const O& o) { heed::Conv2d<T> m(in, out, k, o, g); };
  CHECK_THROWS_WITH_AS(conv(4, 6, 3, {.input = {5, 5}, .groups = 3}),
                       "Conv2d: groups 3 must divide in_channels 4 and out_channels 6", heed::ValueError);
  CHECK_THROWS_WITH_AS(conv(4, 6, 3, {.input = {5, 5}, .stride = 2, .padding = "same"}),
                       "Conv2d: padding=\"same\" is not supported for strided convolutions, got stride (2, 2)",
                       heed::ValueError);
  CHECK_THROWS_WITH_AS(conv(4, 6, 3, {.input = {5, 5}, .padding = "full"}),
                       "Conv2d: padding must be a number, \"same\" or \"valid\", got \"full\"", heed::ValueError);
  CHECK_THROWS_WITH_AS(conv(0, 6, 3, {.input = {5, 5}}),
                       "Conv2d: in_channels and out_channels must be positive, got 0 and 6", heed::ValueError);
  CHECK_THROWS_WITH_AS(conv(4, 6, {3, 0}, {.input = {5, 5}}), "Conv2d: kernel_size must be positive, got (3, 0)",
                       heed::ValueError);
  CHECK_THROWS_WITH_AS(conv(4, 6, 3, {.input = {5, 5}, .stride = {1, -1}}),
                       "Conv2d: stride must be positive, got (1, -1)", heed::ValueError);
  CHECK_THROWS_WITH_AS(conv(4, 6, 3, {.input = {5, 5}, .dilation = 0}),
                       "Conv2d: dilation must be positive, got (0, 0)", heed::ValueError);
  CHECK_THROWS_WITH_AS(conv(4, 6, 3, {.input = {5, 5}, .padding = -1}),
                       "Conv2d: padding must be non-negative, got (-1, -1)", heed::ValueError);
  CHECK_THROWS_WITH_AS(conv(4, 6, 3, {}), "Conv2d: input size must be positive, got (0, 0) (set the options' .input)",
                       heed::ValueError);
  CHECK_THROWS_WITH_AS(conv(4, 6, 3, {.input = {5, 5}, .padding_mode = "reflect"}),
                       "Conv2d: padding_mode 'reflect' is not supported (only 'zeros')", heed::ValueError);
  CHECK_THROWS_WITH_AS(conv(4, 6, 3, {.input = {2, 5}}),
                       "Conv2d: output size (0, 3) is too small for input (2, 5) with kernel_size=(3, 3), "
                       "padding=(0, 0) (total), dilation=(1, 1), stride=(1, 1)",
                       heed::ShapeError);
  CHECK_THROWS_WITH_AS(conv(4, 6, 3, {.input = {5, 5}, .dilation = 3}),
                       "Conv2d: output size (0, 0) is too small for input (5, 5) with kernel_size=(3, 3), "
                       "padding=(0, 0) (total), dilation=(3, 3), stride=(1, 1)",
                       heed::ShapeError);
  heed::Conv1d<T> c1(3, 4, 3, {.input = 8}, g);
  CHECK_THROWS_WITH_AS(c1.forward(Matrix<T>::Zero(1, 23)), "Conv1d: input expected (*, 24) = (*, 3*8), got (1, 23)",
                       heed::ShapeError);
  CHECK_THROWS_WITH_AS((heed::Conv1d<T>(3, 4, 5, {.input = 3}, g)),
                       "Conv1d: output size (0,) is too small for input (3,) with kernel_size=(5,), padding=(0,) "
                       "(total), dilation=(1,), stride=(1,)",
                       heed::ShapeError);
  CHECK_THROWS_WITH_AS((heed::Conv1d<T>(3, 4, 3, {.input = 8, .stride = 2, .padding = "same"}, g)),
                       "Conv1d: padding=\"same\" is not supported for strided convolutions, got stride (2,)",
                       heed::ValueError);
  CHECK_THROWS_AS(c1.backward(Matrix<T>::Zero(1, 24)), heed::ValueError);  // before forward
}

// A batch of 8 runs samples (chunks in backward) on different threads; a batch of 1 runs on one
// thread with Eigen's products kept serial (dW's depth, 400 positions, is one Eigen would split
// differently when threading the product itself).
TEST_CASE("Conv2d: output and gradients are bit-identical with 1 and 2 threads (batches of 8 and 1)") {
  const int saved = Eigen::nbThreads();
  for (Index N : {8, 1}) {
    CAPTURE(N);
    auto run = [N](int threads) {
      Eigen::setNbThreads(threads);
      heed::Generator g(9);
      heed::Conv2d<double> c(4, 16, 3, {.input = {20, 20}, .padding = 1}, g);
      const Matrix<double> x = randn(N, 4 * 400, 3);
      const Matrix<double> dy = randn(N, c.output_size(), 4);
      std::vector<Matrix<double>> out{c.forward(x)};
      out.push_back(c.backward(dy));
      for (auto& p : c.parameters()) out.push_back(*p.grad);
      return out;
    };
    const auto one = run(1), two = run(2);
    REQUIRE(one.size() == two.size());
    for (std::size_t i = 0; i < one.size(); ++i) CHECK(one[i] == two[i]);
  }
  Eigen::setNbThreads(saved);
}
