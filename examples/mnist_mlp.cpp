// The article's MNIST classifier: 784-256-128-64-10 MLP with ReLU, cross-entropy, Adam lr 1e-3,
// batch 100 with shuffling, 10 epochs, inputs scaled to [0, 1] then normalised (x - 0.5) / 0.5.
//
//   mnist_mlp --data data/mnist [--epochs 10] [--batch-size 100] [--lr 1e-3] [--seed 0]
//             [--threads N] [--shards N] [--recipe article|improved] [--save PATH]
//             [--resume PATH] [--init-from FILE] [--export FILE.safetensors]
//
// The network is the article's PyTorch `Net` (examples/mnist_net.hpp), with its state_dict
// keys fc1.weight, fc1.bias, ..., fc4.bias. --init-from FILE starts from weights saved by
// PyTorch (Net's state_dict as a safetensors or torch.save file, read by heed::load_weights)
// instead of the seeded initialisation; a file with
// other names or shapes is refused with every mismatch listed. --epochs 0 trains nothing and
// only evaluates (the fresh or --init-from weights): the accuracy line and per-class report.
// --export FILE writes the final weights as safetensors for PyTorch:
// Net().load_state_dict(safetensors.torch.load_file(FILE)).
//
// Each step runs through heed::DataParallel: the batch is cut into --shards N shards (default
// 2) that the threads share, the gradients summed once per step, each step on --threads
// threads or on one, whichever it measured faster (a busy core makes one faster). The numbers
// depend on the shard count, not on the threads: any --threads prints the same.
//
// --save PATH writes a checkpoint (atomically) after every completed epoch: the model, the
// optimizer, the schedule, early stopping and its best weights, the epoch, and every generator
// (shuffling, augmentation, dropout). --resume PATH loads one and continues with the next epoch
// (and keeps saving to PATH unless --save names another file); an interrupted, resumed run
// prints exactly what an uninterrupted one prints. The run's settings (recipe, seed,
// epochs, batch size, lr) are stored too, and a resume with different ones is refused.
// Every step is guarded by heed::check_finite: a NaN or infinite loss or gradient stops training
// before the update, with the last checkpoint left as it was.
//
// --recipe improved keeps the same network and trains it with the article's list of ways to
// improve: dropout, weight decay (AdamW), a warm-up + cosine learning-rate schedule, random
// shifts of the images, and early stopping on a validation split held out from the training set
// (the best epoch's weights are restored). The test set is touched once, at the end.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <heed/heed.hpp>
#include <iostream>
#include <string>

#include "common.hpp"
#include "mnist_net.hpp"

