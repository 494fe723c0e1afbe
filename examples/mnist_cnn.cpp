// A convolutional MNIST classifier, with or without spatial attention over its feature maps.
//
//   mnist_cnn --data data/mnist [--model cnn|attention] [--epochs 12] [--batch-size 100]
//             [--lr 1e-3] [--seed 0] [--threads N] [--maps DIR] [--num-maps 8]
//             [--save PATH] [--resume PATH] [--init-from FILE] [--export FILE.safetensors]
//
// --model cnn (the default) is PyTorch's examples/mnist Net and Keras' mnist_cnn: conv32-3x3,
// conv64-3x3, 2x2 max-pool, dropout 0.25, dense 128, dropout 0.5, dense 10
// (examples/mnist_net.hpp, mnist_cnn_net; keys conv1.weight ... fc2.bias). --model attention
// adds heed::SpatialAttention2d (CBAM's spatial attention, key attn.conv.weight) on the 24x24
// maps of conv2: every position gets a weight in (0, 1) computed from all 64 channels there,
// and the classifier sees the weighted maps. With --maps DIR (attention only) the first
// --num-maps test images are written as PNG files: the digit, and the attention map over it
// (each map scaled to its own range; the ranges are printed).
//
// Trained with cross-entropy and Adam (lr 1e-3), batch 100, shuffled, inputs normalised
// (x/255 - 0.5)/0.5 as in mnist_mlp. The flags and output are mnist_mlp's: a line per epoch
// with the mean loss and time, then the test accuracy, per-class metrics and confusion matrix.
// --save / --resume (a checkpoint after every epoch: model, Adam, epoch, shuffling and dropout
// streams; with --threads 1 a resumed run prints what an uninterrupted one prints), --init-from
// FILE (PyTorch weights, safetensors or torch.save, by heed::load_weights), --epochs 0 (only
// evaluate) and --export FILE (safetensors for PyTorch) as there.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <heed/heed.hpp>
#include <string>
#include <vector>

#include "common.hpp"
#include "mnist_net.hpp"
#include "png.hpp"

namespace {

using Scalar = float;
using heed::Index;
using heed::Labels;
using heed::Matrix;

struct Args : examples::CommonArgs {
  Args() : CommonArgs{.epochs = 12} {}
  std::string model = "cnn";
  std::string maps{};         // --maps: directory for the attention maps ("" = none)
  int num_maps = 8;
  std::string init_from{};    // --init-from: weights to start from ("" = seeded init)
  std::string export_path{};  // --export: safetensors file written at the end ("" = none)
};

const examples::Usage kUsage{
    "mnist_cnn",
    "mnist_cnn [--data DIR] [--model cnn|attention] [--epochs N] [--batch-size N] [--lr X] [--seed N]\n"
    "                 [--threads N] [--maps DIR] [--num-maps N] [--save PATH] [--resume PATH]\n"
    "                 [--init-from FILE] [--export FILE]\n",
    "Trains a convolutional MNIST classifier (conv32-3x3, conv64-3x3, max-pool, dropout, dense 128;\n"
    "Adam) and prints the test accuracy, per-class metrics and the confusion matrix. --model\n"
    "attention adds spatial attention over the conv features; --maps DIR then writes PNG heat maps\n"
    "of where it looks for the first --num-maps test images.\n"
    "Defaults: --data data/mnist, --model cnn, --epochs 12, --batch-size 100, --lr 1e-3, --seed 0,\n"
    "--threads 0 (all cores), --num-maps 8. --save PATH writes a checkpoint after every epoch;\n"
    "--resume PATH continues from one. --init-from FILE starts from PyTorch weights (safetensors\n"
    "or torch.save; keys conv1.weight ... fc2.bias), --export FILE writes the final weights as\n"
    "safetensors, and --epochs 0 only evaluates."};

Args parse(int argc, char** argv) {
  Args a;
  examples::parse_flags(argc, argv, kUsage, [&a](const std::string& k, const std::string& v) {
    if (k == "--model") a.model = v;
    else if (k == "--maps") a.maps = v;
    else if (k == "--num-maps") examples::parse_number(v, a.num_maps);
    else if (k == "--init-from") a.init_from = v;
    else if (k == "--export") a.export_path = v;
    else return a.parse_common(k, v);
    return true;
  });
  if (a.model != "cnn" && a.model != "attention") examples::usage_error(kUsage, "--model is cnn or attention");
  if (a.epochs < 0 || !(a.batch_size >= 1 && a.lr > 0 && a.threads >= 0) || a.num_maps < 0)
    examples::usage_error(kUsage, "--epochs must be >= 0 (0: only evaluate), --batch-size and "
                                  "--lr must be positive, --threads and --num-maps >= 0");
  if (!a.maps.empty() && a.model != "attention")
    examples::usage_error(kUsage, "--maps needs --model attention (the cnn has no attention map)");
  if (!a.init_from.empty() && !a.resume.empty())
    examples::usage_error(kUsage, "--init-from and --resume cannot be combined: the checkpoint "
                                  "holds the weights to continue from");
  return a;
}

// One image: [digit | attention map over the digit], each 28x28 panel scaled by `scale`. The map
// (24x24, conv2's positions) is centred on the pixels it sees: position (i, j) is pixel
// (i + 2, j + 2), the centre of conv2's 5x5 receptive field (the map's 7x7 conv widens it to
// 11x11 around the same centre); the 2-pixel border takes the nearest position. `lo`..`hi` is mapped to the colour scale.
void write_map(const std::string& path, const std::uint8_t* pixels, const Scalar* map, double lo, double hi,
               int scale) {
  const int side = 28 * scale, gap = 2 * scale, w = 2 * side + gap, h = side;
  std::vector<std::uint8_t> rgb(static_cast<std::size_t>(w) * h * 3, 255);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < side; ++x) {
      const int py = y / scale, px = x / scale;
      const double ink = pixels[py * 28 + px] / 255.0;
      const int my = std::clamp(py - 2, 0, 23), mx = std::clamp(px - 2, 0, 23);
      std::uint8_t* p = &rgb[(static_cast<std::size_t>(y) * w + x) * 3];
      p[0] = p[1] = p[2] = static_cast<std::uint8_t>(255 * ink);  // the digit
      examples::heat_over_ink(p + static_cast<std::size_t>(side + gap) * 3,  // the map over it
                              (map[my * 24 + mx] - lo) / std::max(hi - lo, 1e-12), ink);
    }
  examples::write_png(path, w, h, 3, rgb);
}

}  // namespace

