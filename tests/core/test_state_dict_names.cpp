// heed's state_dict keys, order and shapes equal PyTorch's for the same model, so weights can
// move between the two by name (reference: state_dict_reference.py, generated with torch 1.13).
#include <doctest/doctest.h>

#include <heed/heed.hpp>

#include "core/state_dict_reference.hpp"

namespace {

struct Net : heed::ModuleBase<float> {
  heed::Embedding<float> emb{10, 8, 0};
  heed::Sequential<float> encoder{heed::Linear<float>(8, 16), heed::ReLU<float>(),
                                  heed::Dropout<float>(0.1), heed::Linear<float>(16, 8)};
  heed::MultiheadAttention<float> attn{8, 2};
  heed::MultiheadAttention<float> cross{8, 2, {.bias = false, .kdim = 4, .vdim = 6}};
  heed::LayerNorm<float> norm{8};
  heed::GRU<float> rnn{8, 5, {.num_layers = 2, .bidirectional = true}};
  heed::LSTM<float> lstm{10, 3, {.bias = false}};
  heed::LSTMCell<float> cell{3, 4};
  heed::ModuleList<float, heed::Linear<float>> blocks;
  heed::Linear<float> head{8, 2, false};

  Net() {
    blocks.emplace(8, 8);
    blocks.emplace(8, 8);
  }
  heed::Children<float> children() override {
    return {{"emb", &emb},   {"encoder", &encoder}, {"attn", &attn}, {"cross", &cross},
            {"norm", &norm}, {"rnn", &rnn},         {"lstm", &lstm}, {"cell", &cell},
            {"blocks", &blocks}, {"head", &head}};
  }
  std::string name() const override { return "Net"; }
};

}  // namespace

TEST_CASE("state_dict: keys, order and shapes equal PyTorch's for the same model") {
  Net net;
  const auto sd = net.state_dict();
  REQUIRE(sd.size() == kTorchStateDict.size());
  std::size_t i = 0;
  for (const auto& entry : sd) {
    // Not a structured binding: CHECK_MESSAGE captures `name` in a lambda, which clang < 16
    // rejects for bindings (the tsan preset builds with clang 14).
    const auto& name = entry.first;
    const auto& m = entry.second;
    const TorchEntry& want = kTorchStateDict[i++];
    CHECK(name == want.name);
    CHECK_MESSAGE(m.rows() == want.rows, name);
    CHECK_MESSAGE(m.cols() == want.cols, name);
  }
}
