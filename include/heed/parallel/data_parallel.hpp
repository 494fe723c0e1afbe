#pragma once
// DataParallel: a training step's forward and backward split over threads by rows of the
// batch, the gradients reduced once, as torch.nn.DataParallel / DistributedDataParallel within
// one process.
//
// Why: threading each matrix product (Eigen's OpenMP) forks and joins ~20 times per MLP step,
// and on a shared machine every join waits for whichever thread was descheduled: with another
// process on one of 2 cores, 2 threads ran 2x slower than 1. Here a step synchronises 3 times,
// and each thread takes the next shard when it is free, so a slowed thread does less of them.
//
// A step over `rows` rows:
//   (0) the rows are cut into `shards` consecutive shards, shard s = rows [s*rows/S, (s+1)*rows/S);
//       their number is fixed by the options, not by the thread count;
//   (1) replica s (s >= 1; made by your factory) gets the model's parameters, buffers and
//       train/eval modes; its gradients are zeroed;
//   (2) shard 0 runs on the model itself, shard s on replica s, as threads become free: forward,
//       loss, and backward of weight_s x the shard's loss, weight_s the shard's share of the
//       batch's loss denominator (its rows, for a plain mean), so that the weighted sum is the
//       whole batch's loss and gradient;
//   (3) model.grad += replica_1.grad + ... + replica_{S-1}.grad, in shard order (the model's own
//       gradients hold shard 0's, accumulated as any backward accumulates).
// Every product inside (2) runs serially on its thread (Eigen and heed's gemm do not nest
// inside a parallel region), so for a given `shards` the results are bit-identical whatever the
// thread count, and equal to the unsharded step up to the order of the float sums. Except:
//   * BatchNorm normalises each shard with the shard's own statistics (as DistributedDataParallel
//     without SyncBatchNorm); the running statistics are the model's, updated by shard 0.
//   * Random streams (Dropout): shard 0 draws from the model's; replica s's streams are
//     reseeded each step from one draw of the model's, so checkpointing the model's streams
//     resumes a run exactly.
// With shards = 1 a step is the plain one, its products threaded by Eigen as usual.
//
// Threads on a shared machine: a step of the MNIST MLP takes ~1 ms, far less than a scheduler
// time slice, so when another process shares a core the thread on it holds up every step's
// barrier (measured: 2 threads 1.75x slower than 1). Since the thread count does not change the
// results, `adaptive` (the default) measures it instead: the run uses Eigen::nbThreads()
// threads or 1 (with Eigen::setNbThreads(1) meanwhile, so the products inside round as on one
// thread), whichever was faster per row, and every 64 steps tries the other for 2 steps
// (steps 8 and 9, 72 and 73, ...). last_threads() tells which ran.
//
//   heed::DataParallel<Net> dp(model, [] { return make_net(); }, {.shards = 4});
//   optimizer.zero_grad();
//   float loss = dp.step(x, y, criterion);   // forward, loss and backward, all shards
//   optimizer.step();                        // the model's parameters, as usual
//
// The model must stay where it is (DataParallel keeps pointers to its tensors) and the factory
// must build the same architecture (checked: names and shapes).
#include <any>
#include <chrono>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../core/error.hpp"
#include "../core/module.hpp"
#include "../core/tensor.hpp"

namespace heed {

struct DataParallelOptions {
  // Shards per step; 0: the thread count (Eigen::nbThreads()) when constructed. Fix it for
  // results that do not depend on the machine.
  int shards = 0;
  // Choose each step's thread count, 1 or Eigen::nbThreads(), by measuring both (see above);
  // false: always Eigen::nbThreads().
  bool adaptive = true;
};

namespace detail {

// Rows [b, b + n) of a target: labels or a matrix of regression targets.
inline auto target_rows(const Labels& y, Index b, Index n) { return y.segment(b, n); }
template <typename T>
auto target_rows(const Matrix<T>& y, Index b, Index n) { return y.middleRows(b, n); }
inline Index target_count(const Labels& y) { return y.size(); }
template <typename T>
Index target_count(const Matrix<T>& y) { return y.rows(); }

// What a loss's mean divides by over rows [b, b + n): the rows, or for a loss with per-class
// weights or ignored targets (CrossEntropyLoss) the sum of the counted rows' class weights.
template <class Loss, class Target>
double loss_denominator(const Loss& loss, const Target& y, Index b, Index n) {
  if constexpr (requires { loss.options().ignore_index; }) {
    const auto& o = loss.options();
    double d = 0;
    for (Index i = b; i < b + n; ++i) {
      const int c = y(i);
      if (c == o.ignore_index) continue;
      d += o.weight.empty() || c < 0 || c >= static_cast<int>(o.weight.size())
               ? 1.0 : static_cast<double>(o.weight[c]);  // an out-of-range class: the loss's error
    }
    return d;
  } else {
    return static_cast<double>(n);
  }
}

}  // namespace detail

template <class Model>
class DataParallel {
 public:
  using T = typename Model::Scalar;