namespace {

using Scalar = float;
using heed::Index;
using heed::Labels;
using heed::Matrix;

struct Args : examples::CommonArgs {
  // --epochs -1: the recipe's default (10, or at most 30 for improved).
  Args() : CommonArgs{.epochs = -1} {}
  std::string recipe = "article";
  std::string init_from{};    // --init-from: weights to start from ("" = seeded init)
  std::string export_path{};  // --export: safetensors file written at the end ("" = none)
  int shards = 2;             // --shards: DataParallel's shards per batch
};

const examples::Usage kUsage{
    "mnist_mlp",
    "mnist_mlp [--data DIR] [--epochs N] [--batch-size N] [--lr X] [--seed N] [--threads N] "
    "[--shards N] [--recipe article|improved]\n"
    "                 [--save PATH] [--resume PATH] [--init-from FILE] [--export FILE]\n",
    "Trains the article's MNIST classifier (a 784-256-128-64-10 MLP, Adam) and prints the test\n"
    "accuracy, per-class metrics and the confusion matrix. --recipe improved adds dropout, AdamW,\n"
    "warm-up + cosine lr, random shifts and early stopping on a validation split.\n"
    "Defaults: --data data/mnist, --epochs 10 (30 with --recipe improved), --batch-size 100,\n"
    "--lr 1e-3, --seed 0, --threads 0 (all cores), --shards 2 (each batch cut into 2 shards the\n"
    "threads share; results depend on it, not on --threads). --save PATH writes a checkpoint after every\n"
    "epoch; --resume PATH continues from one. The layers are the article's PyTorch Net's (keys\n"
    "fc1.weight ... fc4.bias): --init-from FILE starts from its weights (safetensors or torch.save),\n"
    "--export FILE writes the final weights as safetensors for PyTorch, and --epochs 0 only\n"
    "evaluates (the fresh or --init-from weights)."};

Args parse(int argc, char** argv) {
  Args a;
  examples::parse_flags(argc, argv, kUsage, [&a](const std::string& k, const std::string& v) {
    if (k == "--recipe") a.recipe = v;
    else if (k == "--init-from") a.init_from = v;
    else if (k == "--export") a.export_path = v;
    else if (k == "--shards") examples::parse_number(v, a.shards);
    else return a.parse_common(k, v);
    return true;
  });
  if (a.recipe != "article" && a.recipe != "improved")
    examples::usage_error(kUsage, "--recipe is article or improved");
  if (a.epochs == -1) a.epochs = a.recipe == "article" ? 10 : 30;
  if (a.epochs < 0 || !(a.batch_size >= 1 && a.lr > 0 && a.threads >= 0 && a.shards >= 1))
    examples::usage_error(kUsage, "--epochs must be >= 0 (0: only evaluate), --batch-size, "
                                  "--lr and --shards must be positive, --threads >= 0");
  if (!a.init_from.empty() && !a.resume.empty())
    examples::usage_error(kUsage, "--init-from and --resume cannot be combined: the checkpoint "
                                  "holds the weights to continue from");
  return a;
}

using Net = heed::Sequential<Scalar>;

// The article's initialisation from `seed`; dropout 0.1 after each hidden ReLU if `dropout`.
Net make_model(bool dropout, std::uint64_t seed) {
  heed::Generator gen(seed);
  return examples::mnist_net<Scalar>(gen, dropout ? 0.1 : 0.0, seed);
}

}  // namespace

