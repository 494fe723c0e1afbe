// BatchNorm1d/2d, Dropout2d and Flatten: finite-difference gradients (training and eval),
// PyTorch parity on conv_reference.py's bn* fixtures (outputs, gradients and the running
// statistics after the step), the int64 num_batches_tracked in and out of safetensors, and
// bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <heed/heed.hpp>
#include <heed/testing/gradcheck.hpp>

#include "common/errors.hpp"
#include "common/helpers.hpp"
#include "conv/fixture.hpp"

using heed::Index;
using heed::Matrix;
using heed_test::randn;
namespace fixture = heed_test::fixture;

namespace {

// conv_reference.py's bn* CONFIGS, line for line: (module, eval mode).
template <typename T>
std::pair<std::unique_ptr<heed::detail::BatchNormCore<T>>, bool> make(const std::string& name) {
  using BN2 = heed::BatchNorm2d<T>;
  using BN1 = heed::BatchNorm1d<T>;
  if (name == "bn2d") return {std::make_unique<BN2>(3), false};
  if (name == "bn2d_eval") return {std::make_unique<BN2>(3), true};
  if (name == "bn2d_cumulative") return {std::make_unique<BN2>(2, heed::BatchNormOptions{.eps = 1e-3, .momentum = std::nullopt}), false};
  if (name == "bn2d_noaffine") return {std::make_unique<BN2>(2, heed::BatchNormOptions{.affine = false}), false};
  if (name == "bn2d_nostats_eval")
    return {std::make_unique<BN2>(2, heed::BatchNormOptions{.track_running_stats = false}), true};
  if (name == "bn1d") return {std::make_unique<BN1>(4), false};
  if (name == "bn1d_seq") return {std::make_unique<BN1>(3, heed::BatchNormOptions{.momentum = 0.3}), false};
  FAIL("unknown config " << name);
  return {};
}

const std::vector<std::string> kConfigs = {"bn2d",          "bn2d_eval", "bn2d_cumulative", "bn2d_noaffine",
                                           "bn2d_nostats_eval", "bn1d",  "bn1d_seq"};

// Random running statistics, weight and bias, as conv_reference.py's randomized().
void randomize(heed::detail::BatchNormCore<double>& bn, std::uint64_t seed) {
  const Index C = bn.num_features();
  bn.weight() = randn(1, C, seed);
  bn.bias() = randn(1, C, seed + 1);
  bn.running_mean() = randn(1, C, seed + 2);
  bn.running_var() = randn(1, C, seed + 3).cwiseAbs().array() + 0.5;
}

}  // namespace

TEST_CASE("BatchNorm1d/2d: finite-difference gradients in training and eval mode, every option") {
  struct Case {
    const char* label;
    std::unique_ptr<heed::detail::BatchNormCore<double>> bn;
    Index cols;
    bool eval;
  };
  std::vector<Case> cases;
  cases.push_back({"2d train", std::make_unique<heed::BatchNorm2d<double>>(3), 3 * 12, false});
  cases.push_back({"2d eval", std::make_unique<heed::BatchNorm2d<double>>(3), 3 * 12, true});
  cases.push_back({"2d no affine", std::make_unique<heed::BatchNorm2d<double>>(2, heed::BatchNormOptions{.affine = false}), 2 * 6, false});
  cases.push_back({"2d no stats, eval",
                   std::make_unique<heed::BatchNorm2d<double>>(2, heed::BatchNormOptions{.track_running_stats = false}), 2 * 6, true});
  cases.push_back({"1d (N, C)", std::make_unique<heed::BatchNorm1d<double>>(5), 5, false});
  cases.push_back({"1d (N, C*L)", std::make_unique<heed::BatchNorm1d<double>>(2), 2 * 7, false});
  std::uint64_t seed = 20;
  for (auto& c : cases) {
    CAPTURE(c.label);
    randomize(*c.bn, seed += 5);
    if (c.eval) c.bn->eval();
    const Matrix<double> x = randn(4, c.cols, seed + 4);
    const auto res = heed::testing::check_module(*c.bn, x);
    CHECK_MESSAGE(res.ok, res.detail);
    CHECK(res.checked == x.size() + c.bn->num_parameters());
  }
}

