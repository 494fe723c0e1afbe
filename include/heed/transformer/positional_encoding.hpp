#pragma once
// Positional encodings: attention is blind to order, so a Transformer adds to each token's
// embedding a vector that depends on its position. Batch-first like the rest of
// heed/transformer/: x is a row-major (B*T, d) matrix, sample b's step t at row b*T + t, B
// passed per call, and `start` is the position of step 0 (0 for a whole sequence; t when
// decoding incrementally one token at a time, T = 1).
//
//   SinusoidalPositionalEncoding<T>  the fixed table of "Attention Is All You Need" §3.5:
//       PE(pos, 2i)   = sin(pos / 10000^(2i/d))
//       PE(pos, 2i+1) = cos(pos / 10000^(2i/d))                        pos in [0, max_len)
//     computed in double and then cast to T; an odd d ends on a sin column. No parameters
//     and no buffers: the table is a fixed function of (max_len, d), rebuilt by the
//     constructor, so it is not in state_dict (PyTorch tutorials register it as a buffer
//     "pe"; load such a state_dict with strict = false, or drop the key).
//   LearnedPositionalEncoding<T>     a learned table, parameter "weight" (max_len, d) drawn
//     N(0, 1) exactly as Embedding(max_len, d) draws it (same draws from the same Generator):
//     a PyTorch nn.Embedding(max_len, d) used for positions has the same state_dict key and
//     shape, so its weight loads as is.
//
// Both compute, for every sample b and step t,
//   y[b*T + t] = x[b*T + t] + P[start + t]        x (B*T, d), P (max_len, d) -> y (B*T, d)  (1)
//   dx = dy                                                                             d(1)
//   dW[start + t] += sum_b dy[b*T + t]            (learned only; repeated positions add) d(1)
// forward and backward return module-owned buffers, resized only when the shape changes.
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "../core/error.hpp"
#include "../core/init.hpp"
#include "../core/module.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"

namespace heed {
namespace detail {

// Validates forward's arguments and returns T, the sequence length.
template <typename T>
Index check_positional_input(std::string_view who, const ConstRef<T>& x, Index B, Index start,
                             Index d, Index max_len) {
  check_shape(who, "input", x, -1, d);
  check_batch_rows(who, "input", x.rows(), B);
  const Index T_ = x.rows() / B;
  if (start < 0 || start > max_len - T_)  // start + T > max_len, without overflow
    throw ValueError(std::string(who) + ": positions [" + std::to_string(start) + ", " +
                     std::to_string(start + T_) + ") exceed max_len " + std::to_string(max_len));
  return T_;
}

// y = x + P[start : start + T] per sample, (1). y must already be (B*T, d).
template <typename T>
void add_positions(Matrix<T>& y, const ConstRef<T>& x, const Matrix<T>& P, Index B, Index T_,
                   Index start) {
  for (Index b = 0; b < B; ++b)
    y.middleRows(b * T_, T_).noalias() = x.middleRows(b * T_, T_) + P.middleRows(start, T_);
}

}  // namespace detail

template <typename T>
class SinusoidalPositionalEncoding : public ModuleBase<T> {
 public:
  SinusoidalPositionalEncoding(Index d_model, Index max_len = 5000) : d_(d_model), L_(max_len) {
    detail::require(d_model > 0 && max_len > 0, "SinusoidalPositionalEncoding",
                    "d_model and max_len must be positive, got " + std::to_string(d_model) +
                        " and " + std::to_string(max_len));
    pe_.resize(L_, d_);  // (max_len, d)
    for (Index c = 0; c < d_; ++c) {
      // column c = 2i or 2i + 1 has frequency 1 / 10000^(2i/d)
      const double inv_freq =
          1.0 / std::pow(10000.0, static_cast<double>(c - c % 2) / static_cast<double>(d_));
      for (Index pos = 0; pos < L_; ++pos) {
        const double a = static_cast<double>(pos) * inv_freq;
        pe_(pos, c) = static_cast<T>(c % 2 == 0 ? std::sin(a) : std::cos(a));
      }
    }
  }

