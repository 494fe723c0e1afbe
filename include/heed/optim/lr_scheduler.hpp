#pragma once
// Learning-rate schedules, as torch.optim.lr_scheduler. Call step() once per epoch (or once per
// optimizer step, for per-iteration schedules); each step sets opt.set_lr(...). Each takes an
// options struct with PyTorch's argument names and defaults, as the optimizers do:
//
//   heed::CosineAnnealingLR<float> sched(opt, {.T_max = 100});
//   for (epoch ...) { train(...); sched.step(); }
//
// PyTorch's required arguments (step_size, gamma of ExponentialLR, T_max, lr_lambda, ...) have no
// valid default here: leaving one out throws ValueError naming it.
//
// Every schedule is a closed form of the epoch counter and the base lr, so state is one number
// (last_epoch, 0 after construction, as in PyTorch) and a resumed run continues exactly. The base
// lr is the optimizer's initial_lr: set by the first scheduler attached to it, so schedulers
// built one after the other on one optimizer (for SequentialLR) all start from the same lr.
//
//   StepLR             lr = base * gamma^floor(epoch / step_size)
//   MultiStepLR        lr = base * gamma^(number of milestones <= epoch)
//   ExponentialLR      lr = base * gamma^epoch
//   CosineAnnealingLR  lr = eta_min + (base - eta_min) * (1 + cos(pi * epoch / T_max)) / 2
//   LinearLR           lr = base * (start + (end - start) * min(epoch, total_iters) / total_iters)
//   LambdaLR           lr = base * lambda(epoch)
//   SequentialLR       schedulers[i] from milestones[i-1] on, its own epoch restarting at 0
//   WarmupCosineLR     LinearLR(start_factor, 1, warmup) then CosineAnnealingLR(total - warmup)
//
// The arithmetic is done in double and rounded to T once (PyTorch computes lrs in Python floats).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include "optimizer.hpp"
#include "state_check.hpp"

namespace heed {

template <class T>
class LRScheduler {
 public:
  using State = typename Optimizer<T>::State;

  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  virtual std::string name() const = 0;

  // The lr at a given epoch (closed form; does not touch the optimizer).
  virtual double lr_at(std::int64_t epoch) const = 0;

  // Advances one epoch and sets the optimizer's lr.
  void step() { set_last_epoch(last_epoch() + 1); }

  // Jumps to an epoch (resuming), setting the optimizer's lr for it.
  void set_last_epoch(std::int64_t epoch) {
    detail::check_hyper(epoch >= 0, cls_, "last_epoch", ">= 0", static_cast<double>(epoch));
    // lr first: if it throws (a LambdaLR's bad lr), the epoch and the optimizer stay as they were.
    opt_.set_lr(static_cast<T>(lr_at(epoch)));
    epoch_(0, 0) = static_cast<T>(epoch);
  }

  std::int64_t last_epoch() const { return static_cast<std::int64_t>(epoch_(0, 0)); }
  // The lr set by the last step() (PyTorch's get_last_lr()[0]).
  T last_lr() const { return static_cast<T>(lr_at(last_epoch())); }
  T base_lr() const { return static_cast<T>(base_); }
  Optimizer<T>& optimizer() const { return opt_; }

  // {"last_epoch", (1, 1)} for checkpointing, like Optimizer::state(). The optimizer's own state
  // holds the lr, so restoring both resumes exactly.
  State state() { return {{"last_epoch", &epoch_}}; }
  // For Checkpoint::load: last_epoch must be a whole number >= 0.
  std::string validate_state(const std::string& name, const Matrix<T>& v) const {
    return name == "last_epoch" ? detail::counter_problem(cls_, name, v) : std::string();
  }

 protected:
  LRScheduler(Optimizer<T>& opt, const char* cls) : cls_(cls), opt_(opt), epoch_(Matrix<T>::Zero(1, 1)) {
    if (!opt.initial_lr()) opt.set_initial_lr(opt.lr());
    base_ = static_cast<double>(*opt.initial_lr());
  }

  // Derived constructors call this once their parameters are set: epoch 0's lr, as PyTorch's
  // constructor-time step.
  void start() { set_last_epoch(0); }