TEST_CASE_TEMPLATE("BatchNorm1d/2d match PyTorch: output, gradients and the running statistics after the step", T,
                   float, double) {
  for (const auto& name : kConfigs) {
    const std::string path = fixture::path<T>(name);
    if (path.empty()) continue;  // float32: some configs only
    CAPTURE(path);
    auto [bn, eval] = make<T>(name);
    // Strict: weight, bias, running_mean, running_var and the int64 num_batches_tracked.
    heed::load_weights(*bn, path, {.rename = fixture::skip_reserved});
    heed::io::Safetensors f(path);
    if (eval) bn->eval();
    const Matrix<T> x = f.matrix<T>("__input__.x");  // (N, C, H, W) as (N, C*H*W)
    const Matrix<T> dy = f.matrix<T>("__input__.dy");
    bn->zero_grad();
    fixture::compare(f, "y", bn->forward(x));
    fixture::compare(f, "dx", bn->backward(dy));
    for (auto& p : bn->parameters()) fixture::compare(f, "d" + p.name, *p.grad);
    for (auto& b : bn->buffers()) {
      if (!b.count) fixture::compare(f, b.name, *b.value);  // running_mean, running_var
      else CHECK(f.integers("__output__." + b.name) == std::vector<std::int64_t>{bn->num_batches_tracked()});
    }
    if (f.contains("num_batches_tracked")) CHECK(bn->num_batches_tracked() == (eval ? 3 : 4));  // 3, + this step
    CHECK(bn->parameters().size() == (f.contains("weight") ? 2u : 0u));
    CHECK(bn->buffers().size() == (f.contains("running_mean") ? 3u : 0u));
  }
}

TEST_CASE("BatchNorm vs PyTorch: the largest differences (printed)") {
  fixture::print_worst("BatchNorm");
}

TEST_CASE("BatchNorm2d: num_batches_tracked is PyTorch's 0-D int64 in safetensors, and comes back") {
  heed::BatchNorm2d<float> bn(3);
  const Matrix<float> x = randn(4, 3 * 5, 2).cast<float>();
  for (int i = 0; i < 5; ++i) bn.forward(x);
  CHECK(bn.num_batches_tracked() == 5);
  const auto bufs = bn.buffers();
  REQUIRE(bufs.size() == 3);
  CHECK(heed::torch_shape(bufs[2]) == std::vector<Index>{});
  CHECK(heed::torch_shape(bufs[0]) == std::vector<Index>{3});
  const std::string out = (std::filesystem::temp_directory_path() / "heed_bn_count.safetensors").string();
  heed::save_safetensors(bn, out);
  {
    heed::io::Safetensors f(out);
    CHECK(f.info("num_batches_tracked").dtype == heed::io::Dtype::I64);
    CHECK(f.shape("num_batches_tracked").empty());
    CHECK(f.integers("num_batches_tracked") == std::vector<std::int64_t>{5});
    CHECK(f.info("running_var").dtype == heed::io::Dtype::F32);
    CHECK(f.shape("running_var") == std::vector<std::uint64_t>{3});
  }
  heed::BatchNorm2d<float> back(3);
  heed::load_weights(back, out);
  CHECK(back.num_batches_tracked() == 5);
  CHECK(back.running_mean() == bn.running_mean());
  CHECK(back.running_var() == bn.running_var());
  // heed's own format and state_dict keep it too.
  heed::BatchNorm2d<float> again(3);
  again.load_state_dict(bn.state_dict());
  CHECK(again.num_batches_tracked() == 5);
  // A count too large to be exact in float is refused, and the model is left as it was.
  const std::int64_t big = (std::int64_t{1} << 24) + 1;
  std::vector<heed::io::SafetensorsEntry> entries;
  for (auto& p : bn.parameters()) entries.push_back(heed::io::safetensors_entry(p.name, *p.value, {3}));
  entries.push_back(heed::io::safetensors_entry("running_mean", bn.running_mean(), {3}));
  entries.push_back(heed::io::safetensors_entry("running_var", bn.running_var(), {3}));
  entries.push_back({"num_batches_tracked", heed::io::Dtype::I64, {}, {reinterpret_cast<const char*>(&big), 8}});
  heed::io::save_safetensors(out, entries);
  const std::string msg = heed_test::error_of<heed::ValueError>([&] { heed::load_weights(again, out); });
  CHECK(msg.find("'num_batches_tracked' is a count, got I64 16777217, expected a whole number in [0, 2^24] (exact in "
                 "float)") != std::string::npos);
  CHECK(again.num_batches_tracked() == 5);
  heed::BatchNorm2d<double> wide(3);
  heed::load_weights(wide, out);  // exact in double
  CHECK(wide.num_batches_tracked() == big);
  // A float tensor for the count loads when it is a whole number >= 0 (PyTorch would copy it
  // in); 2.5, -1, NaN and inf are refused, naming the value.
  for (const double v : {7.0, 2.5, -1.0, std::nan(""), HUGE_VAL}) {
    CAPTURE(v);
    entries.back() = {"num_batches_tracked", heed::io::Dtype::F64, {}, {reinterpret_cast<const char*>(&v), 8}};
    heed::io::save_safetensors(out, entries);
    if (v == 7.0) {
      heed::load_weights(again, out);
      CHECK(again.num_batches_tracked() == 7);
    } else {
      const std::string m = heed_test::error_of<heed::ValueError>([&] { heed::load_weights(again, out); });
      CHECK(m.find("'num_batches_tracked' is a count, got F64 ") != std::string::npos);
      CHECK(again.num_batches_tracked() == 7);  // unchanged
    }
  }
  // A count that is not a whole number is not written either.
  again.load_state_dict(bn.state_dict());
  (*again.buffers()[2].value)(0, 0) = 2.5f;
  CHECK_THROWS_WITH_AS(heed::save_safetensors(again, out),
                       ("save_safetensors: " + out + ": 'num_batches_tracked' is a count, got 2.5 (expected a whole "
                        "number >= 0)").c_str(),
                       heed::ValueError);
  std::filesystem::remove(out);
}

