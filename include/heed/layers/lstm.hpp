#pragma once
// LSTMCell and LSTM, as torch.nn.LSTMCell / torch.nn.LSTM(batch_first=True). Gate order i, f, g, o:
//
//   a  = x W_ih^T + b_ih + h W_hh^T + b_hh     (B, 4H)  [a_i | a_f | a_g | a_o]    (1), (2)
//   i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g), o = sigmoid(a_o)            (3)
//   c' = f .* c + i .* g                                                           (4)
//   h' = o .* tanh(c')                                                             (5)
//
// Backward of one step, given dh' and dc' (all (B, H)):
//   dc~ = dc' + dh' .* o .* (1 - tanh^2 c')     d(5) wrt c' (c' feeds h' and the next step)
//   do = dh' .* tanh c'                          d(5) wrt o
//   di = dc~ .* g, df = dc~ .* c, dg = dc~ .* i  d(4)
//   dc = dc~ .* f                                d(4) wrt c
//   da = [di i(1-i) | df f(1-f) | dg (1-g^2) | do o(1-o)]   d(3)
//   dx = da W_ih, dh = da W_hh; dW_ih += da^T x, dW_hh += da^T h, db_ih, db_hh += sum da
#include <string>
#include <vector>

#include "rnn_common.hpp"
#include "rnn_driver.hpp"

namespace heed {
namespace detail {

// (3)-(5) for one step of B rows.
//   gates (B, 4H): pre-activations a on entry, [i | f | g | o] on exit
//   c (B, H): previous cell state;  c_new, tc = tanh(c_new), h_new (B, H): out
template <typename T>
void lstm_gates_forward(StridedRef<T> gates, const ConstStridedRef<T>& c, StridedRef<T> c_new,
                        StridedRef<T> tc, StridedRef<T> h_new) {
  const Index H = c.cols();
  auto ifo = gates.leftCols(2 * H).array();
  auto g = gates.middleCols(2 * H, H).array();
  auto o = gates.rightCols(H).array();
  ifo = sigmoid(ifo);                                                      // (3) i, f
  g = g.tanh();                                                            // (3) g
  o = sigmoid(o);                                                          // (3) o
  const auto i = gates.leftCols(H).array();
  const auto f = gates.middleCols(H, H).array();
  c_new = (f * c.array() + i * g).matrix();                                // (4)
  tc = c_new.array().tanh().matrix();
  h_new = (o * tc.array()).matrix();                                       // (5)
}

// Backward of (3)-(5): da (B, 4H) pre-activation gradients; dc (B, H) = dc~ .* f.
// dc may not alias dc_new or dh_new.
template <typename T>
void lstm_gates_backward(const ConstStridedRef<T>& gates, const ConstStridedRef<T>& c,
                         const ConstStridedRef<T>& tc, const ConstStridedRef<T>& dh_new,
                         const ConstStridedRef<T>& dc_new, StridedRef<T> da,
                         StridedRef<T> dc) {
  const Index H = c.cols();
  const auto i = gates.leftCols(H).array();
  const auto f = gates.middleCols(H, H).array();
  const auto g = gates.middleCols(2 * H, H).array();
  const auto o = gates.rightCols(H).array();
  const auto dy = dh_new.array();
  auto dct = dc.array();  // dc~ built in dc's storage, then scaled by f
  dct = dc_new.array() + dy * o * (T(1) - tc.array().square());            // d(5) wrt c'
  da.rightCols(H) = (dy * tc.array() * o * (T(1) - o)).matrix();           // d(5) wrt o, d(3)
  da.leftCols(H) = (dct * g * i * (T(1) - i)).matrix();                    // d(4) wrt i, d(3)
  da.middleCols(H, H) = (dct * c.array() * f * (T(1) - f)).matrix();       // d(4) wrt f, d(3)
  da.middleCols(2 * H, H) = (dct * i * (T(1) - g.square())).matrix();      // d(4) wrt g, d(3)
  dct *= f;                                                                // d(4) wrt c
}

// LSTM's gates for the sequence driver (rnn_driver.hpp): states h, c; the gates see only
// a = gi + gh, so b_hh folds into the input projection and dgh = dgi = da.
template <typename T>
struct LstmGates {
  static constexpr Index kGates = 4;  // i, f, g, o
  static constexpr Index kStates = 2;  // h, c
  static constexpr bool kSummed = true;
  static constexpr bool kDirect[] = {false, true};  // h only through W_hh; (4): f .* c
  static constexpr const char* kInitNames[] = {"h0", "c0"};
  static constexpr const char* kGradNames[] = {"h_n gradient", "c_n gradient"};