  const char* cls_;
  double base_ = 0;

 private:
  Optimizer<T>& opt_;
  Matrix<T> epoch_;
};

template <class T>
struct StepLROptions {
  std::int64_t step_size = 0;  // required: decay every step_size epochs (>= 1)
  double gamma = 0.1;
};

template <class T>
class StepLR : public LRScheduler<T> {
 public:
  StepLR(Optimizer<T>& opt, const StepLROptions<T>& o) : LRScheduler<T>(opt, "StepLR"), o_(o) {
    detail::check_hyper(o.step_size >= 1, "StepLR", "step_size", ">= 1", static_cast<double>(o.step_size));
    detail::check_nonneg("StepLR", "gamma", o.gamma);
    this->start();
  }
  std::string name() const override { return "StepLR"; }
  const StepLROptions<T>& options() const { return o_; }
  double lr_at(std::int64_t e) const override {
    return this->base_ * std::pow(o_.gamma, static_cast<double>(e / o_.step_size));
  }

 private:
  StepLROptions<T> o_;
};

template <class T>
struct MultiStepLROptions {
  std::vector<std::int64_t> milestones{};  // epochs at which lr is multiplied by gamma (>= 0)
  double gamma = 0.1;
};

template <class T>
class MultiStepLR : public LRScheduler<T> {
 public:
  MultiStepLR(Optimizer<T>& opt, const MultiStepLROptions<T>& o)
      : LRScheduler<T>(opt, "MultiStepLR"), o_(o) {
    for (std::size_t i = 0; i < o_.milestones.size(); ++i)
      if (o_.milestones[i] < 0)
        throw ValueError("MultiStepLR: milestones expected >= 0, got " +
                         std::to_string(o_.milestones[i]) + " at index " + std::to_string(i));
    detail::check_nonneg("MultiStepLR", "gamma", o.gamma);
    std::sort(o_.milestones.begin(), o_.milestones.end());  // PyTorch counts them as a multiset
    this->start();
  }
  std::string name() const override { return "MultiStepLR"; }
  // milestones sorted.
  const MultiStepLROptions<T>& options() const { return o_; }
  double lr_at(std::int64_t e) const override {
    const auto& m = o_.milestones;
    const auto n = std::upper_bound(m.begin(), m.end(), e) - m.begin();
    return this->base_ * std::pow(o_.gamma, static_cast<double>(n));
  }

 private:
  MultiStepLROptions<T> o_;
};

template <class T>
struct ExponentialLROptions {
  double gamma = std::numeric_limits<double>::quiet_NaN();  // required: lr *= gamma each epoch
};

template <class T>
class ExponentialLR : public LRScheduler<T> {
 public:
  ExponentialLR(Optimizer<T>& opt, const ExponentialLROptions<T>& o)
      : LRScheduler<T>(opt, "ExponentialLR"), o_(o) {
    detail::check_nonneg("ExponentialLR", "gamma", o.gamma);
    this->start();
  }
  std::string name() const override { return "ExponentialLR"; }
  const ExponentialLROptions<T>& options() const { return o_; }
  double lr_at(std::int64_t e) const override {
    return this->base_ * std::pow(o_.gamma, static_cast<double>(e));
  }

 private:
  ExponentialLROptions<T> o_;
};

template <class T>
struct CosineAnnealingLROptions {
  std::int64_t T_max = 0;  // required: half-period in epochs (>= 1)
  double eta_min = 0;
};

template <class T>
class CosineAnnealingLR : public LRScheduler<T> {
 public:
  CosineAnnealingLR(Optimizer<T>& opt, const CosineAnnealingLROptions<T>& o)
      : LRScheduler<T>(opt, "CosineAnnealingLR"), o_(o) {
    detail::check_hyper(o.T_max >= 1, "CosineAnnealingLR", "T_max", ">= 1", static_cast<double>(o.T_max));
    detail::check_nonneg("CosineAnnealingLR", "eta_min", o.eta_min);
    this->start();
  }
  std::string name() const override { return "CosineAnnealingLR"; }
  const CosineAnnealingLROptions<T>& options() const { return o_; }
  double lr_at(std::int64_t e) const override {
    const double pi_e = std::numbers::pi * static_cast<double>(e);
    return o_.eta_min + (this->base_ - o_.eta_min) * (1 + std::cos(pi_e / static_cast<double>(o_.T_max))) / 2;
  }