int main(int argc, char** argv) try {
  const Args args = parse(argc, argv);
  examples::set_threads(args.threads);
  const bool improved = args.recipe == "improved";
  examples::check_export_path(args.export_path);  // refused now rather than after the training

  const auto t_load = std::chrono::steady_clock::now();
  const heed::MnistData mnist = heed::load_mnist(args.data);
  std::printf("MNIST: %ld training, %ld test images (loaded in %.2f s); recipe %s, %d thread(s)\n",
              static_cast<long>(mnist.train_images.rows()), static_cast<long>(mnist.test_images.rows()),
              examples::seconds_since(t_load),
              args.recipe.c_str(), Eigen::nbThreads());

  // The improved recipe holds out 5,000 training images (a seeded random choice) for validation.
  heed::ByteMatrix train_x = mnist.train_images, val_x;
  Labels train_y = mnist.train_labels, val_y;
  if (improved) heed::split_validation(train_x, train_y, val_x, val_y, 5000, args.seed);

  Net model = make_model(improved, args.seed);
  examples::init_from(model, args.init_from);
  // Replicas for shards 1.. (their weights are the model's at every step).
  heed::DataParallel<Net> parallel(model, [&] { return make_model(improved, args.seed); },
                                   {.shards = args.shards});
  heed::CrossEntropyLoss<Scalar> criterion;
  std::unique_ptr<heed::Optimizer<Scalar>> optimizer;
  if (improved)
    optimizer = std::make_unique<heed::AdamW<Scalar>>(
        model.parameters(), heed::AdamWOptions<Scalar>{.lr = Scalar(args.lr), .weight_decay = Scalar(0.01)});
  else
    optimizer = std::make_unique<heed::Adam<Scalar>>(model.parameters(),
                                                     heed::AdamOptions<Scalar>{.lr = Scalar(args.lr)});

  heed::DataLoader<Scalar> loader(train_x, train_y,
                                  {.batch_size = args.batch_size, .shuffle = true, .seed = args.seed,
                                   .mean = Scalar(0.5), .std = Scalar(0.5)});
  const Index steps_per_epoch = loader.num_batches();
  // improved: one epoch of linear warm-up, then cosine decay to 0 over the remaining epochs,
  // stepped per batch.
  std::unique_ptr<heed::LRScheduler<Scalar>> schedule;
  if (improved) {
    const std::int64_t warm = steps_per_epoch, total = steps_per_epoch * args.epochs;
    schedule = std::make_unique<heed::SequentialLR<Scalar>>(
        *optimizer,
        heed::SequentialLROptions<Scalar>{
            .schedulers = {std::make_shared<heed::LinearLR<Scalar>>(
                               *optimizer, heed::LinearLROptions<Scalar>{.start_factor = 0.1, .end_factor = 1.0, .total_iters = warm}),
                           std::make_shared<heed::CosineAnnealingLR<Scalar>>(
                               *optimizer, heed::CosineAnnealingLROptions<Scalar>{.T_max = std::max<std::int64_t>(1, total - warm)})},
            .milestones = {warm}});
  }
  const int patience = 5;
  heed::EarlyStopping<Scalar> early({.patience = patience, .mode = heed::Mode::Max});
  std::vector<Matrix<Scalar>> best;  // the best validation epoch's weights
  heed::Generator aug_gen(args.seed + 1);
  const std::vector<heed::Parameter<Scalar>> params = model.parameters();

  // --save / --resume: besides the model (with its dropout streams), the optimizer and the
  // loader's shuffling, the schedule, early stopping with its best weights and the augmentation.
  examples::TrainingRun run(args);
  run.state().model(model).optimizer(*optimizer).generator("augment", aug_gen);
  run.setting("recipe", "--recipe", improved, {"article", "improved"});
  run.setting("epochs", "--epochs", args.epochs);
  run.setting("shards", "--shards", args.shards);
  if (schedule) run.state().optimizer(*schedule, "scheduler");
  if (improved) {
    run.state().optimizer(early, "early_stopping");
    heed::snapshot_parameters(params, best);  // shapes for loading; replaced after epoch 1
    for (std::size_t i = 0; i < params.size(); ++i) run.state().tensor("best." + params[i].name, best[i]);
  }
  run.resume([&](int epochs_done) -> heed::Generator& {
    for (int e = 0; e < epochs_done; ++e) loader.start_epoch();
    return loader.generator();
  });

  Matrix<Scalar> x;
  Labels y;
  bool stopped = improved && early.should_stop();
  for (int epoch = run.epochs_done + 1; epoch <= args.epochs && !stopped; ++epoch) {
    examples::EpochMeter meter(steps_per_epoch);
    loader.start_epoch();
    while (loader.next(x, y)) {
      if (improved) heed::random_shift(x, 28, 28, 2, Scalar(-1), aug_gen);  // background = -1
      optimizer->zero_grad();
      const Scalar loss = parallel.step(x, y, criterion);  // forward, loss, backward
      heed::check_finite(loss, params, optimizer->step_count() + 1);  // before the update
      optimizer->step();
      if (schedule) schedule->step();
      meter.add(loss);
    }
    const double secs = meter.seconds();
    std::printf("Epoch [%d/%d], Loss: %.4f, Time: %.2f s", epoch, args.epochs, meter.mean_loss(),
                secs);
    if (improved) {
      const double val_acc = heed::accuracy(examples::predict(model, val_x), val_y);
      std::printf(", Val accuracy: %.2f%%", 100 * val_acc);
      stopped = early.step(Scalar(val_acc));
      if (early.improved()) heed::snapshot_parameters(params, best);
    }
    run.end_epoch(epoch, secs, loader.generator());  // before the line is flushed
    if (stopped)
      std::printf("\nEarly stopping: no improvement for %d epochs; best epoch %ld", patience,
                  static_cast<long>(early.best_epoch() + 1));
    std::printf("\n");
    std::fflush(stdout);
  }
  if (improved && run.epochs_done > 0) heed::restore_parameters(params, best);
  examples::print_training_time(run, !args.init_from.empty());

  examples::print_test_report(examples::predict(model, mnist.test_images), mnist.test_labels);
  examples::export_weights(model, args.export_path, "fc1.weight ... fc4.bias");
  return 0;
} catch (const heed::Error& e) {
  return examples::report_error(kUsage, e);
} catch (const std::exception& e) {
  return examples::report_error(kUsage, e);
}
