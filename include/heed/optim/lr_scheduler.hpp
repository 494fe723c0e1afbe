#pragma once
// Learning-rate schedules, as torch.optim.lr_scheduler. Call step() once per epoch (or once per
// optimizer step, for per-iteration schedules); each step sets opt.set_lr(...):
//
//   heed::CosineAnnealingLR<float> sched(opt, 100);
//   for (epoch ...) { train(...); sched.step(); }
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
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "optimizer.hpp"

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
    epoch_(0, 0) = static_cast<T>(epoch);
    opt_.set_lr(static_cast<T>(lr_at(epoch)));
  }

  std::int64_t last_epoch() const { return static_cast<std::int64_t>(epoch_(0, 0)); }
  // The lr set by the last step() (PyTorch's get_last_lr()[0]).
  T last_lr() const { return static_cast<T>(lr_at(last_epoch())); }
  T base_lr() const { return static_cast<T>(base_); }
  Optimizer<T>& optimizer() const { return opt_; }

  // {"last_epoch", (1, 1)} for checkpointing, like Optimizer::state(). The optimizer's own state
  // holds the lr, so restoring both resumes exactly.
  State state() { return {{"last_epoch", &epoch_}}; }

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
class StepLR : public LRScheduler<T> {
 public:
  StepLR(Optimizer<T>& opt, std::int64_t step_size, double gamma = 0.1)
      : LRScheduler<T>(opt, "StepLR"), step_size_(step_size), gamma_(gamma) {
    detail::check_hyper(step_size >= 1, "StepLR", "step_size", ">= 1", static_cast<double>(step_size));
    detail::check_nonneg("StepLR", "gamma", gamma);
    this->start();
  }
  std::string name() const override { return "StepLR"; }
  double lr_at(std::int64_t e) const override {
    return this->base_ * std::pow(gamma_, static_cast<double>(e / step_size_));
  }

 private:
  std::int64_t step_size_;
  double gamma_;
};

template <class T>
class MultiStepLR : public LRScheduler<T> {
 public:
  MultiStepLR(Optimizer<T>& opt, std::vector<std::int64_t> milestones, double gamma = 0.1)
      : LRScheduler<T>(opt, "MultiStepLR"), milestones_(std::move(milestones)), gamma_(gamma) {
    detail::check_nonneg("MultiStepLR", "gamma", gamma);
    std::sort(milestones_.begin(), milestones_.end());  // PyTorch counts them as a multiset
    this->start();
  }
  std::string name() const override { return "MultiStepLR"; }
  double lr_at(std::int64_t e) const override {
    const auto n = std::upper_bound(milestones_.begin(), milestones_.end(), e) - milestones_.begin();
    return this->base_ * std::pow(gamma_, static_cast<double>(n));
  }

 private:
  std::vector<std::int64_t> milestones_;
  double gamma_;
};

template <class T>
class ExponentialLR : public LRScheduler<T> {
 public:
  ExponentialLR(Optimizer<T>& opt, double gamma) : LRScheduler<T>(opt, "ExponentialLR"), gamma_(gamma) {
    detail::check_nonneg("ExponentialLR", "gamma", gamma);
    this->start();
  }
  std::string name() const override { return "ExponentialLR"; }
  double lr_at(std::int64_t e) const override {
    return this->base_ * std::pow(gamma_, static_cast<double>(e));
  }

 private:
  double gamma_;
};

template <class T>
class CosineAnnealingLR : public LRScheduler<T> {
 public:
  CosineAnnealingLR(Optimizer<T>& opt, std::int64_t T_max, double eta_min = 0)
      : LRScheduler<T>(opt, "CosineAnnealingLR"), T_max_(T_max), eta_min_(eta_min) {
    detail::check_hyper(T_max >= 1, "CosineAnnealingLR", "T_max", ">= 1", static_cast<double>(T_max));
    detail::check_nonneg("CosineAnnealingLR", "eta_min", eta_min);
    this->start();
  }
  std::string name() const override { return "CosineAnnealingLR"; }
  double lr_at(std::int64_t e) const override {
    const double pi = 3.14159265358979323846;
    return eta_min_ + (this->base_ - eta_min_) *
                          (1 + std::cos(pi * static_cast<double>(e) / static_cast<double>(T_max_))) / 2;
  }

 private:
  std::int64_t T_max_;
  double eta_min_;
};

// Linear warm-up (or decay) of a multiplicative factor over total_iters steps.
template <class T>
class LinearLR : public LRScheduler<T> {
 public:
  LinearLR(Optimizer<T>& opt, double start_factor = 1.0 / 3, double end_factor = 1.0,
           std::int64_t total_iters = 5)
      : LRScheduler<T>(opt, "LinearLR"), start_(start_factor), end_(end_factor), total_(total_iters) {
    detail::check_hyper(start_factor > 0 && start_factor <= 1, "LinearLR", "start_factor",
                        "a value in (0, 1]", start_factor);
    detail::check_hyper(end_factor >= 0 && end_factor <= 1, "LinearLR", "end_factor",
                        "a value in [0, 1]", end_factor);
    detail::check_hyper(total_iters >= 1, "LinearLR", "total_iters", ">= 1", static_cast<double>(total_iters));
    this->start();
  }
  std::string name() const override { return "LinearLR"; }
  double lr_at(std::int64_t e) const override {
    const double f = start_ + (end_ - start_) * static_cast<double>(std::min(total_, e)) /
                                  static_cast<double>(total_);
    return this->base_ * f;
  }

