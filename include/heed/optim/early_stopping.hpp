#pragma once
// Early stopping on a validation metric, as Keras' / Lightning's EarlyStopping:
//
//   heed::EarlyStopping<float> stop({.patience = 5, .mode = heed::Mode::Max});
//   std::vector<heed::Matrix<float>> best;
//   for (epoch ...) {
//     train(...);
//     if (stop.step(val_acc)) break;
//     if (stop.improved()) heed::snapshot_parameters(net.parameters(), best);
//   }
//   heed::restore_parameters(net.parameters(), best);   // "restore best weights"
//
// A metric improves when it beats the best so far by more than min_delta (Min: metric <
// best - min_delta; Max: metric > best + min_delta). step() returns true once patience
// consecutive epochs have passed without improvement. NaN never improves.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "mode.hpp"
#include "optimizer.hpp"

namespace heed {

template <class T>
struct EarlyStoppingOptions {
  std::int64_t patience = 10;
  T min_delta = 0;
  Mode mode = Mode::Min;
};

template <class T>
class EarlyStopping {
 public:
  explicit EarlyStopping(const EarlyStoppingOptions<T>& o = {}) : o_(o) {
    detail::check_hyper(o.patience >= 0, "EarlyStopping", "patience", ">= 0",
                        static_cast<double>(o.patience));
    detail::check_nonneg("EarlyStopping", "min_delta", static_cast<double>(o.min_delta));
  }

  // Records one epoch's metric; true when training should stop.
  bool step(T metric) {
    const bool better = std::isfinite(static_cast<double>(metric)) &&
                        (best_epoch_ < 0 || (o_.mode == Mode::Min ? metric < best_ - o_.min_delta
                                                                  : metric > best_ + o_.min_delta));
    improved_ = better;
    if (better) {
      best_ = metric;
      best_epoch_ = epoch_;
      bad_epochs_ = 0;
    } else {
      ++bad_epochs_;
    }
    ++epoch_;
    return should_stop();
  }

  bool should_stop() const { return bad_epochs_ > 0 && bad_epochs_ >= o_.patience; }
  // Whether the last step() set a new best: the moment to save a checkpoint.
  bool improved() const { return improved_; }
  // Best metric so far (meaningless before the first finite metric: check best_epoch() >= 0).
  T best() const { return best_; }
  // 0-based index of the step() call that set best(), -1 if none has.
  std::int64_t best_epoch() const { return best_epoch_; }
  // Epochs since the last improvement, and epochs seen.
  std::int64_t bad_epochs() const { return bad_epochs_; }
  std::int64_t epochs() const { return epoch_; }
  const EarlyStoppingOptions<T>& options() const { return o_; }

  // Restores the counters (resuming a run from a checkpoint of these four values).
  void load(T best, std::int64_t best_epoch, std::int64_t bad_epochs, std::int64_t epochs) {
    best_ = best;
    best_epoch_ = best_epoch;
    bad_epochs_ = bad_epochs;
    epoch_ = epochs;
    improved_ = false;
  }

  void reset() { load(T(0), -1, 0, 0); }

 private:
  EarlyStoppingOptions<T> o_;
  T best_ = 0;
  std::int64_t best_epoch_ = -1;
  std::int64_t bad_epochs_ = 0;
  std::int64_t epoch_ = 0;
  bool improved_ = false;
};

// Copies every parameter's value into `out` (resized to match; no allocation once sized).
template <class T>
void snapshot_parameters(const std::vector<Parameter<T>>& params, std::vector<Matrix<T>>& out) {
  out.resize(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) out[i] = *params[i].value;
}

template <class T>
std::vector<Matrix<T>> snapshot_parameters(const std::vector<Parameter<T>>& params) {
  std::vector<Matrix<T>> out;
  snapshot_parameters(params, out);
  return out;
}

// Writes a snapshot back; every tensor must match its parameter's shape.
template <class T>
void restore_parameters(const std::vector<Parameter<T>>& params,
                        const std::vector<Matrix<T>>& snapshot) {
  if (snapshot.size() != params.size())
    throw ValueError("restore_parameters: expected a snapshot of " + std::to_string(params.size()) +
                     " tensors, got " + std::to_string(snapshot.size()));
  for (std::size_t i = 0; i < params.size(); ++i)
    detail::check_shape("restore_parameters", ("snapshot of '" + params[i].name + "'").c_str(),
                        snapshot[i], params[i].value->rows(), params[i].value->cols());
  for (std::size_t i = 0; i < params.size(); ++i) *params[i].value = snapshot[i];
}

}  // namespace heed
