// The module registry (core/module.hpp): names, modes, duplicates, state_dict, summary.
#include <doctest/doctest.h>

#include <heed/heed.hpp>
#include <sstream>

#include "common/helpers.hpp"

using heed::Index;
using heed::Matrix;
using heed_test::randn;

namespace {

// Three levels: Outer -> Middle -> Inner -> Dropout, each a user composite.
struct Inner : heed::ModuleBase<double> {
  heed::Linear<double> fc{4, 3};
  heed::Dropout<double> drop{0.5, 7};
  heed::Children<double> children() override { return {{"fc", &fc}, {"drop", &drop}}; }
  std::string name() const override { return "Inner"; }
};
struct Middle : heed::ModuleBase<double> {
  Inner inner;
  heed::LayerNorm<double> norm{3};
  heed::Children<double> children() override { return {{"inner", &inner}, {"norm", &norm}}; }
  std::string name() const override { return "Middle"; }
};
struct Outer : heed::ModuleBase<double> {
  Middle mid;
  heed::Linear<double> head{3, 2};
  heed::Children<double> children() override { return {{"mid", &mid}, {"head", &head}}; }
  std::string name() const override { return "Outer"; }
};

// Children chosen at run time, to provoke the registry's refusals.
struct Broken : heed::ModuleBase<double> {
  heed::Linear<double> a{2, 2}, b{2, 2};
  heed::Children<double> kids;
  heed::Children<double> children() override { return kids; }
  std::string name() const override { return "Broken"; }
};

}  // namespace

TEST_CASE("registry: nested PyTorch names, named_modules, num_parameters") {
  Outer m;
  std::vector<std::string> names;
  for (auto& p : m.parameters()) names.push_back(p.name);
  CHECK(names == std::vector<std::string>{"mid.inner.fc.weight", "mid.inner.fc.bias",
                                          "mid.norm.weight", "mid.norm.bias", "head.weight",
                                          "head.bias"});
  std::vector<std::string> paths;
  for (auto& [path, mod] : m.named_modules()) paths.push_back(path + ":" + mod->name());
  CHECK(paths == std::vector<std::string>{":Outer", "mid:Middle", "mid.inner:Inner",
                                          "mid.inner.fc:Linear", "mid.inner.drop:Dropout",
                                          "mid.norm:LayerNorm", "head:Linear"});
  CHECK(m.num_parameters() == 4 * 3 + 3 + 3 + 3 + 3 * 2 + 2);
  // zero_grad reaches the deepest parameter
  m.mid.inner.fc.parameters()[0].grad->setOnes();
  m.zero_grad();
  CHECK(m.mid.inner.fc.parameters()[0].grad->isZero());
}

TEST_CASE("registry: eval() reaches a Dropout three levels deep, train() brings it back") {
  Outer m;
  const Matrix<double> x = randn(5, 4, 1);
  m.eval();
  CHECK_FALSE(m.mid.inner.drop.training());
  CHECK_FALSE(m.mid.norm.training());
  const Matrix<double> h = m.mid.inner.fc.forward(x);
  CHECK(m.mid.inner.drop.forward(h) == h);  // identity in eval mode
  m.train();
  CHECK(m.mid.inner.drop.training());
  CHECK(m.mid.inner.drop.forward(h) != h);
}

TEST_CASE("registry: the module is a value: a moved or copied composite registers its own members") {
  Outer a;
  Outer b = a;  // copy: b's names point at b's tensors
  b.head.weight().setZero();
  CHECK_FALSE(a.head.weight().isZero());
  for (auto& p : b.parameters())
    if (p.name == "head.weight") CHECK(p.value == &b.head.weight());
  Outer c = std::move(b);
  for (auto& p : c.parameters())
    if (p.name == "head.weight") CHECK(p.value == &c.head.weight());
}

