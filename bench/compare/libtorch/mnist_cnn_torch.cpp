// examples/mnist_cnn in libtorch: bench/compare/mnist_cnn_torch.py in C++, the same network,
// recipe and data path, for epoch times and accuracy beside heed's and PyTorch's.
//   mnist_cnn_torch DATA_DIR [--model cnn|attention] [--epochs 12] [--threads 2] [--seed 0]
//
// Network (examples/mnist_net.hpp's mnist_cnn_net): conv1 1->32 3x3, ReLU, conv2 32->64 3x3,
// ReLU, [attention: CBAM spatial attention, 7x7 conv over channel mean and max], max-pool 2,
// dropout 0.25, flatten (64 x 12 x 12 = 9216), fc1 9216->128, ReLU, dropout 0.5, fc2 128->10.
// Data: the IDX files read into (N, 1, 28, 28) tensors once, normalised (x/255 - 0.5)/0.5; each
// epoch's batches of 100 are slices of a random permutation; Adam lr 1e-3, cross-entropy; test
// accuracy in eval mode, batches of 1000. Prints a first line with the build's oneDNN (MKL-DNN)
// state, a line per epoch with its time, "Training time: ..." and "Accuracy: xx.xx%" (the
// formats of heed's examples/mnist_cnn, which bench/compare/cnn.sh parses).
//
// oneDNN: Debian's libtorch 1.13 is built with MKL-DNN (at::hasMKLDNN() true) and it is enabled
// (userEnabledMkldnn() true), so float32 Conv2d on CPU goes through mkldnn_convolution for
// these batched inputs, as in the Python twin (the same libtorch_cpu).
#include "common.hpp"

namespace {

namespace nn = torch::nn;

// heed::SpatialAttention2d (tests/conv/conv_reference.py's SpatialAttention): the map scaled by
// sigmoid(conv([mean over channels, max over channels])), the conv k x k, padding k/2, no bias.
struct SpatialAttentionImpl : nn::Module {
  nn::Conv2d conv{nullptr};
  explicit SpatialAttentionImpl(int64_t k = 7) {
    conv = register_module("conv", nn::Conv2d(nn::Conv2dOptions(2, 1, k).padding(k / 2).bias(false)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto a = torch::cat({x.mean(1, /*keepdim=*/true), x.amax(1, /*keepdim=*/true)}, 1);
    return x * torch::sigmoid(conv(a));
  }
};
TORCH_MODULE(SpatialAttention);

// The Python twin's nn.Sequential, with its module names; modules are constructed in the same
// order, so the initial weights are drawn in the same order from the seeded generator.
struct NetImpl : nn::Module {
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  SpatialAttention attn{nullptr};
  nn::Linear fc1{nullptr}, fc2{nullptr};
  nn::Dropout drop1{nullptr}, drop2{nullptr};

  explicit NetImpl(bool attention) {
    conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(1, 32, 3)));
    conv2 = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(32, 64, 3)));
    if (attention) attn = register_module("attn", SpatialAttention(7));
    drop1 = register_module("drop1", nn::Dropout(0.25));
    fc1 = register_module("fc1", nn::Linear(9216, 128));
    drop2 = register_module("drop2", nn::Dropout(0.5));
    fc2 = register_module("fc2", nn::Linear(128, 10));
  }
  torch::Tensor forward(torch::Tensor x) {  // (N, 1, 28, 28) -> (N, 10)
    x = torch::relu(conv2(torch::relu(conv1(x))));  // (N, 64, 24, 24)
    if (attn) x = attn(x);
    x = drop1(torch::max_pool2d(x, 2)).flatten(1);  // (N, 9216)
    return fc2(drop2(torch::relu(fc1(x))));
  }
};
TORCH_MODULE(Net);

}  // namespace

int main(int argc, char** argv) try {
  const auto pos = cmp::positional(argc, argv);
  const std::string model_name = cmp::flag(argc, argv, "--model", "cnn");
  if (pos.size() != 1 || (model_name != "cnn" && model_name != "attention")) {
    std::fprintf(stderr, "usage: mnist_cnn_torch DATA_DIR [--model cnn|attention] [--epochs 12] [--threads 2] "
                         "[--seed 0]\n");
    return 2;
  }
  const int epochs = std::stoi(cmp::flag(argc, argv, "--epochs", "12"));
  cmp::set_threads(std::stoi(cmp::flag(argc, argv, "--threads", "2")));
  torch::manual_seed(std::stoll(cmp::flag(argc, argv, "--seed", "0")));
  auto [train_x, train_y] = cmp::load_mnist(pos[0], "train", {1, 28, 28});
  auto [test_x, test_y] = cmp::load_mnist(pos[0], "t10k", {1, 28, 28});
  Net model(model_name == "attention");
  nn::CrossEntropyLoss criterion;
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3));
  std::printf("libtorch %s, model %s, %d thread(s), mkldnn available %s, enabled %s\n", TORCH_VERSION,
              model_name.c_str(), torch::get_num_threads(), at::hasMKLDNN() ? "True" : "False",
              at::globalContext().userEnabledMkldnn() ? "True" : "False");
  std::fflush(stdout);

  const int64_t B = 100, n = train_x.size(0);
  double total = 0;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    model->train();
    const double t0 = cmp::now();
    const auto perm = torch::randperm(n);
    double loss_sum = 0;
    int steps = 0;
    for (int64_t s = 0; s < n; s += B) {
      const auto idx = perm.slice(0, s, std::min(s + B, n));
      optimizer.zero_grad();
      auto loss = criterion(model(train_x.index_select(0, idx)), train_y.index_select(0, idx));
      loss.backward();
      optimizer.step();
      loss_sum += loss.item<double>();
      ++steps;
    }
    const double secs = cmp::now() - t0;
    total += secs;
    std::printf("Epoch [%d/%d], Loss: %.4f, Time: %.2f s\n", epoch + 1, epochs, loss_sum / steps, secs);
    std::fflush(stdout);
  }
  if (epochs) std::printf("Training time: %.2f s (%.2f s per epoch)\n", total, total / epochs);
  model->eval();
  torch::NoGradGuard no_grad;
  int64_t correct = 0;
  for (int64_t s = 0; s < test_x.size(0); s += 1000) {
    const auto logits = model(test_x.slice(0, s, s + 1000));
    correct += logits.argmax(1).eq(test_y.slice(0, s, s + 1000)).sum().item<int64_t>();
  }
  std::printf("Accuracy: %.2f%%\n", 100.0 * double(correct) / double(test_x.size(0)));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "mnist_cnn_torch: %s\n", e.what());
  return 1;
}
