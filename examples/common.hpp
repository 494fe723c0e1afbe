#pragma once
// What the examples share: command-line flag parsing with the same error messages and exit code
// in every program, the flags common to them, the thread setting, seconds since a start time,
// the training progress bar and per-epoch loss and time, the checkpoint of a resumable run
// (--save / --resume), the error report of main, and the MNIST classifiers' test-set report.
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <heed/heed.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace examples {

// The program's name, its usage line(s) after "usage: " (ending in a newline), and what
// --help prints after them: what the program does, its defaults and what it writes.
struct Usage {
  const char* program;
  const char* synopsis;
  const char* about;
};

// "<program>: <msg>" and the usage on stderr, then exit code 2.
[[noreturn]] inline void usage_error(const Usage& u, const std::string& msg) {
  std::fprintf(stderr, "%s: %s\nusage: %s", u.program, msg.c_str(), u.synopsis);
  std::exit(2);
}

// Every flag takes one value: `--flag value`. set(flag, value) stores it and returns false for
// an unknown flag; a std::logic_error from it (std::stoi and co. on a bad number) is reported as
// a bad value. -h / --help is a request, not a mistake: the usage and the about text on stdout,
// exit code 0.
template <class Set>
void parse_flags(int argc, char** argv, const Usage& u, Set set) {
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "-h" || k == "--help") {
      std::printf("usage: %s\n%s\n", u.synopsis, u.about);
      std::exit(0);
    }
    if (i + 1 >= argc) usage_error(u, "missing value for " + k);
    const std::string v = argv[++i];
    bool known = false;
    try {
      known = set(k, v);
    } catch (const std::logic_error&) {
      usage_error(u, "bad value '" + v + "' for " + k);
    }
    if (!known) usage_error(u, "unknown flag " + k);
  }
}

// Parses all of `v` as a number of out's type: "3x", "", "1e" and, for unsigned types, "-1"
// throw std::invalid_argument (reported by parse_flags as a bad value) instead of being cut
// short or wrapped around as std::stoi / std::stoull would.
template <class Number>
void parse_number(const std::string& v, Number& out) {
  Number x{};
  const char* end = v.data() + v.size();
  const auto [ptr, ec] = std::from_chars(v.data(), end, x);
  if (ec != std::errc() || ptr != end || v.empty()) throw std::invalid_argument(v);
  out = x;
}

// The flags the examples share, parsed here only, so that they read and fail the same in each.
// An example derives its Args from this, sets its own defaults in the constructor, and ends
// its parse_flags setter with `else return a.parse_common(k, v);`.
struct CommonArgs {
  bool takes_data = true;  // false: the example makes its own data, and --data is unknown
  std::string data = "data/mnist";
  int epochs = 10;
  heed::Index batch_size = 100;
  double lr = 1e-3;
  std::uint64_t seed = 0;
  int threads = 0;  // 0: all cores
  std::string save{};    // --save: checkpoint after every epoch ("" = none)
  std::string resume{};  // --resume: checkpoint to continue from ("" = start fresh)

  bool parse_common(const std::string& k, const std::string& v) {
    if (k == "--data" && takes_data) data = v;
    else if (k == "--save") save = v;
    else if (k == "--resume") resume = v;
    else if (k == "--epochs") parse_number(v, epochs);
    else if (k == "--batch-size") parse_number(v, batch_size);
    else if (k == "--lr") parse_number(v, lr);
    else if (k == "--seed") parse_number(v, seed);
    else if (k == "--threads") parse_number(v, threads);
    else return false;
    return true;
  }

  // --epochs, --batch-size and --lr positive, --threads >= 0 (each example's message names
  // these together with its own flags' bounds).
  bool common_valid() const { return epochs >= 1 && batch_size >= 1 && lr > 0 && threads >= 0; }
};

