#pragma once
// The optimizer interface, as torch.optim.Optimizer with one parameter group:
//
//   opt.zero_grad();  loss = ...;  net.backward(...);  opt.step();
//
// An optimizer holds the parameters' {value, grad} pointers (owned by the modules) and its own
// per-parameter buffers. state() lists every tensor needed to resume training bit-exactly:
// "step" and "lr" as (1, 1) tensors, then "<key>.<buffer>" with PyTorch's buffer names
// (momentum_buffer, exp_avg, exp_avg_sq, ...). <key> is the parameter's name when all names are
// unique (duplicates are refused) and none is empty, else its index in the list (as in PyTorch).
// The step counter is kept in a T tensor so io::Checkpoint stores it with the rest; it is exact
// up to 2^24 steps in float.
//
// Adam's, AdamW's and RMSprop's step() never write a non-finite value into a running average of
// the gradient: an update that would (exp_avg_sq after a gradient above ~1.8e19 in float, whose
// square overflows; any NaN or inf gradient) is refused with a NumericError before any weight or
// buffer changes, so training can go on with the next batch and a checkpoint saved afterwards
// still loads. Weights are assumed finite (a NaN weight is only seen through weight_decay). See
// check_update() and detail::ema_grad_limit(); SGD has no such check (see sgd.hpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/module.hpp"
#include "../core/tensor.hpp"

namespace heed {

namespace detail {

inline std::string num_str(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// ValueError "<cls>: invalid <what>, expected <expected>, got <v>" unless ok.
inline void check_hyper(bool ok, const char* cls, const char* what, const char* expected,
                        double v) {
  if (!ok)
    throw ValueError(std::string(cls) + ": invalid " + what + ", expected " + expected + ", got " +
                     num_str(v));
}

// The common checks: finite and >= 0.
inline void check_nonneg(const char* cls, const char* what, double v) {
  check_hyper(std::isfinite(v) && v >= 0, cls, what, "a finite value >= 0", v);
}

// Largest gradient magnitude G such that, for every |g| <= G and every finite buffer value b,
// the running average b' = beta * b + (1 - beta) * x, evaluated in T as
// fl(fl(beta * b) + fl(fl(1 - beta) * x)) with x = g (power 1) or x = g * g (power 2), stays
// finite. Negative when no such bound exists (beta so close to 1, or above it, that beta * b may
// round up past max<T>); the caller then checks element by element.
//
// Why it holds: rounding is monotone and max<T> = M is representable, so an operation whose exact
// result is <= M cannot overflow. With k = 1 + 16 eps (> 1 + u per rounding, and slack for an ulp
// of difference in g, e.g. a contracted multiply-add, and for this bound's own double arithmetic):
// fl(beta b) <= beta M k, fl(x) <= X and fl(c x) <= c X k with X = M (1 - beta k) / (c k), so the
// sum is <= M. For power 2, x = g^2 <= X needs G <= sqrt(X) / k. The bound is conservative only
// for gradients near sqrt(M) (1.8e19 in float, 1.3e154 in double): far from any normal value.
template <class T>
T ema_grad_limit(double beta, int power) {
  const double M = static_cast<double>(std::numeric_limits<T>::max());
  const double k = 1 + 16 * static_cast<double>(std::numeric_limits<T>::epsilon());
  // The constants update() uses: T(beta) and T(1 - beta), both rounded from the double.
  const double b = static_cast<double>(static_cast<T>(beta)), c = static_cast<double>(static_cast<T>(1 - beta));
  if (!(c > 0)) return T(-1);
  const double ratio = std::min((1 - b * k) / (c * k), 1 / k);
  if (!(ratio > 0)) return T(-1);
  const double X = M * ratio;
  const double lim = power == 2 ? std::sqrt(X) / k : X / k;
  T l = static_cast<T>(lim);
  if (static_cast<double>(l) > lim) l = std::nextafter(l, T(0));
  return l;
}

// True if every |grad + l2 * param| <= lim, false for any NaN or inf: the cheap prescan of
// check_update(). It bounds the max by the sum of |g| over each chunk of 4096 elements (a
// rounded sum of non-negative terms is >= each term, and NaN and inf propagate): one
// vectorised reduction, where Eigen's NaN-propagating maxCoeff is not vectorised and costs 3x
// more. Conservative only when a chunk's sum exceeds lim (1.8e19 in float); the caller then
// checks element by element, so nothing is refused for that. Chunks are shared over threads for
// large tensors, like the updates; `param` is not read when l2 is 0.
template <class T>
bool grad_within(const Matrix<T>& grad, const Matrix<T>& param, T l2, T lim) {
  using CMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  constexpr Index kChunk = 4096;
  const Index n = grad.size(), chunks = (n + kChunk - 1) / kChunk;
  const T* gd = grad.data();
  const T* pd = param.data();
  Index bad = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(+ : bad) num_threads(Eigen::nbThreads()) if (n >= 65536)
#endif
  for (Index c = 0; c < chunks; ++c) {
    const Index j0 = c * kChunk, len = std::min(kChunk, n - j0);
    const CMap g(gd + j0, len);
    const T sum = l2 == T(0) ? g.abs().sum() : (g + l2 * CMap(pd + j0, len)).abs().sum();
    bad += !(sum <= lim);
  }
  return bad == 0;
}

}  // namespace detail

template <class T>
class Optimizer {
 public:
  using Scalar = T;
  using State = std::vector<std::pair<std::string, Matrix<T>*>>;

