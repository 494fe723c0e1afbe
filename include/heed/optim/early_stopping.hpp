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
// consecutive epochs have passed without improvement. NaN never improves. state() exposes the
// counters for io::Checkpoint, so a resumed run keeps its patience count.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "mode.hpp"
#include "optimizer.hpp"
#include "state_check.hpp"

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
    const T best = best_(0, 0);
    const bool better = std::isfinite(static_cast<double>(metric)) &&
                        (best_epoch() < 0 || (o_.mode == Mode::Min ? metric < best - o_.min_delta
                                                                   : metric > best + o_.min_delta));
    improved_ = better;
    if (better) {
      best_(0, 0) = metric;
      best_epoch_(0, 0) = epoch_(0, 0);
      bad_(0, 0) = 0;
    } else {
      bad_(0, 0) += 1;
    }
    epoch_(0, 0) += 1;
    return should_stop();
  }

  bool should_stop() const { return bad_epochs() > 0 && bad_epochs() >= o_.patience; }
  // Whether the last step() set a new best: the moment to save a checkpoint.
  bool improved() const { return improved_; }
  // Best metric so far (meaningless before the first finite metric: check best_epoch() >= 0).
  T best() const { return best_(0, 0); }
  // 0-based index of the step() call that set best(), -1 if none has.
  std::int64_t best_epoch() const { return count(best_epoch_); }
  // Epochs since the last improvement, and epochs seen.
  std::int64_t bad_epochs() const { return count(bad_); }
  std::int64_t epochs() const { return count(epoch_); }
  const EarlyStoppingOptions<T>& options() const { return o_; }

  void reset() {
    best_(0, 0) = 0;
    best_epoch_(0, 0) = -1;
    bad_(0, 0) = epoch_(0, 0) = 0;
    improved_ = false;
  }

  // The counters as (1, 1) tensors, for io::Checkpoint (like Optimizer::state()).
  typename Optimizer<T>::State state() {
    return {{"best", &best_}, {"best_epoch", &best_epoch_}, {"num_bad_epochs", &bad_},
            {"epochs", &epoch_}};
  }
  // For Checkpoint::load: the counters are whole numbers (best_epoch >= -1, the others >= 0),
  // and best is not NaN.
  std::string validate_state(const std::string& name, const Matrix<T>& v) const {
    if (name == "best") return detail::metric_problem("EarlyStopping", name, v);
    return detail::counter_problem("EarlyStopping", name, v, name == "best_epoch" ? -1 : 0);
  }

 private:
  static std::int64_t count(const Matrix<T>& m) { return static_cast<std::int64_t>(m(0, 0)); }

  EarlyStoppingOptions<T> o_;
  Matrix<T> best_ = Matrix<T>::Zero(1, 1), best_epoch_ = Matrix<T>::Constant(1, 1, T(-1)),
            bad_ = Matrix<T>::Zero(1, 1), epoch_ = Matrix<T>::Zero(1, 1);
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
