#pragma once
// The MNIST examples' networks: mnist_net (mnist_mlp) and mnist_cnn_net (mnist_cnn).
//
// mnist_net: the article's MNIST classifier as its PyTorch `Net` is written: four Linear layers fc1 ... fc4
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

// mnist_cnn_net: mnist_cnn's conv net, as PyTorch's examples/mnist Net and Keras' mnist_cnn,
// named as an nn.Sequential(OrderedDict(...)) so its state_dict keys are conv1.weight,
// conv1.bias, conv2.*, [attn.conv.weight,] fc1.*, fc2.*:
//   conv1 Conv2d(1, 32, 3) -> relu1 -> conv2 Conv2d(32, 64, 3) -> relu2        (N, 64*24*24)
//   [attn SpatialAttention2d(24x24, kernel 7)]   with attention: each position weighted
//   -> pool MaxPool2d(2) -> drop1 Dropout(0.25) -> flatten                     (N, 64*12*12)
//   -> fc1 Linear(9216, 128) -> relu3 -> drop2 Dropout(0.5) -> fc2 Linear(128, 10)
// Initialisation is PyTorch's default, drawn from `gen` in that order.
template <typename T>
heed::Sequential<T> mnist_cnn_net(heed::Generator& gen, bool attention, std::uint64_t dropout_seed = 0) {
  heed::Sequential<T> net;
  net.template emplace_named<heed::Conv2d<T>>("conv1", 1, 32, 3, heed::Conv2dOptions{.input = {28, 28}}, gen);
  net.template emplace_named<heed::ReLU<T>>("relu1");
  net.template emplace_named<heed::Conv2d<T>>("conv2", 32, 64, 3, heed::Conv2dOptions{.input = {26, 26}}, gen);
  net.template emplace_named<heed::ReLU<T>>("relu2");
  if (attention)
    net.template emplace_named<heed::SpatialAttention2d<T>>("attn", heed::SpatialAttention2dOptions{.input = {24, 24}}, gen);
  net.template emplace_named<heed::MaxPool2d<T>>("pool", 2, heed::MaxPool2dOptions{.input = {24, 24}, .channels = 64});
  net.template emplace_named<heed::Dropout<T>>("drop1", 0.25, dropout_seed * 31 + 1);
  net.template emplace_named<heed::Flatten<T>>("flatten");
  net.template emplace_named<heed::Linear<T>>("fc1", 64 * 12 * 12, 128, true, gen);
  net.template emplace_named<heed::ReLU<T>>("relu3");
  net.template emplace_named<heed::Dropout<T>>("drop2", 0.5, dropout_seed * 31 + 2);
  net.template emplace_named<heed::Linear<T>>("fc2", 128, 10, true, gen);
  net.requires_input_grad(false);  // nobody needs d(loss)/d(pixels)
  return net;
}

}  // namespace examples