  virtual ~Optimizer() = default;
  // Schedulers keep a reference to their optimizer and state() hands out pointers into it.
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Short class name for messages ("SGD", "Adam", ...).
  virtual std::string name() const = 0;

  // Sets every gradient to zero (PyTorch's set_to_none has no meaning for Eigen buffers).
  void zero_grad() {
    for (auto& p : params_) p.grad->setZero();
  }

  // One update of every parameter from its current grad. Throws NumericError, with nothing
  // changed (weights, buffers, step count), if the update would make a buffer non-finite: see
  // check_update().
  virtual void step() {
    for (const auto& p : params_) check_grad(p);
    check_update(step_count() + 1);
    step_(0, 0) += T(1);
    update(step_count());
  }

  T lr() const { return lr_(0, 0); }
  void set_lr(T lr) {
    detail::check_nonneg(cls(), "lr", static_cast<double>(lr));
    lr_(0, 0) = lr;
  }

  // The lr schedulers start from: set by the first scheduler attached (PyTorch's
  // param_group["initial_lr"]), so a second scheduler sees the same base lr as the first.
  std::optional<T> initial_lr() const { return initial_lr_; }
  void set_initial_lr(T lr) { initial_lr_ = lr; }

  const std::vector<Parameter<T>>& parameters() const { return params_; }

  // Number of step() calls so far (PyTorch's state[p]["step"]).
  std::int64_t step_count() const { return static_cast<std::int64_t>(step_(0, 0)); }
  void set_step_count(std::int64_t n) {
    detail::check_hyper(n >= 0, cls(), "step count", ">= 0", static_cast<double>(n));
    step_(0, 0) = static_cast<T>(n);
  }

  // Every tensor of the optimizer's state, by name, for checkpointing. Loading values into
  // these tensors (same shapes) restores the optimizer exactly.
  State state() {
    State s{{"step", &step_}, {"lr", &lr_}};
    append_state(s);
    return s;
  }

  // Empty if `v` may be assigned to the state() tensor called `name`, else what is wrong with
  // it. io::Checkpoint asks before loading anything, so a file cannot set what set_step_count()
  // and set_lr() refuse, nor a buffer that would turn the next step() into NaN: "step" must be
  // a whole number in [0, 2^53], "lr" finite and >= 0, every buffer finite (and the second
  // moments >= 0: see validate_buffer). Shapes are checked by the caller.
  std::string validate_state(const std::string& name, const Matrix<T>& v) const {
    if (name == "step" || name == "lr") {
      if (v.size() != 1) return "expected a (1, 1) tensor";
      const double d = static_cast<double>(v(0, 0));
      if (name == "step" && !(std::isfinite(d) && d >= 0 && d == std::trunc(d) && d <= 0x1p53))
        return std::string(cls()) + " step count must be a whole number in [0, 2^53], got " +
               detail::num_str(d);
      if (name == "lr" && !(std::isfinite(d) && d >= 0))
        return std::string(cls()) + " lr must be a finite value >= 0, got " + detail::num_str(d);
      return {};
    }
    const auto dot = name.rfind('.');
    const std::string buffer = dot == std::string::npos ? name : name.substr(dot + 1);
    for (Index i = 0; i < v.size(); ++i) {
      const double d = static_cast<double>(v.data()[i]);
      if (std::string what = validate_buffer(buffer, d); !what.empty())
        return std::string(cls()) + " " + buffer + " " + what + ", got " + detail::num_str(d) +
               " at element " + std::to_string(i);
    }
    return {};
  }