  // `model` is trained; `make_replica()` builds another of its kind (its initial values do not
  // matter: they are replaced by the model's before every step).
  DataParallel(Model& model, const std::function<Model()>& make_replica, DataParallelOptions opt = {})
      : model_(model), shards_(opt.shards == 0 ? std::max(1, Eigen::nbThreads()) : opt.shards),
        adaptive_(opt.adaptive) {
    detail::require(opt.shards >= 0, "DataParallel",
                    "shards must be >= 0 (0: the thread count), got " + std::to_string(opt.shards));
    main_ = view(model_);
    for (int s = 1; s < shards_; ++s) {
      replicas_.push_back(std::make_unique<Model>(make_replica()));
      views_.push_back(view(*replicas_.back()));
      check_same(views_.back(), s);
    }
    // (3)'s work list: every parameter cut into chunks of at most kChunk values.
    for (std::size_t p = 0; p < main_.params.size(); ++p)
      for (Index off = 0; off < main_.params[p].grad->size(); off += kChunk)
        chunks_.push_back({p, off, std::min<Index>(kChunk, main_.params[p].grad->size() - off)});
  }

  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int shards() const { return shards_; }
  // The thread count the last step ran with.
  int last_threads() const { return last_threads_; }
  Model& module() { return model_; }
  // Replica s (1 <= s < shards()); shard 0 runs on module().
  Model& replica(int s) {
    detail::require(s >= 1 && s < shards_, "DataParallel",
                    "replica index must be in [1, " + std::to_string(shards_) + "), got " + std::to_string(s));
    return *replicas_[s - 1];
  }

  // One step of a single-input model and a loss: forward, loss and backward on every shard;
  // returns the batch's loss (as criterion.forward(model.forward(x), y) would) and leaves the
  // batch's gradients accumulated in the model. x (B, in); y B labels or (B, *) targets.
  template <class Loss, class Target>
  T step(const ConstRef<T>& x, const Target& y, const Loss& criterion) {
    static_assert(std::is_base_of_v<Module<T>, Model>, "DataParallel::step needs a Module<T>; use run()");
    const Index B = x.rows();
    if (detail::target_count(y) != B)
      throw ShapeError("DataParallel: input has " + std::to_string(B) + " rows but the target " +
                       std::to_string(detail::target_count(y)));
    detail::require(B >= 1, "DataParallel", "empty batch");
    auto& losses = shard_losses(criterion);
    if (dlogits_.size() < static_cast<std::size_t>(shards_)) dlogits_.resize(shards_);
    const Index S = std::min<Index>(shards_, B);
    std::vector<double>& den = denominators_;
    den.assign(S, 0.0);
    double total = 0;
    for (Index s = 0; s < S; ++s) {
      const Index b = s * B / S, e = (s + 1) * B / S;
      total += den[s] = detail::loss_denominator(criterion, y, b, e - b);
    }
    return run_shards(S, B, [&](Model& m, Index s, Index b, Index n) {
      Loss& crit = losses[s];
      const T w = total > 0 ? static_cast<T>(den[s] / total) : T(0);
      const T loss = crit.forward(m.forward(x.middleRows(b, n)), detail::target_rows(y, b, n));
      Matrix<T>& d = dlogits_[s];
      d = w * crit.backward();  // d(w_s loss_s) / d(output)
      m.backward(d);
      shard_out_[s] = total > 0 ? w * loss : T(0);  // nothing counted: 0, as CrossEntropyLoss
    });
  }

  // Any model: f(model_or_replica, s, b, n, weight) runs shard s's forward and backward, rows
  // [b, b + n), with the backward started from weight x d(its loss) (weight = n / rows, the
  // shard's share of a plain mean), and returns weight x its loss; run returns the sum over
  // shards. Shards run at the same time: anything f keeps per call (a loss module) must be
  // shard s's own.
  template <class F>
  T run(Index rows, F&& f) {
    detail::require(rows >= 1, "DataParallel", "run() needs at least one row, got " + std::to_string(rows));
    const Index S = std::min<Index>(shards_, rows);
    return run_shards(S, rows, [&](Model& m, Index s, Index b, Index n) {
      shard_out_[s] = f(m, s, b, n, static_cast<T>(static_cast<double>(n) / static_cast<double>(rows)));
    });
  }

