// The article's MNIST classifier in libtorch, exactly as bench/compare/mnist_torch_preloaded.py:
// 784-256-128-64-10 with ReLU, cross-entropy, Adam lr 1e-3, batch 100; the IDX files read into
// tensors once and normalised once ((x/255 - 0.5)/0.5); each epoch's batches are index slices of
// a seeded random permutation; test accuracy at the end. Output lines as heed's
// examples/mnist_mlp and the Python twin (bench/compare/report.py parses them):
//   mnist_mlp_torch DATA_DIR EPOCHS [--threads 2]
#include "common.hpp"

int main(int argc, char** argv) try {
  const auto pos = cmp::positional(argc, argv);
  if (pos.size() != 2) {
    std::fprintf(stderr, "usage: mnist_mlp_torch DATA_DIR EPOCHS [--threads N]\n");
    return 2;
  }
  const std::string data_dir = pos[0];
  const int num_epochs = std::stoi(pos[1]);
  cmp::set_threads(std::stoi(cmp::flag(argc, argv, "--threads", "2")));
  torch::manual_seed(0);
  auto [train_x, train_y] = cmp::load_mnist(data_dir, "train", {784});
  auto [test_x, test_y] = cmp::load_mnist(data_dir, "t10k", {784});

  namespace nn = torch::nn;
  nn::Sequential model(nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 128), nn::ReLU(),
                       nn::Linear(128, 64), nn::ReLU(), nn::Linear(64, 10));
  nn::CrossEntropyLoss criterion;
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3));

  const int64_t B = 100, n = train_x.size(0);
  const double t_train = cmp::now();
  for (int epoch = 0; epoch < num_epochs; ++epoch) {
    const double t0 = cmp::now();
    const auto perm = torch::randperm(n);
    double running_loss = 0;
    int steps = 0;
    for (int64_t s = 0; s < n; s += B) {
      const auto idx = perm.slice(0, s, std::min(s + B, n));
      optimizer.zero_grad();
      auto loss = criterion(model->forward(train_x.index_select(0, idx)), train_y.index_select(0, idx));
      loss.backward();
      optimizer.step();
      running_loss += loss.item<double>();
      ++steps;
    }
    std::printf("Epoch [%d/%d], Loss: %.4f, Time: %.2f s\n", epoch + 1, num_epochs, running_loss / steps,
                cmp::now() - t0);
    std::fflush(stdout);
  }
  std::printf("Training time: %.2f s\n", cmp::now() - t_train);

  torch::NoGradGuard no_grad;
  const auto predicted = model->forward(test_x).argmax(1);
  std::printf("Accuracy: %.2f%%\n", 100 * predicted.eq(test_y).to(torch::kFloat).mean().item<double>());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "mnist_mlp_torch: %s\n", e.what());
  return 1;
}