 private:
  CosineAnnealingLROptions<T> o_;
};

template <class T>
struct LinearLROptions {
  double start_factor = 1.0 / 3;
  double end_factor = 1.0;
  std::int64_t total_iters = 5;
};

// Linear warm-up (or decay) of a multiplicative factor over total_iters steps.
template <class T>
class LinearLR : public LRScheduler<T> {
 public:
  explicit LinearLR(Optimizer<T>& opt, const LinearLROptions<T>& o = {})
      : LRScheduler<T>(opt, "LinearLR"), o_(o) {
    detail::check_hyper(o.start_factor > 0 && o.start_factor <= 1, "LinearLR", "start_factor",
                        "a value in (0, 1]", o.start_factor);
    detail::check_hyper(o.end_factor >= 0 && o.end_factor <= 1, "LinearLR", "end_factor",
                        "a value in [0, 1]", o.end_factor);
    detail::check_hyper(o.total_iters >= 1, "LinearLR", "total_iters", ">= 1",
                        static_cast<double>(o.total_iters));
    this->start();
  }
  std::string name() const override { return "LinearLR"; }
  const LinearLROptions<T>& options() const { return o_; }
  double lr_at(std::int64_t e) const override {
    const double f = o_.start_factor + (o_.end_factor - o_.start_factor) *
                                           static_cast<double>(std::min(o_.total_iters, e)) /
                                           static_cast<double>(o_.total_iters);
    return this->base_ * f;
  }

 private:
  LinearLROptions<T> o_;
};

template <class T>
struct LambdaLROptions {
  std::function<double(std::int64_t)> lr_lambda{};  // required: epoch -> factor of the base lr
};

template <class T>
class LambdaLR : public LRScheduler<T> {
 public:
  LambdaLR(Optimizer<T>& opt, const LambdaLROptions<T>& o) : LRScheduler<T>(opt, "LambdaLR"), o_(o) {
    if (!o_.lr_lambda) throw ValueError("LambdaLR: lr_lambda expected a function, got an empty one");
    this->start();
  }
  std::string name() const override { return "LambdaLR"; }
  const LambdaLROptions<T>& options() const { return o_; }
  // Checked here rather than left to the optimizer's set_lr, so the error names the lambda and
  // the epoch (also when run inside a SequentialLR). Finite in T too: a float lr may overflow.
  double lr_at(std::int64_t e) const override {
    const double f = o_.lr_lambda(e), lr = this->base_ * f;
    if (!(std::isfinite(static_cast<T>(lr)) && lr >= 0))
      throw ValueError("LambdaLR: lr_lambda(" + std::to_string(e) + ") gave an invalid lr " +
                       detail::num_str(lr) + " (factor " + detail::num_str(f) + " x base lr " +
                       detail::num_str(this->base_) + "), expected a finite value >= 0");
    return lr;
  }