  struct Cache {
    Matrix<T> TC;  // (B*T, H) tanh(c') of every step
    void resize_steps(Index rows, Index H) { TC.resize(rows, H); }
  };

  template <class Cell>
  static void forward(Cell& c, const StepAt& at, const Matrix<T>&, const Matrix<T>* s,
                      StepMap<T> h_new, Matrix<T>* s_new) {
    lstm_gates_forward<T>(at(c.G), s[1], s_new[1], at(c.TC), h_new);  // (3)-(5)
  }
  template <class Cell>
  static void backward(Cell& c, const StepAt& at, const Matrix<T>* ds_new, StepMap<T> da,
                       StepMap<T>, Matrix<T>* ds) {
    // d(3)-(5); ds[0] untouched: h reaches the step only through W_hh
    lstm_gates_backward<T>(at(c.G), at(c.SP[1]), at(c.TC), ds_new[0], ds_new[1], da, ds[1]);
  }
};

// LSTMCell's cache of one step.
template <typename T>
struct LstmStep {
  Matrix<T> x;         // (B, I)
  Matrix<T> h, c;      // (B, H) state entering the step
  Matrix<T> gates;     // (B, 4H) [i | f | g | o]
  Matrix<T> c_new;     // (B, H)
  Matrix<T> tc;        // (B, H) tanh(c')
  Matrix<T> h_new;     // (B, H)
};

}  // namespace detail

// One LSTM step, with the same per-step cache stack as GRUCell (see gru.hpp): forward in
// training mode pushes a step, backward pops the most recent one; eval mode does not push;
// clear() drops unpopped steps.
//
//   for t in 0..T-1:  { auto s = cell.forward(x_t, h, c); h = s.h; c = s.c; }
//   for t in T-1..0:  { auto g = cell.backward(dh + dout_t, dc); dh = g.dh; dc = g.dc; }
template <typename T>
class LSTMCell : public detail::RnnCellBase<T, detail::LstmStep<T>> {
  using Base = detail::RnnCellBase<T, detail::LstmStep<T>>;

 public:
  struct State {
    const Matrix<T>& h;  // (B, H)
    const Matrix<T>& c;  // (B, H)
  };
  struct Grads {
    const Matrix<T>& dx;  // (B, I); empty when requires_input_grad(false)
    const Matrix<T>& dh;  // (B, H)
    const Matrix<T>& dc;  // (B, H)
  };

  // Parameters as torch.nn.LSTMCell: weight_ih (4H, I) rows [W_ii; W_if; W_ig; W_io],
  // weight_hh (4H, H), bias_ih, bias_hh (1, 4H), all U(-1/sqrt(H), 1/sqrt(H)) in that order.
  LSTMCell(Index input_size, Index hidden_size, bool bias = true,
           Generator& gen = default_generator())
      : Base("LSTMCell", 4, input_size, hidden_size, bias, gen) {}

  // forward       x: (B, I), h, c: (B, H) or empty for zeros -> {h' (B, H), c' (B, H)}
  State forward(const ConstRef<T>& x, const ConstRef<T>& h = Matrix<T>(),
                const ConstRef<T>& c = Matrix<T>()) {
    const Index H = this->H_;
    const auto& p = this->p_;
    detail::check_shape("LSTMCell", "input", x, -1, this->I_);
    const Index B = x.rows();
    detail::check_state<T>("LSTMCell", "hidden state", h, B, H);
    detail::check_state<T>("LSTMCell", "cell state", c, B, H);
    auto& s = this->steps_.slot(this->training_);  // training: pushed
    s.x = x;  // copies first: inputs may be an earlier step's outputs living in this slot
    if (h.size() != 0) s.h = h; else s.h.setZero(B, H);
    if (c.size() != 0) s.c = c; else s.c.setZero(B, H);
    s.gates.resize(B, 4 * H);                                // (B, 4H)
    s.gates.noalias() = s.x * p.w_ih.transpose();            // (1)
    s.gates.noalias() += s.h * p.w_hh.transpose();           // (2)
    if (this->has_bias_) s.gates.rowwise() += p.b_ih.row(0) + p.b_hh.row(0);
    s.c_new.resize(B, H);
    s.tc.resize(B, H);
    s.h_new.resize(B, H);
    detail::lstm_gates_forward<T>(s.gates, s.c, s.c_new, s.tc, s.h_new);  // (3)-(5)
    return {s.h_new, s.c_new};
  }

