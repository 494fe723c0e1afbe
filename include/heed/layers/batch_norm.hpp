#pragma once
// BatchNorm1d and BatchNorm2d, as torch.nn.BatchNorm1d / nn.BatchNorm2d, over one core.
//
// Input (N, C*S) in PyTorch's memory order, channel c of sample n at columns [c*S, (c+1)*S):
// BatchNorm2d's S = H*W ((N, C*H*W) from a Conv2d), BatchNorm1d's S = L ((N, C*L) from a
// Conv1d) or 1 ((N, C), after a Linear). C is the constructor's num_features; S is read from
// each input's width, so the module needs no spatial size. Each channel is normalised over its
// M = N*S values:
//
//   training (or track_running_stats=false):
//     mu_c  = (1/M) sum x                   var_c = (1/M) sum (x - mu_c)^2  (biased)         (1)
//     running_mean = (1 - m) running_mean + m mu_c                                           (2)
//     running_var  = (1 - m) running_var  + m var_c * M/(M - 1)   (unbiased, as PyTorch)     (2)
//     num_batches_tracked += 1;  m = momentum, or 1/num_batches_tracked when momentum is
//     nullopt (PyTorch's momentum=None: the cumulative average)
//   eval: mu_c = running_mean_c, var_c = running_var_c
//   rstd_c = 1/sqrt(var_c + eps),  xhat = (x - mu_c) rstd_c                                  (3)
//   y = gamma_c xhat + beta_c          (gamma = weight, beta = bias; 1 and 0 when affine=false) (4)
//
// State dict as PyTorch's: weight (C), bias (C), running_mean (C), running_var (C),
// num_batches_tracked () int64 (Buffer::count).
#include <cmath>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "../core/module.hpp"

namespace heed {

struct BatchNormOptions {
  double eps = 1e-5;
  std::optional<double> momentum = 0.1;  // std::nullopt: cumulative average (PyTorch's None)
  bool affine = true;
  bool track_running_stats = true;
};

namespace detail {

template <typename T>
class BatchNormCore : public Module<T> {
 public:
  // forward                                          x (N, C*S) -> y (N, C*S)
  const Matrix<T>& forward(const ConstRef<T>& x) override {
    const Index C = C_;
    const Index N = x.rows(), S = channel_positions(name_, x.rows(), x.cols(), C, "num_features", 1), M = N * S;
    const bool batch_stats = this->training_ || !track_;
    if (batch_stats && M <= 1)  // PyTorch's check too (it normalises with the batch then, eval or not)
      throw ValueError(std::string(name_) + ": expected more than 1 value per channel when using the batch's "
                       "statistics (training, or track_running_stats=false), got input " + shape_str(N, x.cols()) +
                       " (" + std::to_string(M) + " per channel)");
    batch_stats_ = batch_stats;  // after every check: a refused input leaves the last forward's state
    S_ = S;
    xhat_.resize(N, C * S);  // (N, C*S)
    y_.resize(N, C * S);     // (N, C*S)
    const bool update = this->training_ && track_;
    if (update) num_batches_(0, 0) += T(1);
    const double m = !update ? 0.0 : momentum_ ? *momentum_ : 1.0 / static_cast<double>(num_batches_(0, 0));
    for (Index c = 0; c < C; ++c) {
      const auto xc = x.middleCols(c * S, S).array();  // (N, S)
      auto d = xhat_.middleCols(c * S, S).array();     // x - mu, then xhat
      T var;
      if (batch_stats_) {
        // The sums in double, as PyTorch's CPU kernel (acc_type<float> is double): a channel
        // of a conv net's batch holds 10^4-10^5 values.
        const T mu = static_cast<T>(xc.template cast<double>().sum() / static_cast<double>(M));  // (1)
        d = xc - mu;
        var = static_cast<T>(d.template cast<double>().square().sum() / static_cast<double>(M));  // (1)
        if (update) {                                  // (2)
          running_mean_(0, c) = static_cast<T>((1 - m) * running_mean_(0, c) + m * mu);
          running_var_(0, c) = static_cast<T>((1 - m) * running_var_(0, c) +
                                              m * var * static_cast<T>(M) / static_cast<T>(M - 1));
        }
      } else {
        d = xc - running_mean_(0, c);
        var = running_var_(0, c);
      }
      rstd_(c) = T(1) / std::sqrt(var + static_cast<T>(eps_));  // (3)
      d *= rstd_(c);                                             // (3)
      auto yc = y_.middleCols(c * S, S).array();
      if (affine_) yc = d * gamma_(0, c) + beta_(0, c);          // (4)
      else yc = d;
    }
    return y_;
  }