TEST_CASE("registry: duplicate names, null, shared and cyclic children are refused") {
  Broken m;
  m.kids = {{"x", &m.a}, {"x", &m.b}};
  CHECK_THROWS_WITH_AS(m.parameters(), "Broken: Broken has two children named 'x'", heed::ValueError);
  m.kids = {{"x", &m.a}, {"y", &m.a}};
  CHECK_THROWS_WITH_AS(m.named_modules(),
                       "Broken: module 'y' (Linear) is registered more than once; give each "
                       "position its own module",
                       heed::ValueError);
  m.kids = {{"self", &m}};
  CHECK_THROWS_AS(m.named_modules(), heed::ValueError);
  m.kids = {{"x", nullptr}};
  CHECK_THROWS_WITH_AS(m.named_modules(), "Broken: child 'x' is null", heed::ValueError);
  m.kids = {{"", &m.a}, {"", &m.b}};  // two transparent children: their names collide
  CHECK_THROWS_WITH_AS(m.parameters(), "Broken: two tensors named 'weight'", heed::ValueError);
  m.kids = {{"", &m.a}};  // transparent: a's tensors are Broken's own
  CHECK(m.parameters()[0].name == "weight");
  m.eval();
  CHECK_FALSE(m.a.training());
  // a child named "fc" with "weight" and another named "fc.weight"-like path collide by name
  heed::Sequential<double> inner;
  inner.emplace<heed::Linear<double>>(2, 2);
  struct Clash : heed::ModuleBase<double> {
    heed::Sequential<double>* s;
    heed::Linear<double> l{2, 2};
    heed::Children<double> children() override { return {{"0", &l}, {"x", s}}; }
    std::vector<heed::Parameter<double>> local_parameters() override {
      return {{"0.weight", &w, &dw}};
    }
    Matrix<double> w = Matrix<double>::Zero(1, 1), dw = Matrix<double>::Zero(1, 1);
    std::string name() const override { return "Clash"; }
  } clash;
  clash.s = &inner;
  CHECK_THROWS_WITH_AS(clash.parameters(), "Clash: two tensors named '0.weight'", heed::ValueError);
  CHECK_THROWS_AS(clash.state_dict(), heed::ValueError);
  CHECK_THROWS_AS(heed::save(clash, "/tmp/heed_never_written.heed"), heed::ValueError);
}

TEST_CASE("state_dict: copies of every parameter by name; load_state_dict round trip") {
  Outer a, b;
  b.head.weight().setConstant(3);
  const auto sd = a.state_dict();
  CHECK(sd.size() == 6);
  CHECK(sd.keys().front() == "mid.inner.fc.weight");
  CHECK(sd.at("head.weight") == a.head.weight());
  const auto res = b.load_state_dict(sd);
  CHECK(res.missing_keys.empty());
  CHECK(res.unexpected_keys.empty());
  for (auto& [k, v] : b.state_dict()) CHECK(v == sd.at(k));
  // the dict is a copy: changing the model later does not change it
  b.head.weight().setZero();
  CHECK(sd.at("head.weight") == a.head.weight());
}

TEST_CASE("load_state_dict: every problem listed at once, and the model untouched on error") {
  Outer m;
  const auto before = m.state_dict();
  auto sd = m.state_dict();
  sd.erase("head.bias");                                  // missing
  sd.insert("head.extra", Matrix<double>::Zero(1, 1));    // unexpected
  sd.at("mid.norm.weight") = Matrix<double>::Zero(1, 4);  // shape mismatch
  sd.at("head.weight").setConstant(9);                    // would be loaded if it all passed
  CHECK_THROWS_WITH_AS(m.load_state_dict(sd),
                       "Outer: load_state_dict: missing keys (1): 'head.bias'; unexpected keys "
                       "(1): 'head.extra'; shape mismatches (1): 'mid.norm.weight' expected (1, "
                       "3), got (1, 4); the model is unchanged",
                       heed::ValueError);
  for (auto& [k, v] : m.state_dict()) CHECK(v == before.at(k));
  // non-strict: missing and unexpected keys are reported, but a shape mismatch is an error
  CHECK_THROWS_WITH_AS(m.load_state_dict(sd, {.strict = false}),
                       "Outer: load_state_dict: shape mismatches (1): 'mid.norm.weight' expected "
                       "(1, 3), got (1, 4); the model is unchanged",
                       heed::ShapeError);
  for (auto& [k, v] : m.state_dict()) CHECK(v == before.at(k));
  sd.at("mid.norm.weight") = Matrix<double>::Zero(1, 3);
  const auto res = m.load_state_dict(sd, {.strict = false});
  CHECK(res.missing_keys == std::vector<std::string>{"head.bias"});
  CHECK(res.unexpected_keys == std::vector<std::string>{"head.extra"});
  CHECK(m.head.weight().isApproxToConstant(9));
  CHECK(m.head.bias() == before.at("head.bias"));  // missing: left as it was
  CHECK_THROWS_WITH_AS(sd.insert("head.extra", Matrix<double>()), "StateDict: duplicate key 'head.extra'",
                       heed::ValueError);
}

TEST_CASE("generators: every run-time stream is reachable by module path") {
  heed::Sequential<double> s(heed::Linear<double>(4, 4), heed::Dropout<double>(0.1, 3),
                             heed::SelfAttention<double>(4, 2, 2, {.dropout = 0.2}));
  const auto gs = s.generators();
  REQUIRE(gs.size() == 2);
  CHECK(gs[0].first == "1");
  CHECK(gs[1].first == "2");
  CHECK(gs[0].second == &static_cast<heed::Dropout<double>&>(s[1]).generator());
  // attention without dropout draws nothing at run time: no stream to save
  heed::MultiheadAttention<double> mha(4, 2);
  CHECK(mha.generators().empty());
}