// --threads N: N > 0 sets OpenMP's and Eigen's thread count; 0 leaves the default (all cores).
inline void set_threads(int n) {
  if (n <= 0) return;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  Eigen::setNbThreads(n);
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A one-line progress bar on stderr, only when stderr is a terminal.
class Progress {
 public:
  explicit Progress(heed::Index total) : total_(total), tty_(isatty(STDERR_FILENO)) {}
  void update(heed::Index done, double loss) {
    if (!tty_ || (done % 20 != 0 && done != total_)) return;
    const int width = 30, fill = static_cast<int>(width * done / total_);
    std::fprintf(stderr, "\r  [%.*s%*s] %ld/%ld loss %.4f", fill,
                 "==============================", width - fill, "", static_cast<long>(done),
                 static_cast<long>(total_), loss);
    if (done == total_) std::fprintf(stderr, "\r%*s\r", width + 40, "");
  }

 private:
  heed::Index total_;
  bool tty_;
};

// One epoch's bookkeeping: the running mean loss, shown in a progress bar, and the time since
// the epoch started. add(loss) after every batch.
class EpochMeter {
 public:
  explicit EpochMeter(heed::Index batches) : bar_(batches) {}
  void add(double loss) {
    loss_sum_ += loss;
    ++batches_;
    bar_.update(batches_, mean_loss());
  }
  double mean_loss() const { return loss_sum_ / static_cast<double>(batches_); }
  double seconds() const { return seconds_since(t0_); }

 private:
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
  Progress bar_;
  double loss_sum_ = 0;
  heed::Index batches_ = 0;
};

// ---- --save PATH / --resume PATH ------------------------------------------------------------
// A training run that can be killed and continued exactly. The example binds to state() what
// training changes: ck.model(m) (parameters, buffers and every module's dropout stream), the
// optimizer, the schedules, its own generators. TrainingRun adds the completed epochs, the
// training seconds, the shuffling generator, and the settings a resume must repeat. The file is
// written atomically at the end of every epoch, so a kill leaves the last completed epoch's
// state, and a NaN (heed::check_finite) stops training before anything is overwritten.
class TrainingRun {
 public:
  // --resume PATH alone keeps saving to PATH.
  explicit TrainingRun(const CommonArgs& a)
      : save_(a.save.empty() ? a.resume : a.save), resume_(a.resume) {
    ck_.value("epoch", epochs_done).value("seconds", seconds).generator("shuffle", shuffle_);
    setting("seed", "--seed", static_cast<double>(a.seed));
    setting("batch_size", "--batch-size", static_cast<double>(a.batch_size));
    setting("lr", "--lr", a.lr);
  }
  TrainingRun(const TrainingRun&) = delete;  // ck_ points into it

  heed::Checkpoint<float>& state() { return ck_; }

  // A setting a resume must repeat, stored as "train.<key>": setting("epochs", "--epochs", 10).
  // With choices, value is an index into them and messages name the choice.
  void setting(const std::string& key, const std::string& flag, double value,
               std::vector<std::string> choices = {}) {
    Setting& s = settings_.emplace_back(Setting{flag, value, value, std::move(choices)});
    ck_.value(key, s.saved);
  }

  // With --resume: loads everything bound, refuses a run with other settings, then calls
  // replay(epochs_done), which must redo the completed epochs' shuffles (each epoch shuffles
  // the previous one's order) and return the shuffling generator; it must equal the saved one.
  template <class Replay>
  void resume(Replay&& replay) {
    if (resume_.empty()) return;
    ck_.load(resume_);
    for (const Setting& s : settings_)
      if (s.saved != s.now)
        throw heed::ValueError("--resume " + resume_ + ": the checkpoint was written with " +
                               s.flag + " " + s.str(s.saved) + ", this run has " + s.flag + " " +
                               s.str(s.now));
    heed::Generator& replayed = replay(epochs_done);
    if (replayed.engine() != shuffle_.engine())
      throw heed::FormatError("--resume " + resume_ +
                              ": the shuffling state does not match the replayed epochs");
    std::printf("Resumed from %s after epoch %d\n", resume_.c_str(), epochs_done);
  }

  // After epoch `epoch` (1-based), which trained for `secs`: counts it and, with --save, writes
  // the checkpoint with `shuffle` as the shuffling state.
  void end_epoch(int epoch, double secs, const heed::Generator& shuffle) {
    epochs_done = epoch;
    seconds += secs;
    if (save_.empty()) return;
    shuffle_ = shuffle;
    ck_.save(save_);
  }

  int epochs_done = 0;
  double seconds = 0;  // training time of the completed epochs, across resumes

 private:
  struct Setting {
    std::string flag;
    double now, saved;  // this run's value; the checkpoint's once loaded
    std::vector<std::string> choices;
    std::string str(double v) const {
      const auto i = static_cast<std::size_t>(v);
      return i < choices.size() && static_cast<double>(i) == v ? choices[i] : heed::detail::num_str(v);
    }
  };
  std::string save_, resume_;
  heed::Checkpoint<float> ck_;
  heed::Generator shuffle_;
  std::deque<Setting> settings_;  // deque: ck_ holds pointers to the saved values
};

// ---- --init-from FILE / --export FILE / --epochs 0 (the MNIST classifiers) -----------------
// --export FILE is refused before training, not after it, when its directory does not exist.
inline void check_export_path(const std::string& path) {
  if (path.empty()) return;
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty() && !std::filesystem::is_directory(dir))
    throw heed::IoError("--export " + path + ": no directory " + dir.string());
}

