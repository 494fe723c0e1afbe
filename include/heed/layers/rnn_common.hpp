#pragma once
// Pieces shared by GRU and LSTM (gru.hpp, lstm.hpp): options, the parameters of one cell or
// layer and direction with PyTorch's init, names and weight gradients, what the two cells
// share (RnnCellBase, with their per-step cache stack), per-time-step views of batch-first
// sequence buffers, and the `lengths` mask. The sequence layers' time loop is rnn_driver.hpp.
//
// A sequence batch (B, T, F) is a row-major (B*T, F) matrix with sample b's step t at row
// b*T + t (core/tensor.hpp). The B rows of one time step are therefore T rows apart: a
// step_rows() view is an Eigen::Map with outer stride T * cols, so the time loop reads and
// writes the sequence buffers in place, without gathering a time-major copy.
#include <cmath>
#include <deque>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/gemm.hpp"
#include "../core/init.hpp"
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
  init::uniform_(m, -bound, bound, gen);
}

// The parameters of one cell, or of one layer and direction of GRU / LSTM, with G gates
// (GRU 3, LSTM 4) stacked in the rows as PyTorch stacks them, and their gradients:
//   w_ih (G*H, in)   w_hh (G*H, H)   b_ih, b_hh (1, G*H), empty without bias
template <typename T>
struct RnnWeights {
  Matrix<T> w_ih, dw_ih;  // (G*H, in)
  Matrix<T> w_hh, dw_hh;  // (G*H, H)
  Matrix<T> b_ih, db_ih;  // (1, G*H)
  Matrix<T> b_hh, db_hh;  // (1, G*H)

  // All U(-1/sqrt(H), 1/sqrt(H)), drawn in state_dict order weight_ih, weight_hh, bias_ih,
  // bias_hh as PyTorch draws them (another order changes every seeded model); gradients zero.
  void init(Index gates, Index in, Index H, bool bias, Generator& gen) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(H));
    init_uniform(w_ih, gates * H, in, bound, gen);
    init_uniform(w_hh, gates * H, H, bound, gen);
    dw_ih = Matrix<T>::Zero(gates * H, in);
    dw_hh = Matrix<T>::Zero(gates * H, H);
    if (bias) {
      init_uniform(b_ih, 1, gates * H, bound, gen);
      init_uniform(b_hh, 1, gates * H, bound, gen);
      db_ih = Matrix<T>::Zero(1, gates * H);
      db_hh = Matrix<T>::Zero(1, gates * H);
    }
  }

  // d(1), d(2) of the cells' equations wrt the weights, summed over the rows of one step
  // (cells) or of every step (GRU / LSTM): dgi, dgh (rows, G*H); x (rows, in); h (rows, H) the
  // states the rows started from. LSTM passes dgh = dgi.
  void accumulate_grads(const Matrix<T>& dgi, const Matrix<T>& dgh, const Matrix<T>& x,
                        const Matrix<T>& h) {
    using detail::Op;
    detail::gemm<T>(dw_ih, dgi, Op::T, x, Op::N, T(1));  // d(1) wrt W_ih: (G*H, rows)(rows, in)
    detail::gemm<T>(dw_hh, dgh, Op::T, h, Op::N, T(1));  // d(2) wrt W_hh: (G*H, rows)(rows, H)
    if (b_ih.size() != 0) {
      db_ih.row(0) += dgi.colwise().sum();   // d(1) wrt b_ih
      db_hh.row(0) += dgh.colwise().sum();   // d(2) wrt b_hh
    }
  }

  // Appends weight_ih<suffix>, weight_hh<suffix>, then (with bias) bias_ih<suffix>,
  // bias_hh<suffix>: state_dict names and order. suffix "" for a cell, "_l0", "_l0_reverse", ...
  void append_parameters(std::vector<Parameter<T>>& ps, const std::string& suffix = "") {
    ps.push_back({"weight_ih" + suffix, &w_ih, &dw_ih});
    ps.push_back({"weight_hh" + suffix, &w_hh, &dw_hh});
    if (b_ih.size() != 0) {
      ps.push_back(vector_parameter("bias_ih" + suffix, &b_ih, &db_ih));
      ps.push_back(vector_parameter("bias_hh" + suffix, &b_hh, &db_hh));
    }
  }
};

// PyTorch's name suffix of layer l, direction d: "_l0", "_l0_reverse", "_l1", ...
inline std::string layer_suffix(Index l, Index d) {
  return "_l" + std::to_string(l) + (d == 1 ? "_reverse" : "");
}