 protected:
  Optimizer(std::vector<Parameter<T>> params, T lr, const char* cls_name)
      : params_(std::move(params)), cls_(cls_name), step_(Matrix<T>::Zero(1, 1)),
        lr_(Matrix<T>::Constant(1, 1, lr)) {
    detail::check_nonneg(cls(), "lr", static_cast<double>(lr));
    if (params_.empty()) throw ValueError(std::string(cls()) + ": got an empty parameter list");
    // Names key the state in checkpoints, so two parameters of one name (modules merged
    // without prefixes) are refused; so is one tensor listed twice, which would be stepped twice.
    std::map<std::string, std::size_t> names;
    std::map<const Matrix<T>*, std::size_t> tensors;
    std::string dups;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto& p = params_[i];
      if (p.value == nullptr || p.grad == nullptr)
        throw ValueError(std::string(cls()) + ": parameter " + std::to_string(i) + " ('" + p.name +
                         "') has a null value or grad");
      check_grad(p);
      if (const auto [it, fresh] = tensors.emplace(p.value, i); !fresh)
        throw ValueError(std::string(cls()) + ": parameters " + std::to_string(it->second) + " ('" +
                         params_[it->second].name + "') and " + std::to_string(i) + " ('" + p.name +
                         "') are the same tensor");
      if (p.name.empty()) continue;
      if (const auto [it, fresh] = names.emplace(p.name, i); !fresh)
        dups += (dups.empty() ? "'" : ", '") + p.name + "' (" + std::to_string(it->second) + " and " +
                std::to_string(i) + ")";
    }
    if (!dups.empty())
      throw ValueError(std::string(cls()) + ": duplicate parameter names " + dups +
                       "; prefix each module's names (a container's parameters() does)");
    named_keys_ = names.size() == params_.size();  // no empty name: state keyed by name
  }

  // The update for step number t (1 for the first step), grads already shape-checked.
  virtual void update(std::int64_t t) = 0;

  // Called by step() before anything changes: throws NumericError (overflow_error()) if
  // update(t) would write a non-finite value into a buffer. Must not modify anything. The
  // default checks nothing (SGD: its momentum buffer can only overflow for gradients near
  // max<T>, which overflow the weights as well; use check_finite for NaN and inf).
  virtual void check_update(std::int64_t t) const { (void)t; }

  // The NumericError check_update() throws: the update of step t would make `buffer` of
  // parameter i non-finite because of element j of its gradient, g = grad + l2 * param.
  NumericError overflow_error(std::size_t i, const char* buffer, std::int64_t t, Index j, T g,
                              bool l2) const {
    const auto& p = params_[i];
    const std::string who = p.name.empty() ? "parameter " + std::to_string(i) : "'" + p.name + "'";
    const std::string grad = l2 ? "gradient + weight_decay * weight" : "gradient";
    const double gd = static_cast<double>(g);
    const std::string head = std::string(cls()) + ": step " + std::to_string(t) + " would make " +
                             buffer + " of " + who + " non-finite: " + grad + " element " +
                             std::to_string(j);
    const std::string kept = "; refused, weights and state are unchanged. ";
    if (!std::isfinite(gd))
      return NumericError(head + " is " + detail::num_str(gd) + kept +
                          "Skip this batch, or find its source: heed::check_finite before "
                          "step() names the module");
    return NumericError(head + " has magnitude " + detail::num_str(std::abs(gd)) +
                        ", too large for " + (std::is_same_v<T, float> ? "float" : "double") +
                        " (the buffer would overflow)" + kept +
                        "Clip gradients before step(), e.g. heed::clip_grad_norm_(params, 1.0), "
                        "or skip this batch");
  }

  // Subclasses add their buffers, e.g. s.push_back({key(i) + ".exp_avg", &m_[i]}).
  virtual void append_state(State& s) = 0;

  // Empty if one element `x` of a buffer called `buffer` ("exp_avg", ...) is valid, else what
  // it must be ("must be ..."). By default every buffer must be finite.
  virtual std::string validate_buffer(const std::string& buffer, double x) const {
    (void)buffer;
    return std::isfinite(x) ? std::string() : std::string("must be finite");
  }

  std::string key(std::size_t i) const {
    return named_keys_ ? params_[i].name : std::to_string(i);
  }

  const char* cls() const { return cls_; }

  // A zero buffer shaped like each parameter.
  std::vector<Matrix<T>> zeros_like_params() const {
    std::vector<Matrix<T>> b;
    b.reserve(params_.size());
    for (const auto& p : params_) b.push_back(Matrix<T>::Zero(p.value->rows(), p.value->cols()));
    return b;
  }

  std::vector<Parameter<T>> params_;

 private:
  void check_grad(const Parameter<T>& p) const {
    if (p.grad->rows() != p.value->rows() || p.grad->cols() != p.value->cols())
      throw ShapeError(std::string(cls()) + ": grad of '" + p.name + "' expected " +
                       detail::shape_str(p.value->rows(), p.value->cols()) + ", got " +
                       detail::shape_str(p.grad->rows(), p.grad->cols()));
  }

  const char* cls_;
  bool named_keys_ = true;
  Matrix<T> step_;
  Matrix<T> lr_;
  std::optional<T> initial_lr_;
};

}  // namespace heed