  // backward                                       dy (N, C*S) -> dx (N, C*S)
  const Matrix<T>& backward(const ConstRef<T>& dy) override {
    detail::require_forward(S_ > 0, name_);
    detail::check_shape(name_, "gradient", dy, xhat_.rows(), xhat_.cols());
    const Index C = C_, S = S_, M = xhat_.rows() * S;
    const bool want_dx = this->input_grad_;
    if (want_dx) dx_.resize(dy.rows(), dy.cols());
    else dx_.resize(0, dy.cols());
    for (Index c = 0; c < C; ++c) {
      const auto dyc = dy.middleCols(c * S, S).array();    // (N, S)
      const auto xh = xhat_.middleCols(c * S, S).array();  // (N, S)
      const T sum_dy = dyc.sum(), sum_dy_xhat = (dyc * xh).sum();
      if (affine_) {
        dgamma_(0, c) += sum_dy_xhat;  // d(4) wrt gamma
        dbeta_(0, c) += sum_dy;        // d(4) wrt beta
      }
      if (!want_dx) continue;
      const T g = affine_ ? gamma_(0, c) : T(1);
      auto dxc = dx_.middleCols(c * S, S).array();
      if (batch_stats_) {
        // d(4) then d(3) and d(1): mu and var depend on x, so with dxhat = g dy,
        //   dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), means over the M values.
        const T k = g * rstd_(c), mean_dy = sum_dy / static_cast<T>(M), mean_dy_xhat = sum_dy_xhat / static_cast<T>(M);
        dxc = k * (dyc - mean_dy - xh * mean_dy_xhat);
      } else {
        dxc = dyc * (g * rstd_(c));  // d(4), d(3) with the running statistics constant
      }
    }
    return dx_;
  }

  std::vector<Parameter<T>> local_parameters() override {
    if (!affine_) return {};
    return {vector_parameter("weight", &gamma_, &dgamma_), vector_parameter("bias", &beta_, &dbeta_)};
  }
  std::vector<Buffer<T>> local_buffers() override {
    if (!track_) return {};
    return {vector_buffer("running_mean", &running_mean_), vector_buffer("running_var", &running_var_),
            count_buffer("num_batches_tracked", &num_batches_)};
  }

  std::string name() const override { return std::string(name_); }
  std::string extra_repr() const override {
    std::ostringstream s;  // as PyTorch's, in heed's spelling: "32, eps=1e-05, momentum=0.1, affine=true, track_running_stats=true"
    s << C_ << ", eps=" << eps_ << ", momentum=";
    if (momentum_) s << *momentum_;
    else s << "nullopt";
    s << ", affine=" << (affine_ ? "true" : "false") << ", track_running_stats=" << (track_ ? "true" : "false");
    return s.str();
  }

  // running_mean = 0, running_var = 1, num_batches_tracked = 0, as PyTorch's.
  void reset_running_stats() {
    running_mean_.setZero(1, C_);
    running_var_.setOnes(1, C_);
    num_batches_.setZero(1, 1);
  }

  Index num_features() const { return C_; }
  Matrix<T>& weight() { return gamma_; }              // (1, C)
  Matrix<T>& bias() { return beta_; }                 // (1, C)
  Matrix<T>& running_mean() { return running_mean_; }  // (1, C)
  Matrix<T>& running_var() { return running_var_; }    // (1, C)
  Index num_batches_tracked() const { return static_cast<Index>(num_batches_(0, 0)); }

 protected:
  BatchNormCore(std::string_view name, Index num_features, const BatchNormOptions& o)
      : name_(name), C_(num_features), eps_(o.eps), momentum_(o.momentum), affine_(o.affine),
        track_(o.track_running_stats) {
    const std::string m(name);
    require(num_features > 0, m, "num_features must be positive, got " + std::to_string(num_features));
    require(o.eps > 0 && std::isfinite(o.eps), m, "eps must be positive, got " + num_repr(o.eps));
    require(!o.momentum || (*o.momentum >= 0 && *o.momentum <= 1), m,
            "momentum must be in [0, 1] or nullopt, got " + (o.momentum ? num_repr(*o.momentum) : std::string()));
    gamma_.setOnes(1, C_);  // PyTorch's reset_parameters: weight 1, bias 0
    beta_.setZero(1, C_);
    dgamma_.setZero(1, C_);
    dbeta_.setZero(1, C_);
    reset_running_stats();
    rstd_.resize(C_);
  }

 private:
  std::string_view name_;
  Index C_;
  double eps_;
  std::optional<double> momentum_;
  bool affine_, track_;
  bool batch_stats_ = true;  // the last forward normalised with the batch's statistics
  Index S_ = 0;              // positions per channel of the last forward
  Matrix<T> gamma_, beta_, dgamma_, dbeta_;  // (1, C)
  Matrix<T> running_mean_, running_var_;     // (1, C)
  Matrix<T> num_batches_;                    // (1, 1), a count
  Vector<T> rstd_;                           // (C)
  Matrix<T> xhat_, y_, dx_;                  // (N, C*S)
};

}  // namespace detail

// torch.nn.BatchNorm1d(num_features, eps, momentum, affine, track_running_stats) on (N, C) or
// (N, C*L).
template <typename T>
class BatchNorm1d : public detail::BatchNormCore<T> {
 public:
  explicit BatchNorm1d(Index num_features, const BatchNormOptions& opt = {})
      : detail::BatchNormCore<T>("BatchNorm1d", num_features, opt) {}
};

// torch.nn.BatchNorm2d(num_features, eps, momentum, affine, track_running_stats) on (N, C*H*W).
template <typename T>
class BatchNorm2d : public detail::BatchNormCore<T> {
 public:
  explicit BatchNorm2d(Index num_features, const BatchNormOptions& opt = {})
      : detail::BatchNormCore<T>("BatchNorm2d", num_features, opt) {}
};

}  // namespace heed