// --init-from FILE: PyTorch's weights (safetensors or torch.save) by heed::load_weights, which
// lists every mismatch and leaves the model unchanged on error. Nothing when path is "".
template <class Model>
void init_from(Model& model, const std::string& path) {
  if (path.empty()) return;
  heed::load_weights(model, path);
  std::printf("Initialised from %s\n", path.c_str());
}

// After the epochs: the training time, or (--epochs 0) which weights are evaluated.
inline void print_training_time(const TrainingRun& run, bool init_from) {
  if (run.epochs_done == 0)
    std::printf("No training (--epochs 0): evaluating the %s weights\n", init_from ? "--init-from" : "initial");
  else
    std::printf("Training time: %.2f s (%.2f s per epoch)\n", run.seconds, run.seconds / run.epochs_done);
}

// --export FILE: the final weights as safetensors for PyTorch (keys: e.g. "fc1.weight ... fc4.bias").
template <class Model>
void export_weights(Model& model, const std::string& path, const char* keys) {
  if (path.empty()) return;
  heed::save_safetensors(model, path);
  std::printf("\nExported the weights to %s (safetensors, keys %s)\n", path.c_str(), keys);
}

// What main's catch prints for a heed::Error: "<program>: <message>", and after a NaN or
// infinity in training that the checkpoint was kept. Returns main's exit code, 1.
inline int report_error(const Usage& u, const heed::Error& e) {
  std::fprintf(stderr, "%s: %s\n", u.program, e.what());
  if (dynamic_cast<const heed::NumericError*>(&e))
    std::fprintf(stderr, "%s: training stopped; the last checkpoint (--save) is the last "
                 "completed epoch's and was left as it was\n", u.program);
  return 1;
}
// Anything else main's catch sees (std::bad_alloc, a std::filesystem::filesystem_error):
// "<program>: <what>" and exit code 1, never std::terminate.
inline int report_error(const Usage& u, const std::exception& e) {
  std::fprintf(stderr, "%s: %s\n", u.program, e.what());
  return 1;
}

// Logits of a single-input classifier for every row of `images`, normalised (x/255 - 0.5)/0.5
// as the MNIST examples train, in batches of `batch`, in eval mode (train mode restored). (N, C)
template <class Model>
heed::Matrix<float> predict(Model& model, const heed::ByteMatrix& images, heed::Index classes = 10,
                            heed::Index batch = 1000) {
  model.eval();
  heed::Matrix<float> logits(images.rows(), classes), x;
  for (heed::Index i = 0; i < images.rows(); i += batch) {
    const heed::Index n = std::min(batch, images.rows() - i);
    heed::normalize(images.middleRows(i, n), x, 0.5f, 0.5f);
    logits.middleRows(i, n) = model.forward(x);
  }
  model.train();
  return logits;
}

// Prints "Accuracy: xx.xx%" (scripts parse this line), then per-class precision, recall and F1
// and the confusion matrix. logits (N, C), labels (N). Returns the predicted classes (N).
inline heed::Labels print_test_report(const heed::Matrix<float>& logits,
                                     const heed::Labels& labels) {
  std::printf("Accuracy: %.2f%%\n", 100 * heed::accuracy(logits, labels));
  const heed::Labels pred = heed::argmax_rows(logits);
  const int classes = static_cast<int>(logits.cols());
  heed::ConfusionMatrix cm(classes);
  cm.update(pred, labels);
  std::printf("\nclass  precision  recall  f1\n");
  for (int c = 0; c < classes; ++c)
    std::printf("%5d  %9.4f  %6.4f  %6.4f\n", c, cm.precision(c), cm.recall(c), cm.f1(c));
  std::printf("macro  %9.4f  %6.4f  %6.4f\n\nConfusion matrix (rows: true, cols: predicted)\n%s",
              cm.macro_precision(), cm.macro_recall(), cm.macro_f1(), cm.to_string().c_str());
  return pred;
}

}  // namespace examples