TEST_CASE("BatchNorm2d: a torch.save state_dict (num_batches_tracked a LongStorage) loads as the safetensors one") {
  const std::string dir = std::string(HEED_TEST_SOURCE_DIR) + "/conv/data/";
  heed::BatchNorm2d<double> a(3), b(3);
  heed::load_weights(a, dir + "bn2d_f64.pt");
  heed::load_weights(b, dir + "bn2d_f64.safetensors", {.rename = fixture::skip_reserved});
  const auto da = a.state_dict(), db = b.state_dict();
  CHECK(da.size() == 5);
  for (const auto& entry : da) {
    const std::string& key = entry.first;
    CAPTURE(key);
    REQUIRE(db.find(key) != nullptr);
    CHECK(*db.find(key) == entry.second);
  }
  CHECK(a.num_batches_tracked() == 3);
}

TEST_CASE("BatchNorm2d: running statistics as PyTorch defines them; eval uses them") {
  heed::BatchNorm2d<double> bn(2, {.momentum = std::nullopt});  // cumulative average
  std::vector<Matrix<double>> xs;
  Matrix<double> mean_sum = Matrix<double>::Zero(1, 2), var_sum = Matrix<double>::Zero(1, 2);
  for (int i = 0; i < 3; ++i) {
    xs.push_back(randn(3, 2 * 4, 40 + i).array() * (i + 1) + i);
    bn.forward(xs.back());
    for (Index c = 0; c < 2; ++c) {
      const auto blk = xs.back().middleCols(c * 4, 4).array();
      const double mu = blk.mean();
      mean_sum(0, c) += mu;
      var_sum(0, c) += (blk - mu).square().sum() / 11.0;  // unbiased, M = 12
    }
  }
  CHECK(bn.num_batches_tracked() == 3);
  CHECK((bn.running_mean() - mean_sum / 3).cwiseAbs().maxCoeff() <= 1e-12);
  CHECK((bn.running_var() - var_sum / 3).cwiseAbs().maxCoeff() <= 1e-12);
  bn.eval();
  const Matrix<double> x = randn(2, 8, 50);
  const Matrix<double> y = bn.forward(x);
  for (Index c = 0; c < 2; ++c) {
    const Matrix<double> want =
        (x.middleCols(c * 4, 4).array() - bn.running_mean()(0, c)) / std::sqrt(bn.running_var()(0, c) + 1e-5);
    CHECK((y.middleCols(c * 4, 4) - want).cwiseAbs().maxCoeff() <= 1e-12);
  }
  const Matrix<double> rm = bn.running_mean();
  bn.forward(x);  // eval: no update
  CHECK(bn.running_mean() == rm);
  CHECK(bn.num_batches_tracked() == 3);
  bn.reset_running_stats();
  CHECK(bn.running_mean().isZero());
  CHECK(bn.running_var().isOnes());
  CHECK(bn.num_batches_tracked() == 0);
  CHECK(bn.extra_repr() == "2, eps=1e-05, momentum=nullopt, affine=true, track_running_stats=true");
  CHECK(heed::BatchNorm1d<float>(8).extra_repr() == "8, eps=1e-05, momentum=0.1, affine=true, track_running_stats=true");
  CHECK(heed::BatchNorm1d<float>(8).name() == "BatchNorm1d");
}

