#pragma once
// The article's MNIST classifier as its PyTorch `Net` is written: four Linear layers fc1 ... fc4
// (784-256-128-64-10) with a ReLU after each of the first three, so the state_dict keys are
// the article's, "fc1.weight", "fc1.bias", ..., "fc4.bias", and its PyTorch weights load
// unchanged (heed::load_weights) and heed's go back (heed::save_safetensors).
//
// With dropout > 0 (the improved recipe) a Dropout follows each hidden ReLU, as children
// "drop1" ... "drop3": they have no parameters, so the keys stay the same; their random streams
// are checkpointed under those names. The ReLUs are stateless and, like the article's
// torch.relu calls, not children.
//
// Initialisation is PyTorch's default, drawn from `gen` in the order fc1.weight, fc1.bias,
// fc2.weight, ... (as a Sequential of the same layers would draw them).
//
// tests/interop/mnist_parity trains it from PyTorch's initial weights in PyTorch's batch order
// and compares every step's loss with PyTorch's (float64: within 1.8e-15 over the epoch).
#include <cstdint>
#include <heed/heed.hpp>
#include <string>
#include <vector>

namespace examples {

template <typename T>
class MnistNet : public heed::Module<T> {
 public:
  explicit MnistNet(heed::Generator& gen, double dropout = 0, std::uint64_t dropout_seed = 0)
      : fc1(784, 256, true, gen), fc2(256, 128, true, gen), fc3(128, 64, true, gen),
        fc4(64, 10, true, gen) {
    if (dropout > 0)
      for (std::uint64_t i = 0; i < 3; ++i) drop_.emplace_back(dropout, dropout_seed * 31 + i);
  }

  heed::Linear<T> fc1, fc2, fc3, fc4;

  const heed::Matrix<T>& forward(const heed::ConstRef<T>& x) override {
    const std::vector<heed::Module<T>*> p = pipeline();
    const heed::Matrix<T>* h = nullptr;
    for (std::size_t i = 0; i < p.size(); ++i) h = &p[i]->forward(i == 0 ? x : heed::ConstRef<T>(*h));
    return *h;
  }

  const heed::Matrix<T>& backward(const heed::ConstRef<T>& dy) override {
    const std::vector<heed::Module<T>*> p = pipeline();
    const heed::Matrix<T>* g = nullptr;
    for (std::size_t i = p.size(); i-- > 0;)
      g = &p[i]->backward(i + 1 == p.size() ? dy : heed::ConstRef<T>(*g));
    return *g;
  }

  heed::Children<T> children() override {
    heed::Children<T> c{{"fc1", &fc1}, {"fc2", &fc2}, {"fc3", &fc3}, {"fc4", &fc4}};
    for (std::size_t i = 0; i < drop_.size(); ++i) c.emplace_back("drop" + std::to_string(i + 1), &drop_[i]);
    return c;
  }

  std::string name() const override { return "Net"; }

  // Only fc1 sees the network's input.
  void requires_input_grad(bool on) override {
    heed::Module<T>::requires_input_grad(on);
    fc1.requires_input_grad(on);
  }

 private:
  // fc1, relu, [drop1], fc2, relu, [drop2], fc3, relu, [drop3], fc4.
  std::vector<heed::Module<T>*> pipeline() {
    heed::Linear<T>* fc[] = {&fc1, &fc2, &fc3};
    std::vector<heed::Module<T>*> p;
    for (std::size_t i = 0; i < 3; ++i) {
      p.push_back(fc[i]);
      p.push_back(&relu_[i]);
      if (!drop_.empty()) p.push_back(&drop_[i]);
    }
    p.push_back(&fc4);
    return p;
  }

  heed::ReLU<T> relu_[3];
  std::vector<heed::Dropout<T>> drop_;
};

}  // namespace examples
