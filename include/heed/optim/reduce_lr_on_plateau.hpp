#pragma once
// ReduceLROnPlateau, as torch.optim.lr_scheduler.ReduceLROnPlateau: step(metric) once per epoch;
// after more than `patience` epochs without improvement the lr is multiplied by `factor`
// (floored at min_lr), then `cooldown` epochs pass before bad epochs are counted again.
//
//   better (Min, Rel):  metric < best * (1 - threshold)     (Max, Rel): metric > best * (1 + threshold)
//   better (Min, Abs):  metric < best - threshold           (Max, Abs): metric > best + threshold
//   reduce:             new = max(lr * factor, min_lr), applied only if lr - new > eps
//
// Unlike the epoch schedules it reads and writes the optimizer's current lr (not a base lr).
// state() holds its counters as (1, 1) tensors for checkpointing.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "mode.hpp"
#include "optimizer.hpp"
#include "state_check.hpp"

namespace heed {

enum class ThresholdMode { Rel, Abs };

template <class T>
struct ReduceLROnPlateauOptions {
  Mode mode = Mode::Min;
  double factor = 0.1;
  std::int64_t patience = 10;
  double threshold = 1e-4;
  ThresholdMode threshold_mode = ThresholdMode::Rel;
  std::int64_t cooldown = 0;
  double min_lr = 0;
  double eps = 1e-8;
};

template <class T>
class ReduceLROnPlateau {
 public:
  using State = typename Optimizer<T>::State;

  explicit ReduceLROnPlateau(Optimizer<T>& opt, const ReduceLROnPlateauOptions<T>& o = {})
      : opt_(opt), o_(o) {
    const char* c = "ReduceLROnPlateau";
    detail::check_hyper(o.factor >= 0 && o.factor < 1, c, "factor", "a value in [0, 1)", o.factor);
    detail::check_hyper(o.patience >= 0, c, "patience", ">= 0", static_cast<double>(o.patience));
    detail::check_nonneg(c, "threshold", o.threshold);
    detail::check_hyper(o.cooldown >= 0, c, "cooldown", ">= 0", static_cast<double>(o.cooldown));
    detail::check_nonneg(c, "min_lr", o.min_lr);
    detail::check_nonneg(c, "eps", o.eps);
    reset();
  }

  // Records one epoch's metric and reduces the lr if it has plateaued.
  void step(T metric) {
    const double m = static_cast<double>(metric);
    at(epoch_) += 1;
    if (better(m)) {
      at(best_) = metric;
      at(bad_) = 0;
    } else {
      at(bad_) += 1;
    }
    if (at(cooldown_) > 0) {
      at(cooldown_) -= 1;
      at(bad_) = 0;
    }
    if (at(bad_) > static_cast<T>(o_.patience)) {
      const double old_lr = static_cast<double>(opt_.lr());
      const double new_lr = std::max(old_lr * o_.factor, o_.min_lr);
      if (old_lr - new_lr > o_.eps) opt_.set_lr(static_cast<T>(new_lr));
      at(cooldown_) = static_cast<T>(o_.cooldown);
      at(bad_) = 0;
    }
  }

  T last_lr() const { return opt_.lr(); }
  T best() const { return best_(0, 0); }
  std::int64_t num_bad_epochs() const { return static_cast<std::int64_t>(bad_(0, 0)); }
  std::int64_t last_epoch() const { return static_cast<std::int64_t>(epoch_(0, 0)); }
  bool in_cooldown() const { return cooldown_(0, 0) > 0; }

  void reset() {
    at(best_) = o_.mode == Mode::Min ? std::numeric_limits<T>::infinity()
                                     : -std::numeric_limits<T>::infinity();
    at(bad_) = at(cooldown_) = at(epoch_) = 0;
  }

  State state() {
    return {{"best", &best_}, {"num_bad_epochs", &bad_}, {"cooldown_counter", &cooldown_},
            {"last_epoch", &epoch_}};
  }
  // For Checkpoint::load: the counters are whole numbers >= 0 and best is not NaN.
  std::string validate_state(const std::string& name, const Matrix<T>& v) const {
    if (name == "best") return detail::metric_problem("ReduceLROnPlateau", name, v);
    return detail::counter_problem("ReduceLROnPlateau", name, v);
  }

 private:
  static T& at(Matrix<T>& m) { return m(0, 0); }

  bool better(double a) const {
    const double best = static_cast<double>(best_(0, 0)), t = o_.threshold;
    const bool rel = o_.threshold_mode == ThresholdMode::Rel;
    if (o_.mode == Mode::Min) return a < (rel ? best * (1 - t) : best - t);
    return a > (rel ? best * (1 + t) : best + t);
  }

  Optimizer<T>& opt_;
  ReduceLROnPlateauOptions<T> o_;
  Matrix<T> best_ = Matrix<T>::Zero(1, 1), bad_ = Matrix<T>::Zero(1, 1),
            cooldown_ = Matrix<T>::Zero(1, 1), epoch_ = Matrix<T>::Zero(1, 1);
};

}  // namespace heed