TEST_CASE_TEMPLATE("BatchNorm, Dropout2d, Flatten refuse bad arguments and inputs, naming the module and the shapes", T,
                   float, double) {
  heed::BatchNorm2d<T> bn(3);
  CHECK_THROWS_WITH_AS(bn.forward(Matrix<T>::Zero(2, 10)),
                       "BatchNorm2d: input expected (N, 3*S) with N, S >= 1 (num_features 3), got (2, 10)",
                       heed::ShapeError);
  CHECK_THROWS_AS(bn.backward(Matrix<T>::Zero(2, 9)), heed::ValueError);  // before forward
  CHECK_THROWS_WITH_AS(heed::BatchNorm1d<T>(4).forward(Matrix<T>::Zero(1, 4)),
                       "BatchNorm1d: expected more than 1 value per channel when using the batch's statistics "
                       "(training, or track_running_stats=false), got input (1, 4) (1 per channel)",
                       heed::ValueError);
  heed::BatchNorm1d<T> nostats(4, {.track_running_stats = false});
  nostats.eval();  // still the batch's statistics, as PyTorch
  CHECK_THROWS_AS(nostats.forward(Matrix<T>::Zero(1, 4)), heed::ValueError);
  CHECK_THROWS_AS(nostats.forward(Matrix<T>::Zero(0, 4)), heed::ShapeError);
  // A refused input leaves the last forward's state: backward still matches that forward.
  heed::BatchNorm1d<T> keep(2);
  keep.eval();
  const Matrix<T> xk = Matrix<T>::Ones(1, 2), dyk = Matrix<T>::Ones(1, 2);
  keep.forward(xk);
  const Matrix<T> dx_eval = keep.backward(dyk);
  keep.train();
  CHECK_THROWS_AS(keep.forward(xk), heed::ValueError);
  CHECK(keep.backward(dyk) == dx_eval);
  heed::BatchNorm1d<T> one(4);
  one.eval();
  CHECK(one.forward(Matrix<T>::Ones(1, 4)).isApprox(Matrix<T>::Constant(1, 4, static_cast<T>(1 / std::sqrt(1 + 1e-5)))));
  bn.forward(Matrix<T>::Ones(2, 9));
  CHECK_THROWS_WITH_AS(bn.backward(Matrix<T>::Zero(2, 8)), "BatchNorm2d: gradient expected (2, 9), got (2, 8)",
                       heed::ShapeError);
  CHECK_THROWS_WITH_AS(heed::BatchNorm2d<T>(0), "BatchNorm2d: num_features must be positive, got 0", heed::ValueError);
  CHECK_THROWS_WITH_AS(heed::BatchNorm2d<T>(2, {.eps = 0}), "BatchNorm2d: eps must be positive, got 0", heed::ValueError);
  CHECK_THROWS_WITH_AS(heed::BatchNorm2d<T>(2, {.momentum = 1.5}),
                       "BatchNorm2d: momentum must be in [0, 1] or nullopt, got 1.5", heed::ValueError);

  heed::Dropout2d<T> d(0.5, 4);
  CHECK_THROWS_WITH_AS(d.forward(Matrix<T>::Zero(2, 10)),
                       "Dropout2d: input expected (N, 4*S) with S >= 1 (channels 4), got (2, 10)", heed::ShapeError);
  CHECK_THROWS_AS(d.backward(Matrix<T>::Zero(2, 8)), heed::ValueError);  // before forward
  d.forward(Matrix<T>::Zero(2, 8));
  CHECK_THROWS_WITH_AS(d.backward(Matrix<T>::Zero(2, 4)), "Dropout2d: gradient expected (2, 8), got (2, 4)",
                       heed::ShapeError);
  CHECK_THROWS_WITH_AS(heed::Dropout2d<T>(1.0, 4), "Dropout2d: p must be in [0, 1), got 1.000000", heed::ValueError);
  CHECK_THROWS_WITH_AS(heed::Dropout2d<T>(0.5, 0), "Dropout2d: channels must be positive, got 0", heed::ValueError);

  heed::Flatten<T> fl;
  CHECK_THROWS_AS(fl.backward(Matrix<T>::Zero(2, 8)), heed::ValueError);  // before forward
  fl.forward(Matrix<T>::Zero(2, 8));
  CHECK_THROWS_WITH_AS(fl.backward(Matrix<T>::Zero(2, 7)), "Flatten: gradient expected (2, 8), got (2, 7)",
                       heed::ShapeError);
}