 private:
  double start_, end_;
  std::int64_t total_;
};

template <class T>
class LambdaLR : public LRScheduler<T> {
 public:
  LambdaLR(Optimizer<T>& opt, std::function<double(std::int64_t)> lr_lambda)
      : LRScheduler<T>(opt, "LambdaLR"), f_(std::move(lr_lambda)) {
    if (!f_) throw ValueError("LambdaLR: lr_lambda expected a function, got an empty one");
    this->start();
  }
  std::string name() const override { return "LambdaLR"; }
  double lr_at(std::int64_t e) const override { return this->base_ * f_(e); }

 private:
  std::function<double(std::int64_t)> f_;
};

// Runs schedulers[0] until milestones[0], then schedulers[1] (its epoch counted from 0 again)
// until milestones[1], and so on. Warm-up then cosine:
//
//   heed::SequentialLR<float> sched(opt,
//       {std::make_shared<heed::LinearLR<float>>(opt, 0.1, 1.0, 5),
//        std::make_shared<heed::CosineAnnealingLR<float>>(opt, 95)}, {5});
template <class T>
class SequentialLR : public LRScheduler<T> {
 public:
  SequentialLR(Optimizer<T>& opt, std::vector<std::shared_ptr<LRScheduler<T>>> schedulers,
               std::vector<std::int64_t> milestones)
      : LRScheduler<T>(opt, "SequentialLR"), s_(std::move(schedulers)), m_(std::move(milestones)) {
    if (s_.empty()) throw ValueError("SequentialLR: expected at least one scheduler, got 0");
    if (m_.size() + 1 != s_.size())
      throw ValueError("SequentialLR: expected " + std::to_string(s_.size() - 1) +
                       " milestones (one fewer than schedulers), got " + std::to_string(m_.size()));
    for (std::size_t i = 0; i < s_.size(); ++i) {
      if (!s_[i]) throw ValueError("SequentialLR: scheduler " + std::to_string(i) + " is null");
      if (&s_[i]->optimizer() != &opt)
        throw ValueError("SequentialLR: scheduler " + std::to_string(i) + " (" + s_[i]->name() +
                         ") expected to drive the same optimizer, got another one");
    }
    for (std::size_t i = 0; i < m_.size(); ++i)
      if (m_[i] < 1 || (i > 0 && m_[i] <= m_[i - 1]))
        throw ValueError("SequentialLR: milestones expected strictly increasing and >= 1, got " +
                         std::to_string(m_[i]) + " at index " + std::to_string(i));
    this->start();
  }
  std::string name() const override { return "SequentialLR"; }
  double lr_at(std::int64_t e) const override {
    const auto i = static_cast<std::size_t>(std::upper_bound(m_.begin(), m_.end(), e) - m_.begin());
    return s_[i]->lr_at(e - (i > 0 ? m_[i - 1] : 0));
  }

 private:
  std::vector<std::shared_ptr<LRScheduler<T>>> s_;
  std::vector<std::int64_t> m_;
};

// Linear warm-up from base * start_factor to base over `warmup_iters`, then cosine annealing to
// eta_min at `total_iters` (the usual transformer schedule). Identical to
// SequentialLR({LinearLR(start_factor, 1, warmup_iters), CosineAnnealingLR(total_iters -
// warmup_iters, eta_min)}, {warmup_iters}), without the shared_ptrs.
template <class T>
class WarmupCosineLR : public LRScheduler<T> {
 public:
  WarmupCosineLR(Optimizer<T>& opt, std::int64_t warmup_iters, std::int64_t total_iters,
                 double start_factor = 0.01, double eta_min = 0)
      : LRScheduler<T>(opt, "WarmupCosineLR"), warmup_(warmup_iters), total_(total_iters),
        start_(start_factor), eta_min_(eta_min) {
    const char* c = "WarmupCosineLR";
    detail::check_hyper(warmup_iters >= 0, c, "warmup_iters", ">= 0", static_cast<double>(warmup_iters));
    if (total_iters <= warmup_iters)
      throw ValueError("WarmupCosineLR: total_iters expected > warmup_iters (" +
                       std::to_string(warmup_iters) + "), got " + std::to_string(total_iters));
    detail::check_hyper(start_factor > 0 && start_factor <= 1, c, "start_factor",
                        "a value in (0, 1]", start_factor);
    detail::check_nonneg(c, "eta_min", eta_min);
    this->start();
  }
  std::string name() const override { return "WarmupCosineLR"; }
  double lr_at(std::int64_t e) const override {
    if (e < warmup_)
      return this->base_ * (start_ + (1 - start_) * static_cast<double>(e) / static_cast<double>(warmup_));
    const double pi = 3.14159265358979323846;
    const double t = static_cast<double>(e - warmup_) / static_cast<double>(total_ - warmup_);
    return eta_min_ + (this->base_ - eta_min_) * (1 + std::cos(pi * t)) / 2;
  }

 private:
  std::int64_t warmup_, total_;
  double start_, eta_min_;
};

}  // namespace heed