TEST_CASE("MultiheadAttention owns its dropout stream: built from a local generator, it does not dangle") {
  auto make = [] {
    heed::Generator local(5);
    return heed::MultiheadAttention<double>(4, 2, {.dropout = 0.5}, local);
  };
  auto mha = make();  // `local` is gone
  const Matrix<double> x = randn(6, 4, 2);
  const Matrix<double> y1 = mha.forward(x, 2, {.need_weights = true}).output;
  CHECK(y1.allFinite());
  auto again = make();
  CHECK(again.forward(x, 2, {.need_weights = true}).output == y1);  // same seed, same masks
}

TEST_CASE("summary: the tree with types, arguments, shapes and totals; operator<< prints it") {
  Outer m;
  const std::string s = heed::summary(m);
  CHECK(s.find("Outer\n") == 0);
  CHECK(s.find("  (mid): Middle\n") != std::string::npos);
  CHECK(s.find("    (inner): Inner\n") != std::string::npos);
  CHECK(s.find("      (fc): Linear(in_features=4, out_features=3, bias=true)") != std::string::npos);
  CHECK(s.find("15  weight (3, 4), bias (1, 3)") != std::string::npos);
  CHECK(s.find("      (drop): Dropout(p=0.5)\n") != std::string::npos);
  CHECK(s.find("(norm): LayerNorm((3), eps=1e-05, elementwise_affine=true)") != std::string::npos);
  CHECK(s.find("Total params: 29 (0.2 KiB as double)") != std::string::npos);
  std::ostringstream os;
  os << m;
  CHECK(os.str() == s);
  heed::Sequential<float> big(heed::Linear<float>(784, 256), heed::ReLU<float>(),
                              heed::Linear<float>(256, 10));
  const std::string t = heed::summary(big);
  CHECK(t.find("200,960  weight (256, 784), bias (1, 256)") != std::string::npos);
  CHECK(t.find("  (1): ReLU\n") != std::string::npos);
  CHECK(t.find("Total params: 203,530 (795.0 KiB as float)") != std::string::npos);
}

TEST_CASE("Sequential: a shape error names the layer index; requires_input_grad reaches the first") {
  heed::Sequential<double> s(heed::Linear<double>(20, 64), heed::ReLU<double>(),
                             heed::Linear<double>(64, 3));
  CHECK_THROWS_WITH_AS(s.forward(Matrix<double>::Zero(32, 21)),
                       "Sequential[0] (Linear): Linear: input expected (*, 20), got (32, 21)",
                       heed::ShapeError);
  s.forward(Matrix<double>::Zero(32, 20));
  CHECK_THROWS_WITH_AS(s.backward(Matrix<double>::Zero(32, 4)),
                       "Sequential[2] (Linear): Linear: gradient expected (32, 3), got (32, 4)",
                       heed::ShapeError);
  s.requires_input_grad(false);
  CHECK_FALSE(s[0].requires_input_grad());
  CHECK(s[2].requires_input_grad());
  CHECK(s.backward(Matrix<double>::Ones(32, 3)).size() == 0);
}

TEST_CASE("backward before forward says so, for every module") {
  auto msg = [](const std::string& m) { return m + ": backward called before forward"; };
  const Matrix<double> g = Matrix<double>::Zero(2, 3);
  heed::Linear<double> lin(3, 3);
  CHECK_THROWS_WITH_AS(lin.backward(g), msg("Linear").c_str(), heed::ValueError);
  heed::ReLU<double> relu;
  CHECK_THROWS_WITH_AS(relu.backward(g), msg("ReLU").c_str(), heed::ValueError);
  heed::Dropout<double> drop;
  CHECK_THROWS_WITH_AS(drop.backward(g), msg("Dropout").c_str(), heed::ValueError);
  heed::LayerNorm<double> ln(3);
  CHECK_THROWS_WITH_AS(ln.backward(g), msg("LayerNorm").c_str(), heed::ValueError);
  heed::Embedding<double> emb(5, 3);
  CHECK_THROWS_WITH_AS(emb.backward(g), msg("Embedding").c_str(), heed::ValueError);
  heed::MultiheadAttention<double> mha(4, 2);
  CHECK_THROWS_WITH_AS(mha.backward(Matrix<double>::Zero(2, 4)), msg("MultiheadAttention").c_str(),
                       heed::ValueError);
  heed::Attention<double> att;
  CHECK_THROWS_WITH_AS(att.backward(g), msg("Attention<ScaledDotProduct>").c_str(), heed::ValueError);
  heed::FusedAttention<double> fused;
  CHECK_THROWS_WITH_AS(fused.backward(g), msg("FusedAttention").c_str(), heed::ValueError);
  heed::Residual<double> res(heed::Linear<double>(3, 3));
  CHECK_THROWS_WITH_AS(res.backward(g), msg("Residual").c_str(), heed::ValueError);
  heed::MaskedMeanPool<double> pool;
  CHECK_THROWS_WITH_AS(pool.backward(g), msg("MaskedMeanPool").c_str(), heed::ValueError);
}