  // forward                    x (B*T, d) -> y (B*T, d), y[b*T + t] = x[b*T + t] + PE[start + t]
  const Matrix<T>& forward(const ConstRef<T>& x, Index B, Index start = 0) {
    const Index T_ =
        detail::check_positional_input<T>("SinusoidalPositionalEncoding", x, B, start, d_, L_);
    rows_ = x.rows();
    y_.resize(rows_, d_);
    detail::add_positions(y_, x, pe_, B, T_, start);  // (1) (B*T, d)
    return y_;
  }

  // backward                   dout (B*T, d) -> dx (B*T, d)
  const Matrix<T>& backward(const ConstRef<T>& dout) {
    detail::require_forward(rows_ > 0, "SinusoidalPositionalEncoding");
    detail::check_shape("SinusoidalPositionalEncoding", "gradient", dout, rows_, d_);
    dx_.resize(rows_, d_);
    dx_.noalias() = dout;  // d(1): dx = dout
    return dx_;
  }

  std::string name() const override { return "SinusoidalPositionalEncoding"; }
  std::string extra_repr() const override {
    return "d_model=" + std::to_string(d_) + ", max_len=" + std::to_string(L_);
  }

  Index d_model() const { return d_; }
  Index max_len() const { return L_; }
  const Matrix<T>& table() const { return pe_; }  // (max_len, d)

 private:
  Index d_, L_;
  Matrix<T> pe_;      // (max_len, d) the fixed table
  Index rows_ = 0;    // B*T of the last forward
  Matrix<T> y_, dx_;  // (B*T, d)
};

template <typename T>
class LearnedPositionalEncoding : public ModuleBase<T> {
 public:
  // W ~ N(0, 1), init::normal_ from `gen`, as Embedding(max_len, d_model) draws it.
  LearnedPositionalEncoding(Index max_len, Index d_model, Generator& gen = default_generator())
      : d_(d_model), L_(max_len) {
    detail::require(max_len > 0 && d_model > 0, "LearnedPositionalEncoding",
                    "max_len and d_model must be positive, got " + std::to_string(max_len) +
                        " and " + std::to_string(d_model));
    W_.resize(L_, d_);  // (max_len, d)
    init::normal_(W_, 0.0, 1.0, gen);
    dW_ = Matrix<T>::Zero(L_, d_);
  }

  // forward                    x (B*T, d) -> y (B*T, d), y[b*T + t] = x[b*T + t] + W[start + t]
  const Matrix<T>& forward(const ConstRef<T>& x, Index B, Index start = 0) {
    T_ = detail::check_positional_input<T>("LearnedPositionalEncoding", x, B, start, d_, L_);
    B_ = B;
    start_ = start;
    y_.resize(x.rows(), d_);
    detail::add_positions(y_, x, W_, B, T_, start);  // (1) (B*T, d)
    return y_;
  }

  // backward                   dout (B*T, d) -> dx (B*T, d); += dW over the rows forward read
  const Matrix<T>& backward(const ConstRef<T>& dout) {
    detail::require_forward(B_ > 0, "LearnedPositionalEncoding");
    detail::check_shape("LearnedPositionalEncoding", "gradient", dout, B_ * T_, d_);
    for (Index b = 0; b < B_; ++b)
      dW_.middleRows(start_, T_) += dout.middleRows(b * T_, T_);  // d(1) wrt W: sum over b
    dx_.resize(dout.rows(), d_);
    dx_.noalias() = dout;                                          // d(1) wrt x: dx = dout
    return dx_;
  }

  std::vector<Parameter<T>> local_parameters() override { return {{"weight", &W_, &dW_}}; }
  std::string name() const override { return "LearnedPositionalEncoding"; }
  std::string extra_repr() const override {
    return "max_len=" + std::to_string(L_) + ", d_model=" + std::to_string(d_);
  }

  Index d_model() const { return d_; }
  Index max_len() const { return L_; }
  Matrix<T>& weight() { return W_; }  // (max_len, d)

 private:
  Index d_, L_;
  Matrix<T> W_, dW_;                   // (max_len, d)
  Index B_ = 0, T_ = 0, start_ = 0;    // of the last forward
  Matrix<T> y_, dx_;                   // (B*T, d)
};

}  // namespace heed