 private:
  static constexpr Index kChunk = 1 << 14;
  struct View {  // a model's tensors and modules, in registry order
    std::vector<Parameter<T>> params;
    std::vector<Buffer<T>> buffers;
    std::vector<NamedModule<T>> modules;
    std::vector<std::pair<std::string, Generator*>> generators;
  };
  struct Chunk {
    std::size_t param;
    Index offset, size;
  };

  // Eigen::setNbThreads(1) for a scope, then the count it had (a process-wide setting: heed's
  // gemm, for_each_slice and Eigen's products all read it).
  struct SerialEigen {
    int saved = 0;
    explicit SerialEigen(bool on) {
      if (!on) return;
      saved = Eigen::nbThreads();
      Eigen::setNbThreads(1);
    }
    ~SerialEigen() {
      if (saved > 0) Eigen::setNbThreads(saved);
    }
    SerialEigen(const SerialEigen&) = delete;
    SerialEigen& operator=(const SerialEigen&) = delete;
  };

  static View view(Model& m) { return {m.parameters(), m.buffers(), m.named_modules(), m.generators()}; }

  void check_same(const View& r, int s) const {
    auto fail = [&](const std::string& what) {
      throw ValueError("DataParallel: replica " + std::to_string(s) + " from the factory differs from the model: " + what);
    };
    if (r.params.size() != main_.params.size() || r.buffers.size() != main_.buffers.size() ||
        r.modules.size() != main_.modules.size() || r.generators.size() != main_.generators.size())
      fail("another number of parameters, buffers, modules or random streams");
    for (std::size_t i = 0; i < r.params.size(); ++i)
      if (r.params[i].name != main_.params[i].name || r.params[i].value->rows() != main_.params[i].value->rows() ||
          r.params[i].value->cols() != main_.params[i].value->cols())
        fail("parameter '" + main_.params[i].name + "' " +
             detail::shape_str(main_.params[i].value->rows(), main_.params[i].value->cols()) + ", replica's '" +
             r.params[i].name + "' " + detail::shape_str(r.params[i].value->rows(), r.params[i].value->cols()));
    for (std::size_t i = 0; i < r.buffers.size(); ++i)
      if (r.buffers[i].name != main_.buffers[i].name) fail("buffer '" + main_.buffers[i].name + "'");
  }

  template <class Loss>
  std::vector<Loss>& shard_losses(const Loss& proto) {
    static_assert(std::is_copy_constructible_v<Loss>, "DataParallel::step copies the loss for each shard");
    auto* v = std::any_cast<std::vector<Loss>>(&losses_);
    if (!v) {
      losses_ = std::vector<Loss>(shards_, proto);
      v = std::any_cast<std::vector<Loss>>(&losses_);
    } else {
      for (Loss& l : *v) l = proto;  // every step: the criterion's options as they are now
    }
    return *v;
  }

  // (1) model -> replica s: values, buffers, modes; its gradients zeroed.
  void sync(std::size_t r) {
    View& v = views_[r];
    for (std::size_t i = 0; i < v.params.size(); ++i) {
      *v.params[i].value = *main_.params[i].value;
      v.params[i].grad->setZero();
    }
    for (std::size_t i = 0; i < v.buffers.size(); ++i) *v.buffers[i].value = *main_.buffers[i].value;
  }

  // Modes and random streams, on the calling thread before the shards start.
  void prepare() {
    bool changed = modes_.size() != main_.modules.size();
    modes_.resize(main_.modules.size());
    for (std::size_t i = 0; i < main_.modules.size(); ++i) {
      const bool on = main_.modules[i].second->training();
      changed = changed || modes_[i] != on;
      modes_[i] = on;
    }
    for (View& v : views_) {
      if (changed)  // parents first: a module's train() resets its children, then they are set
        for (std::size_t i = 0; i < v.modules.size(); ++i) v.modules[i].second->train(modes_[i]);
      for (std::size_t g = 0; g < v.generators.size(); ++g) v.generators[g].second->seed(main_.generators[g].second->bits());
    }
  }