TEST_CASE("Dropout2d: whole feature maps dropped, the rest scaled by 1/(1-p); backward uses the same mask; eval is the identity") {
  heed::Dropout2d<double> d(0.25, 8, 123);
  const Index S = 6, N = 200;
  const Matrix<double> x = randn(N, 8 * S, 3).array() + 3.0;  // no zeros
  const Matrix<double> y = d.forward(x);
  const Matrix<double> dy = randn(N, 8 * S, 4);
  const Matrix<double> dx = d.backward(dy);
  Index dropped = 0;
  for (Index n = 0; n < N; ++n)
    for (Index c = 0; c < 8; ++c) {
      const auto yc = y.row(n).segment(c * S, S), xc = x.row(n).segment(c * S, S);
      const auto dxc = dx.row(n).segment(c * S, S), dyc = dy.row(n).segment(c * S, S);
      if (yc.isZero(0)) {
        ++dropped;
        CHECK(dxc.isZero(0));
      } else {
        CHECK((yc - xc / 0.75).cwiseAbs().maxCoeff() <= 1e-12);
        CHECK((dxc - dyc / 0.75).cwiseAbs().maxCoeff() <= 1e-12);
      }
    }
  // 1600 maps, p = 0.25: 400 expected, sd 17.
  CHECK(dropped > 330);
  CHECK(dropped < 470);
  d.eval();
  CHECK(d.forward(x) == x);
  CHECK(d.backward(dy) == dy);
  CHECK(d.extra_repr() == "p=0.25, channels=8");
  // Its generator is in the registry, so a checkpoint restores the stream.
  heed::Sequential<double> net(heed::Dropout2d<double>(0.5, 2));
  CHECK(net.generators().size() == 1);
}

TEST_CASE("Flatten keeps a ported nn.Sequential's indices; gradients pass through") {
  heed::Generator g(6);
  heed::Conv2d<double> conv(1, 2, 3, {.input = {5, 5}}, g);
  const Index features = conv.output_size();
  heed::Sequential<double> net(std::move(conv), heed::BatchNorm2d<double>(2), heed::Tanh<double>(),
                               heed::Flatten<double>(), heed::Linear<double>(features, 3, true, g));
  std::vector<std::string> names;
  for (auto& p : net.parameters()) names.push_back(p.name);
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"});
  std::vector<std::string> bufs;
  for (auto& b : net.buffers()) bufs.push_back(b.name);
  CHECK(bufs == std::vector<std::string>{"1.running_mean", "1.running_var", "1.num_batches_tracked"});
  const auto res = heed::testing::check_module(net, randn(3, 25, 8).array() + 0.3);
  CHECK_MESSAGE(res.ok, res.detail);
  heed::Flatten<double> fl;
  const Matrix<double> x = randn(2, 5, 1);
  CHECK(fl.forward(x) == x);
  CHECK(fl.backward(x) == x);
  CHECK(fl.extra_repr() == "start_dim=1, end_dim=-1");
}