  // backward of the most recent cached step
  //   dh', dc': (B, H) (dc' empty = zero) -> {dx (B, I), dh (B, H), dc (B, H)}
  Grads backward(const ConstRef<T>& dh_new, const ConstRef<T>& dc_new = Matrix<T>()) {
    auto& s = this->pop_step();
    const Index B = s.x.rows(), H = this->H_;
    detail::check_shape("LSTMCell", "gradient", dh_new, B, H);
    detail::check_state<T>("LSTMCell", "cell state gradient", dc_new, B, H);
    dhn_ = dh_new;  // copies: either may be a gradient this cell returned last time
    if (dc_new.size() != 0) dcn_ = dc_new; else dcn_.setZero(B, H);
    da_.resize(B, 4 * H);  // (B, 4H)
    dc_.resize(B, H);      // (B, H)
    detail::lstm_gates_backward<T>(s.gates, s.c, s.tc, dhn_, dcn_, da_, dc_);  // d(3)-(5)
    this->p_.accumulate_grads(da_, da_, s.x, s.h);  // d(1), d(2): one sum feeds both biases
    dh_.resize(B, H);
    dh_.noalias() = da_ * this->p_.w_hh;            // d(2) wrt h: (B, 4H)(4H, H)
    return {this->input_grad(da_), dh_, dc_};        // d(1) wrt x
  }

 private:
  Matrix<T> da_;                   // (B, 4H)
  Matrix<T> dhn_, dcn_, dh_, dc_;  // (B, H)
};

// Multi-layer, optionally bidirectional LSTM over whole sequences, torch.nn.LSTM with
// batch_first=True. Shapes, h0/h_n layout, direction columns and `lengths` exactly as GRU
// (gru.hpp), with the cell state alongside: c0, c_n (L*D*B, H). Padded steps carry both h and c.
// The time loop is detail::StackedRnn's (rnn_driver.hpp), with the gates above.
template <typename T>
class LSTM : public detail::StackedRnn<T, detail::LstmGates<T>> {
  using Base = detail::StackedRnn<T, detail::LstmGates<T>>;

 public:
  struct Output {
    const Matrix<T>& output;  // (B*T, D*H)
    const Matrix<T>& h_n;     // (L*D*B, H)
    const Matrix<T>& c_n;     // (L*D*B, H)
  };
  struct Grads {
    const Matrix<T>& dx;   // (B*T, I); empty when requires_input_grad(false)
    const Matrix<T>& dh0;  // (L*D*B, H)
    const Matrix<T>& dc0;  // (L*D*B, H)
  };

  // All parameters U(-1/sqrt(H), 1/sqrt(H)), drawn per layer and direction in state_dict order,
  // named as GRU's: weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ...
  LSTM(Index input_size, Index hidden_size, RNNOptions opt = {},
       Generator& gen = default_generator())
      : Base("LSTM", input_size, hidden_size, opt, gen) {}

  // forward     x: (B*T, I), h0, c0: (L*D*B, H) or empty, lengths: (B) or empty
  //             -> {output (B*T, D*H), h_n (L*D*B, H), c_n (L*D*B, H)}
  Output forward(const ConstRef<T>& x, Index batch, const ConstRef<T>& h0 = Matrix<T>(),
                 const ConstRef<T>& c0 = Matrix<T>(), const LabelsRef& lengths = Labels()) {
    this->forward_all(x, batch, {&h0, &c0}, lengths);
    return {this->output(), this->sn_[0], this->sn_[1]};
  }

  // backward     dy: (B*T, D*H), dh_n, dc_n: (L*D*B, H) or empty
  //              -> {dx (B*T, I), dh0, dc0 (L*D*B, H)}; accumulates every parameter gradient.
  Grads backward(const ConstRef<T>& dy, const ConstRef<T>& dh_n = Matrix<T>(),
                 const ConstRef<T>& dc_n = Matrix<T>()) {
    this->backward_all(dy, {&dh_n, &dc_n});
    return {this->dx_, this->ds0_[0], this->ds0_[1]};
  }
};

}  // namespace heed