 private:
  LambdaLROptions<T> o_;
};

template <class T>
struct SequentialLROptions {
  std::vector<std::shared_ptr<LRScheduler<T>>> schedulers{};  // required, all on this optimizer
  std::vector<std::int64_t> milestones{};  // one fewer than schedulers, strictly increasing, >= 1
};

// Runs schedulers[0] until milestones[0], then schedulers[1] (its epoch counted from 0 again)
// until milestones[1], and so on. Warm-up then cosine:
//
//   heed::SequentialLR<float> sched(opt, {
//       .schedulers = {std::make_shared<heed::LinearLR<float>>(opt, heed::LinearLROptions<float>{
//                          .start_factor = 0.1, .total_iters = 5}),
//                      std::make_shared<heed::CosineAnnealingLR<float>>(
//                          opt, heed::CosineAnnealingLROptions<float>{.T_max = 95})},
//       .milestones = {5}});
template <class T>
class SequentialLR : public LRScheduler<T> {
 public:
  SequentialLR(Optimizer<T>& opt, const SequentialLROptions<T>& o)
      : LRScheduler<T>(opt, "SequentialLR"), o_(o) {
    const auto& s = o_.schedulers;
    const auto& m = o_.milestones;
    if (s.empty()) throw ValueError("SequentialLR: expected at least one scheduler, got 0");
    if (m.size() + 1 != s.size())
      throw ValueError("SequentialLR: expected " + std::to_string(s.size() - 1) +
                       " milestones (one fewer than schedulers), got " + std::to_string(m.size()));
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (!s[i]) throw ValueError("SequentialLR: scheduler " + std::to_string(i) + " is null");
      if (&s[i]->optimizer() != &opt)
        throw ValueError("SequentialLR: scheduler " + std::to_string(i) + " (" + s[i]->name() +
                         ") expected to drive the same optimizer, got another one");
    }
    for (std::size_t i = 0; i < m.size(); ++i)
      if (m[i] < 1 || (i > 0 && m[i] <= m[i - 1]))
        throw ValueError("SequentialLR: milestones expected strictly increasing and >= 1, got " +
                         std::to_string(m[i]) + " at index " + std::to_string(i));
    this->start();
  }
  std::string name() const override { return "SequentialLR"; }
  const SequentialLROptions<T>& options() const { return o_; }
  double lr_at(std::int64_t e) const override {
    const auto& m = o_.milestones;
    const auto i = static_cast<std::size_t>(std::upper_bound(m.begin(), m.end(), e) - m.begin());
    return o_.schedulers[i]->lr_at(e - (i > 0 ? m[i - 1] : 0));
  }

 private:
  SequentialLROptions<T> o_;
};

template <class T>
struct WarmupCosineLROptions {
  std::int64_t warmup_iters = 0;
  std::int64_t total_iters = 0;  // required: > warmup_iters
  double start_factor = 0.01;
  double eta_min = 0;
};

// Linear warm-up from base * start_factor to base over `warmup_iters`, then cosine annealing to
// eta_min at `total_iters` (the usual transformer schedule). Identical to
// SequentialLR({LinearLR(start_factor, 1, warmup_iters), CosineAnnealingLR(total_iters -
// warmup_iters, eta_min)}, {warmup_iters}), without the shared_ptrs.
template <class T>
class WarmupCosineLR : public LRScheduler<T> {
 public:
  WarmupCosineLR(Optimizer<T>& opt, const WarmupCosineLROptions<T>& o)
      : LRScheduler<T>(opt, "WarmupCosineLR"), o_(o) {
    const char* c = "WarmupCosineLR";
    detail::check_hyper(o.warmup_iters >= 0, c, "warmup_iters", ">= 0", static_cast<double>(o.warmup_iters));
    if (o.total_iters <= o.warmup_iters)
      throw ValueError("WarmupCosineLR: total_iters expected > warmup_iters (" +
                       std::to_string(o.warmup_iters) + "), got " + std::to_string(o.total_iters));
    detail::check_hyper(o.start_factor > 0 && o.start_factor <= 1, c, "start_factor",
                        "a value in (0, 1]", o.start_factor);
    detail::check_nonneg(c, "eta_min", o.eta_min);
    this->start();
  }
  std::string name() const override { return "WarmupCosineLR"; }
  const WarmupCosineLROptions<T>& options() const { return o_; }
  double lr_at(std::int64_t e) const override {
    const double warm = static_cast<double>(o_.warmup_iters);
    if (e < o_.warmup_iters)
      return this->base_ * (o_.start_factor + (1 - o_.start_factor) * static_cast<double>(e) / warm);
    const double t = static_cast<double>(e - o_.warmup_iters) /
                     static_cast<double>(o_.total_iters - o_.warmup_iters);
    return o_.eta_min + (this->base_ - o_.eta_min) * (1 + std::cos(std::numbers::pi * t)) / 2;
  }

 private:
  WarmupCosineLROptions<T> o_;
};

}  // namespace heed
