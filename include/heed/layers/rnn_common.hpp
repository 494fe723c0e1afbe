#pragma once
// Pieces shared by GRU and LSTM (gru.hpp, lstm.hpp): options, PyTorch-style parameter init,
// per-time-step views of batch-first sequence buffers, and the `lengths` mask.
//
// A sequence batch (B, T, F) is a row-major (B*T, F) matrix with sample b's step t at row
// b*T + t (core/tensor.hpp). The B rows of one time step are therefore T rows apart: a
// step_rows() view is an Eigen::Map with outer stride T * cols, so the time loop reads and
// writes the sequence buffers in place, without gathering a time-major copy.
#include <cmath>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/module.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"

namespace heed {

// torch.nn.GRU / torch.nn.LSTM constructor options (batch_first is always true in heed;
// inter-layer dropout and proj_size are not supported).
struct RNNOptions {
  Index num_layers = 1;
  bool bias = true;
  bool bidirectional = false;
};

namespace detail {

// Rows {b*T + t : b < B} of a (B*T, *) row-major buffer, columns [c0, c0 + n): (B, n).
template <typename T>
using StepMap = Eigen::Map<Matrix<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using ConstStepMap = Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>>;

template <typename T>
StepMap<T> step_rows(Matrix<T>& m, Index steps, Index t, Index c0, Index n) {
  return StepMap<T>(m.data() + t * m.cols() + c0, m.rows() / steps, n,
                    Eigen::OuterStride<>(steps * m.cols()));
}
// Const version over a Ref, whose outer stride may exceed its width (a block of columns).
template <typename T>
ConstStepMap<T> step_rows(const ConstRef<T>& m, Index steps, Index t, Index c0, Index n) {
  return ConstStepMap<T>(m.data() + t * m.outerStride() + c0, m.rows() / steps, n,
                         Eigen::OuterStride<>(steps * m.outerStride()));
}

// Writable / read-only (rows, cols) views with unit inner stride: accept a Matrix, a block or
// a StepMap without copying. The gate math below takes these so the cells (own buffers) and
// the sequence layers (step views of (B*T, *) buffers) share one implementation.
template <typename T>
using StridedRef = Eigen::Ref<Matrix<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using ConstStridedRef = Eigen::Ref<const Matrix<T>, 0, Eigen::OuterStride<>>;

template <class X>
auto sigmoid(const X& a) {  // 0.5 (1 + tanh(a/2)): no overflow for large |a|
  using T = typename X::Scalar;
  return T(0.5) * ((T(0.5) * a).tanh() + T(1));
}

// U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias, PyTorch's RNN init.
template <typename T>
void init_uniform(Matrix<T>& m, Index rows, Index cols, double bound, Generator& gen) {
  m.resize(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<T>(gen.uniform(-bound, bound));
}

// Validated sequence geometry for one forward call.
struct SeqShape {
  Index B = 0, T = 0;
};

inline SeqShape check_sequence(const char* module, Index rows, Index cols, Index batch,
                               Index input_size) {
  if (batch <= 0)
    throw ValueError(std::string(module) + ": batch size must be positive, got " +
                     std::to_string(batch));
  if (cols != input_size || rows == 0 || rows % batch != 0)
    throw ShapeError(std::string(module) + ": input expected (B*T, " + std::to_string(input_size) +
                     ") with B = " + std::to_string(batch) + " and T >= 1, got " +
                     shape_str(rows, cols));
  return {batch, rows / batch};
}

// mask (T, B): mask(t, b) = 1 if t < lengths(b), else 0; row t is step t's mask, contiguous.
// Returns false (mask empty) when lengths is empty or all equal T: nothing to mask, and the
// time loops then skip the masking arithmetic.
template <typename T>
bool build_mask(const char* module, const LabelsRef& lengths, SeqShape s, Matrix<T>& mask) {
  if (lengths.size() == 0) {
    mask.resize(0, 0);
    return false;
  }
  if (lengths.size() != s.B)
    throw ShapeError(std::string(module) + ": lengths expected (" + std::to_string(s.B) +
                     "), got (" + std::to_string(lengths.size()) + ")");
  mask.resize(s.T, s.B);
  for (Index b = 0; b < s.B; ++b) {
    const auto len = lengths(b);
    if (len < 0 || len > s.T)
      throw ValueError(std::string(module) + ": lengths[" + std::to_string(b) + "] = " +
                       std::to_string(len) + " out of range [0, " + std::to_string(s.T) + "]");
    for (Index t = 0; t < s.T; ++t) mask(t, b) = t < len ? T(1) : T(0);
  }
  if ((lengths.array() == s.T).all()) {
    mask.resize(0, 0);
    return false;
  }
  return true;
}

// An optional initial state (rows, H): empty means zeros (PyTorch's hx=None).
template <typename T>
void check_state(const char* module, const char* what, const ConstRef<T>& h, Index rows,
                 Index H) {
  if (h.size() != 0) check_shape(module, what, h, rows, H);
}

}  // namespace detail
}  // namespace heed