  // (3) for chunk c: model.grad += replica grads, in shard order.
  void reduce(const Chunk& c, Index S) {
    const Parameter<T>& p = main_.params[c.param];
    Eigen::Map<Vector<T>> dst(p.grad->data() + c.offset, c.size);
    for (Index s = 1; s < S; ++s)
      dst += Eigen::Map<const Vector<T>>(views_[s - 1].params[c.param].grad->data() + c.offset, c.size);
  }

  // Steps (1)-(3) over S shards of `rows` rows; shard(model, s, b, n) does shard s's (2).
  template <class F>
  T run_shards(Index S, Index rows, F&& shard) {
    prepare();
    bounds_.resize(S + 1);
    for (Index s = 0; s <= S; ++s) bounds_[s] = s * rows / S;
    shard_out_.assign(S, T(0));
    // Each shard's exception in its own slot (no lock); the first in shard order is rethrown.
    errors_.assign(S, nullptr);
    auto one = [&](Index s) {
      try {
        shard(s == 0 ? model_ : *replicas_[s - 1], s, bounds_[s], bounds_[s + 1] - bounds_[s]);
      } catch (...) {
        errors_[s] = std::current_exception();
      }
    };
    auto failed = [&] {
      for (const auto& e : errors_)
        if (e) return true;
      return false;
    };
    int most = 1;
#ifdef _OPENMP
    if (!omp_in_parallel()) most = static_cast<int>(std::min<Index>(Eigen::nbThreads(), S));
#endif
    // adaptive: 1 thread or `most`, the faster per row so far; every 64 steps 2 of the other.
    const int pick = most <= 1 || !adaptive_ ? 1 : (step_ % 64 == 8 || step_ % 64 == 9) ? 1 - fast_ : fast_;
    const int threads = most <= 1 ? 1 : !adaptive_ ? most : pick == 0 ? 1 : most;
    ++step_;
    last_threads_ = threads;
    const auto t0 = std::chrono::steady_clock::now();
    if (threads <= 1) {
      // One thread although more are allowed (adaptive): keep the products serial too, so that
      // they round as inside the parallel region (Eigen's threaded GEMM blocks differently).
      // (Also when a batch has fewer rows than shards: the products of shards = S would.)
      const SerialEigen serial(most > 1 || (S < shards_ && Eigen::nbThreads() > 1));
      for (Index s = 1; s < S; ++s) sync(s - 1);
      for (Index s = 0; s < S; ++s) one(s);
      if (!failed())
        for (const Chunk& c : chunks_) reduce(c, S);
    }
#ifdef _OPENMP
    else {
#pragma omp parallel num_threads(threads)
      {
#pragma omp for schedule(dynamic, 1)
        for (Index s = 1; s < S; ++s) sync(s - 1);  // (1)
#pragma omp for schedule(dynamic, 1)
        for (Index s = 0; s < S; ++s) one(s);       // (2)
        if (!failed()) {                            // the same for every thread after the barrier
#pragma omp for schedule(static)
          for (std::size_t c = 0; c < chunks_.size(); ++c) reduce(chunks_[c], S);  // (3)
        }
      }
    }
#endif
    for (const auto& e : errors_)
      if (e) std::rethrow_exception(e);  // the model's gradients are then unspecified
    if (most > 1 && adaptive_ && step_ > 1) {  // (not the first step: allocations) seconds per row: the chosen setting's average, the other's last probe
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / rows;
      per_row_[pick] = pick == fast_ && per_row_[pick] > 0 ? 0.8 * per_row_[pick] + 0.2 * dt : dt;
      if (per_row_[0] > 0 && per_row_[1] > 0 && pick != fast_ && step_ % 64 == 10)
        fast_ = per_row_[0] < per_row_[1] ? 0 : 1;
    }
    T total = 0;
    for (Index s = 0; s < S; ++s) total += shard_out_[s];
    return total;
  }

  Model& model_;
  int shards_;
  bool adaptive_;
  // adaptive: per_row_[0] with 1 thread, per_row_[1] with all; fast_ the one in use.
  double per_row_[2] = {0, 0};
  int fast_ = 1;
  long step_ = 0;
  int last_threads_ = 1;
  std::vector<std::unique_ptr<Model>> replicas_;  // shards - 1
  View main_;
  std::vector<View> views_;  // one per replica
  std::vector<Chunk> chunks_;
  std::vector<bool> modes_;
  std::vector<T> shard_out_;
  std::vector<double> denominators_;
  std::vector<Index> bounds_;
  std::vector<std::exception_ptr> errors_;
  std::vector<Matrix<T>> dlogits_;
  std::any losses_;
};

}  // namespace heed
