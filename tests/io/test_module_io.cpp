// save/load and Checkpoint on any module through the registry; duplicate names refused at
// every entry point.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <heed/heed.hpp>

#include "io/scratch.hpp"

#include "common/helpers.hpp"

using heed::Index;
using heed::Matrix;
using heed_test::randn;

namespace {

std::string tmp(const std::string& name) { return heed_test::scratch("module_io_" + name).string(); }

// A user composite holding the multi-input modules that could not be saved before.
struct Regressor : heed::ModuleBase<float> {
  heed::Embedding<float> emb;
  heed::LSTM<float> rnn;
  heed::MultiheadAttention<float> attn;
  heed::Linear<float> head;
  explicit Regressor(heed::Generator& g)
      : emb(12, 4, 0, g), rnn(4, 6, {.num_layers = 2}, g), attn(6, 2, {}, g), head(6, 1, true, g) {}
  heed::Children<float> children() override {
    return {{"emb", &emb}, {"rnn", &rnn}, {"attn", &attn}, {"head", &head}};
  }
  std::string name() const override { return "Regressor"; }
};

template <class M>
void check_bit_identical(M& a, M& b) {
  const auto sa = a.state_dict(), sb = b.state_dict();
  REQUIRE(sa.size() == sb.size());
  // No structured bindings where a CHECK_MESSAGE names them: doctest evaluates the message in a
  // lambda, and clang < 16 cannot capture a binding (the tsan preset builds with clang 14).
  for (const auto& entry : sa) {
    const auto& k = entry.first;
    const auto& v = entry.second;
    const Matrix<typename M::Scalar>& w = sb.at(k);
    REQUIRE(w.size() == v.size());
    CHECK_MESSAGE(std::memcmp(w.data(), v.data(), sizeof(typename M::Scalar) * v.size()) == 0, k);
  }
}

}  // namespace

TEST_CASE("save/load: a user composite with Embedding, LSTM and MultiheadAttention round-trips bit-exactly") {
  heed::Generator g1(1), g2(2);
  Regressor a(g1), b(g2);
  const std::string path = tmp("regressor.heed");
  heed::save(a, path);
  heed::load(b, path);
  check_bit_identical(a, b);
  CHECK(b.state_dict().keys().front() == "emb.weight");
  CHECK(b.state_dict().contains("rnn.weight_hh_l1"));
  CHECK(b.state_dict().contains("attn.out_proj.bias"));
  std::remove(path.c_str());
}

TEST_CASE("save/load: a Seq2Seq round-trips bit-exactly and decodes the same") {
  heed::Generator g1(3), g2(4);
  heed::Seq2Seq<double> a({.src_vocab = 9, .tgt_vocab = 7}, g1), b({.src_vocab = 9, .tgt_vocab = 7}, g2);
  const std::string path = tmp("seq2seq.heed");
  heed::save(a, path);
  heed::load(b, path);
  check_bit_identical(a, b);
  heed::Tokens src(2, 4);
  src << 3, 4, 5, 6, 7, 8, 0, 0;
  const heed::Labels len = heed_test::labels({4, 2});
  const auto ta = a.greedy_decode(src, len, 6), tb = b.greedy_decode(src, len, 6);
  for (std::size_t i = 0; i < ta.size(); ++i) {
    CHECK(ta[i].tokens == tb[i].tokens);
    CHECK(ta[i].attention == tb[i].attention);
  }
  std::remove(path.c_str());
}

TEST_CASE("Seq2Seq passes eval() to its children and decoding restores the mode it found") {
  heed::Seq2Seq<double> m({.src_vocab = 9, .tgt_vocab = 7});
  heed::Tokens src(1, 2);
  src << 3, 4;
  m.eval();
  for (auto& e : m.named_modules()) CHECK_MESSAGE(!e.second->training(), e.first);
  m.greedy_decode(src, heed_test::labels({2}), 3);
  for (auto& e : m.named_modules()) CHECK_MESSAGE(!e.second->training(), e.first);
  m.train();
  m.beam_search(src, heed_test::labels({2}), 2, 3);
  for (auto& e : m.named_modules()) CHECK_MESSAGE(e.second->training(), e.first);
}

TEST_CASE("save takes a const or temporary module") {
  const std::string path = tmp("temporary.heed");
  heed::save(heed::Linear<float>(3, 2), path);
  const heed::Linear<float> c(3, 2);
  heed::save(c, path);
  heed::Linear<float> d(3, 2);
  heed::load(d, path);
  CHECK(d.weight() == const_cast<heed::Linear<float>&>(c).weight());
  std::remove(path.c_str());
}

TEST_CASE("Checkpoint::model saves every dropout stream: a resumed run draws the same masks") {
  heed::Sequential<double> net(heed::Linear<double>(4, 8), heed::Dropout<double>(0.5, 1),
                               heed::SelfAttention<double>(8, 2, 2, {.dropout = 0.3}));
  const Matrix<double> x = randn(4, 4, 1);
  const std::string path = tmp("dropout_streams.heed");
  heed::Checkpoint<double>().model(net).save(path);
  const Matrix<double> first = net.forward(x);
  const Matrix<double> second = net.forward(x);
  CHECK(first != second);  // the streams moved on
  heed::Checkpoint<double>().model(net).load(path);
  CHECK(net.forward(x) == first);
  // heed::save stores weights only: such a file loads into a model (its streams untouched)
  heed::save(net, path);
  CHECK_NOTHROW(heed::load(net, path));
  std::remove(path.c_str());
}

TEST_CASE("duplicate names are refused when saving a Checkpoint, and nothing is written") {
  Matrix<float> a = Matrix<float>::Ones(2, 2), b = Matrix<float>::Zero(2, 2);
  const std::string path = tmp("dup.heed");
  std::remove(path.c_str());
  heed::Checkpoint<float> ck;
  ck.tensor("model.weight", a).tensor("model.weight", b);
  CHECK_THROWS_WITH_AS(ck.save(path),
                       ("save: '" + path + "': names bound more than once: 'model.weight' (a file "
                        "with duplicates could never be loaded)").c_str(),
                       heed::ValueError);
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("optimizers refuse duplicate parameter names and a tensor listed twice") {
  heed::Linear<float> l1(2, 2), l2(2, 2);
  auto ps = l1.parameters();
  for (auto& p : l2.parameters()) ps.push_back(p);  // merged without prefixes
  CHECK_THROWS_WITH_AS(heed::Adam<float>(ps, {}),
                       "Adam: duplicate parameter names 'weight' (0 and 2), 'bias' (1 and 3); prefix "
                       "each module's names (a container's parameters() does)",
                       heed::ValueError);
  auto twice = l1.parameters();
  twice.push_back(twice[0]);
  twice.back().name = "again";
  CHECK_THROWS_WITH_AS(heed::SGD<float>(twice, {.lr = 0.1f}),
                       "SGD: parameters 0 ('weight') and 2 ('again') are the same tensor", heed::ValueError);
}
