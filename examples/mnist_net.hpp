#pragma once
// The article's MNIST classifier as its PyTorch `Net` is written: four Linear layers fc1 ... fc4
// (784-256-128-64-10) with a ReLU after each of the first three, as a Sequential whose modules
// are named (nn.Sequential(OrderedDict(...)) in PyTorch), so the state_dict keys are the
// article's, "fc1.weight", "fc1.bias", ..., "fc4.bias": its PyTorch weights load unchanged
// (heed::load_weights) and heed's go back (heed::save_safetensors). The ReLUs ("relu1" ...)
// have no parameters, so they add no keys.
//
// With dropout > 0 (the improved recipe) a Dropout follows each hidden ReLU, "drop1" ...
// "drop3": no parameters either, so the keys stay the same; their random streams are
// checkpointed under those names.
//
// Initialisation is PyTorch's default, drawn from `gen` in the order fc1.weight, fc1.bias,
// fc2.weight, ...
//
// tests/interop/mnist/mnist_parity trains it from PyTorch's initial weights in PyTorch's batch
// order and compares every step's loss with PyTorch's (float64: within 1.8e-15 over the epoch).
#include <cstdint>
#include <heed/heed.hpp>
#include <string>

namespace examples {

template <typename T>
heed::Sequential<T> mnist_net(heed::Generator& gen, double dropout = 0, std::uint64_t dropout_seed = 0) {
  heed::Sequential<T> net;
  const heed::Index sizes[] = {784, 256, 128, 64};
  for (int i = 0; i < 3; ++i) {
    const std::string k = std::to_string(i + 1);
    net.template emplace_named<heed::Linear<T>>("fc" + k, sizes[i], sizes[i + 1], true, gen);
    net.template emplace_named<heed::ReLU<T>>("relu" + k);
    if (dropout > 0) net.template emplace_named<heed::Dropout<T>>("drop" + k, dropout, dropout_seed * 31 + i);
  }
  net.template emplace_named<heed::Linear<T>>("fc4", 64, 10, true, gen);
  net.requires_input_grad(false);  // nobody needs d(loss)/d(pixels)
  return net;
}

}  // namespace examples