int main(int argc, char** argv) try {
  const Args args = parse(argc, argv);
  examples::set_threads(args.threads);
  const bool attention = args.model == "attention";
  examples::check_export_path(args.export_path);  // refused now rather than after the training

  const auto t_load = std::chrono::steady_clock::now();
  const heed::MnistData mnist = heed::load_mnist(args.data);
  std::printf("MNIST: %ld training, %ld test images (loaded in %.2f s); model %s, %d thread(s)\n",
              static_cast<long>(mnist.train_images.rows()), static_cast<long>(mnist.test_images.rows()),
              examples::seconds_since(t_load), args.model.c_str(), Eigen::nbThreads());

  heed::Generator gen(args.seed);
  heed::Sequential<Scalar> model = examples::mnist_cnn_net<Scalar>(gen, attention, args.seed);
  heed::SpatialAttention2d<Scalar>* attn = nullptr;  // the map, for --maps
  for (auto& [path, m] : model.named_modules())
    if (path == "attn") attn = dynamic_cast<heed::SpatialAttention2d<Scalar>*>(m);
  examples::init_from(model, args.init_from);
  heed::CrossEntropyLoss<Scalar> criterion;
  heed::Adam<Scalar> optimizer(model.parameters(), {.lr = Scalar(args.lr)});
  heed::DataLoader<Scalar> loader(mnist.train_images, mnist.train_labels,
                                  {.batch_size = args.batch_size, .shuffle = true, .seed = args.seed,
                                   .mean = Scalar(0.5), .std = Scalar(0.5)});
  const std::vector<heed::Parameter<Scalar>> params = model.parameters();

  examples::TrainingRun run(args);
  run.state().model(model).optimizer(optimizer);
  run.setting("model", "--model", attention, {"cnn", "attention"});
  run.setting("epochs", "--epochs", args.epochs);
  run.resume([&](int epochs_done) -> heed::Generator& {
    for (int e = 0; e < epochs_done; ++e) loader.start_epoch();
    return loader.generator();
  });

  Matrix<Scalar> x;
  Labels y;
  for (int epoch = run.epochs_done + 1; epoch <= args.epochs; ++epoch) {
    examples::EpochMeter meter(loader.num_batches());
    loader.start_epoch();
    while (loader.next(x, y)) {
      optimizer.zero_grad();
      const Scalar loss = criterion.forward(model.forward(x), y);
      model.backward(criterion.backward());
      heed::check_finite(loss, params, optimizer.step_count() + 1);  // before the update
      optimizer.step();
      meter.add(loss);
    }
    const double secs = meter.seconds();
    std::printf("Epoch [%d/%d], Loss: %.4f, Time: %.2f s", epoch, args.epochs, meter.mean_loss(), secs);
    run.end_epoch(epoch, secs, loader.generator());  // before the line is flushed
    std::printf("\n");
    std::fflush(stdout);
  }
  examples::print_training_time(run, !args.init_from.empty());

  // Batches of 200 in evaluation: conv2's output and cached input are ~250 KB per image.
  const Labels pred =
      examples::print_test_report(examples::predict(model, mnist.test_images, 10, 200), mnist.test_labels);

  const Index n_maps = args.maps.empty() ? 0 : std::min<Index>(args.num_maps, mnist.test_images.rows());
  if (n_maps > 0) {
    std::filesystem::create_directories(args.maps);
    model.eval();
    Matrix<Scalar> maps(n_maps, 24 * 24);  // (n, 24*24), in batches of 200 as the evaluation
    for (Index i = 0; i < n_maps; i += 200) {
      const Index n = std::min<Index>(200, n_maps - i);
      heed::normalize(mnist.test_images.middleRows(i, n), x, Scalar(0.5), Scalar(0.5));
      model.forward(x);
      maps.middleRows(i, n) = attn->attention_map();
    }
    for (Index i = 0; i < n_maps; ++i) {
      const double lo = maps.row(i).minCoeff(), hi = maps.row(i).maxCoeff();
      char name[96];
      std::snprintf(name, sizeof name, "test_%04ld_label%d_pred%d.png", static_cast<long>(i), mnist.test_labels(i),
                    pred(i));
      write_map((std::filesystem::path(args.maps) / name).string(), mnist.test_images.row(i).data(),
                maps.row(i).data(), lo, hi, 8);
      std::printf("%s map range %.4f .. %.4f\n", name, lo, hi);
    }
    std::printf("\nAttention maps of the first %ld test images in %s/ (digit | attention map)\n",
                static_cast<long>(n_maps), args.maps.c_str());
  }
  examples::export_weights(model, args.export_path, "conv1.weight ... fc2.bias");
  return 0;
} catch (const heed::Error& e) {
  return examples::report_error(kUsage, e);
} catch (const std::exception& e) {
  return examples::report_error(kUsage, e);
}