// summary()'s arguments of the cells and layers, PyTorch's repr: "10, 20, num_layers=2".
inline std::string rnn_repr(Index input_size, Index hidden_size, bool bias, Index num_layers = 1,
                            bool bidirectional = false) {
  std::string s = std::to_string(input_size) + ", " + std::to_string(hidden_size);
  if (num_layers != 1) s += ", num_layers=" + std::to_string(num_layers);
  if (!bias) s += ", bias=false";
  if (bidirectional) s += ", bidirectional=true";
  return s;
}

// Constructor checks of the cells (num_layers = 1) and of GRU / LSTM.
inline void check_rnn_sizes(const char* module, Index input_size, Index hidden_size,
                            Index num_layers = 1) {
  require(input_size > 0 && hidden_size > 0, module,
          "input_size and hidden_size must be positive, got " + std::to_string(input_size) +
              " and " + std::to_string(hidden_size));
  require(num_layers > 0, module, "num_layers must be positive, got " + std::to_string(num_layers));
}

// The per-step cache stack of GRUCell and LSTMCell (see GRUCell): slots [0, depth()) hold live
// caches. Slots are reused, never freed, and a deque does not move them when it grows, so a
// reference to a slot stays valid.
template <class Step>
class StepStack {
 public:
  // push (training): the next slot, pushed. Otherwise (eval) the slot above the top, not pushed.
  Step& slot(bool push) {
    if (static_cast<std::size_t>(depth_) == steps_.size()) steps_.emplace_back();
    Step& s = steps_[static_cast<std::size_t>(depth_)];
    if (push) ++depth_;
    return s;
  }
  // The most recent step, popped; depth() must be positive.
  Step& pop() { return steps_[static_cast<std::size_t>(--depth_)]; }
  Index depth() const { return depth_; }
  void clear() { depth_ = 0; }

 private:
  std::deque<Step> steps_;
  Index depth_ = 0;
};

// What GRUCell and LSTMCell share: sizes, weights (gate blocks stacked in the rows in the
// cell's gate order), the step stack, names and the input gradient. Step: the cell's cache of
// one step, with x (B, I) first.
template <typename T, class Step>
class RnnCellBase : public ModuleBase<T> {
 public:
  // Steps cached by forward and not yet popped by backward.
  Index cached_steps() const { return steps_.depth(); }
  void clear() { steps_.clear(); }

  std::vector<Parameter<T>> local_parameters() override {
    std::vector<Parameter<T>> ps;
    p_.append_parameters(ps);  // weight_ih, weight_hh, bias_ih, bias_hh
    return ps;
  }
  std::string name() const override { return module_; }
  std::string extra_repr() const override { return rnn_repr(I_, H_, has_bias_); }

  Index input_size() const { return I_; }
  Index hidden_size() const { return H_; }
  Matrix<T>& weight_ih() { return p_.w_ih; }  // (G*H, I) rows [W_i<gate>; ...]
  Matrix<T>& weight_hh() { return p_.w_hh; }  // (G*H, H)
  Matrix<T>& bias_ih() { return p_.b_ih; }    // (1, G*H); empty without bias
  Matrix<T>& bias_hh() { return p_.b_hh; }    // (1, G*H); empty without bias

 protected:
  // Parameters as torch.nn.GRUCell / LSTMCell, all U(-1/sqrt(H), 1/sqrt(H)), drawn in the
  // order weight_ih, weight_hh, bias_ih, bias_hh: (G*H, I), (G*H, H), (1, G*H), (1, G*H).
  RnnCellBase(const char* module, Index gates, Index input_size, Index hidden_size, bool bias,
              Generator& gen)
      : module_(module), I_(input_size), H_(hidden_size), has_bias_(bias) {
    check_rnn_sizes(module_, input_size, hidden_size);
    p_.init(gates, I_, H_, has_bias_, gen);
  }

  // The most recent cached step, popped.
  Step& pop_step() {
    if (steps_.depth() == 0)
      throw ValueError(std::string(module_) + ": backward called with no cached step (call "
                       "forward in training mode once per backward)");
    return steps_.pop();
  }

  // d(1) wrt x: dx = dgi W_ih (B, G*H)(G*H, I); empty when requires_input_grad(false).
  const Matrix<T>& input_grad(const Matrix<T>& dgi) {
    if (this->input_grad_) {
      detail::gemm<T>(dx_, dgi, detail::Op::N, p_.w_ih, detail::Op::N);
    } else {
      dx_.resize(0, I_);
    }
    return dx_;
  }

  const char* module_;  // "GRUCell", "LSTMCell": name() and every message
  Index I_, H_;
  bool has_bias_;
  RnnWeights<T> p_;        // w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (1, G*H)
  StepStack<Step> steps_;  // per-step caches, see GRUCell
  Matrix<T> dx_;           // (B, I)
};

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
