#pragma once
// GRUCell and GRU, as torch.nn.GRUCell / torch.nn.GRU(batch_first=True). Gate order r, z, n:
//
//   gi = x W_ih^T + b_ih                      (B, 3H)  [gi_r | gi_z | gi_n]        (1)
//   gh = h W_hh^T + b_hh                      (B, 3H)  [gh_r | gh_z | gh_n]        (2)
//   r  = sigmoid(gi_r + gh_r)                                                      (3)
//   z  = sigmoid(gi_z + gh_z)                                                      (4)
//   n  = tanh(gi_n + r .* gh_n)               r gates the *projected* state        (5)
//   h' = (1 - z) .* n + z .* h  =  n + z .* (h - n)                                (6)
//
// Backward of one step, given dh' (all (B, H)):
//   dn = dh' .* (1 - z);  da_n = dn .* (1 - n^2)           d(6) wrt n, d(5) through tanh
//   da_r = da_n .* gh_n .* r (1 - r)                        d(5) wrt r, d(3) through sigmoid
//   da_z = dh' .* (h - n) .* z (1 - z)                      d(6) wrt z, d(4) through sigmoid
//   dgi = [da_r | da_z | da_n],  dgh = [da_r | da_z | r .* da_n]
//   dh  = dh' .* z + dgh W_hh                               d(6) wrt h, d(2) wrt h
//   dx  = dgi W_ih,  dW_ih += dgi^T x,  dW_hh += dgh^T h     d(1), d(2)
#include <string>
#include <vector>

#include "rnn_common.hpp"
#include "rnn_driver.hpp"

namespace heed {
namespace detail {

// (3)-(6) for one step of B rows.
//   gates (B, 3H): gi on entry, [r | z | n] on exit      gh (B, 3H): (2)
//   ghn   (B, H):  gh_n, kept for backward               h  (B, H):  previous state
//   h_new (B, H):  h'
template <typename T>
void gru_gates_forward(StridedRef<T> gates, const ConstStridedRef<T>& gh,
                       const ConstStridedRef<T>& h, StridedRef<T> ghn, StridedRef<T> h_new) {
  const Index H = h.cols();
  auto r = gates.leftCols(H).array();
  auto z = gates.middleCols(H, H).array();
  auto n = gates.rightCols(H).array();
  r = sigmoid(r + gh.leftCols(H).array());            // (3)
  z = sigmoid(z + gh.middleCols(H, H).array());       // (4)
  ghn = gh.rightCols(H);
  n = (n + r * ghn.array()).tanh();                   // (5)
  h_new = (n + z * (h.array() - n)).matrix();         // (6)
}

// Backward of (3)-(6) for one step: dgi, dgh (B, 3H) as in the header; dh (B, H) gets only
// the direct path dh' .* z (the caller adds dgh W_hh). dh may not alias dh_new.
template <typename T>
void gru_gates_backward(const ConstStridedRef<T>& gates, const ConstStridedRef<T>& ghn,
                        const ConstStridedRef<T>& h, const ConstStridedRef<T>& dh_new,
                        StridedRef<T> dgi, StridedRef<T> dgh, StridedRef<T> dh) {
  const Index H = h.cols();
  const auto r = gates.leftCols(H).array();
  const auto z = gates.middleCols(H, H).array();
  const auto n = gates.rightCols(H).array();
  const auto dy = dh_new.array();
  auto da_n = dgi.rightCols(H).array();
  da_n = dy * (T(1) - z) * (T(1) - n.square());                           // d(6) wrt n, d(5)
  dgh.rightCols(H) = (da_n * r).matrix();                                 // d(5) wrt gh_n
  dgi.leftCols(H) = (da_n * ghn.array() * r * (T(1) - r)).matrix();       // d(5) wrt r, d(3)
  dgi.middleCols(H, H) = (dy * (h.array() - n) * z * (T(1) - z)).matrix();  // d(6) wrt z, d(4)
  dgh.leftCols(2 * H) = dgi.leftCols(2 * H);                              // d(3), d(4) wrt gh
  dh = (dy * z).matrix();                                                 // d(6) wrt h
}

// GRU's gates for the sequence driver (rnn_driver.hpp): state h only; gi and gh enter the gates
// apart, since (5) multiplies the projected state gh_n by r.
template <typename T>
struct GruGates {
  static constexpr Index kGates = 3;  // r, z, n
  static constexpr Index kStates = 1;  // h
  static constexpr bool kSummed = false;
  static constexpr bool kDirect[] = {true};  // (6): z .* h
  static constexpr const char* kInitNames[] = {"h0"};
  static constexpr const char* kGradNames[] = {"h_n gradient"};

  struct Cache {
    Matrix<T> GHN;  // (B*T, H) W_hn h + b_hn of every step
    void resize_steps(Index rows, Index H) { GHN.resize(rows, H); }
  };

  template <class Cell>
  static void forward(Cell& c, const StepAt& at, const Matrix<T>& gh, const Matrix<T>* s,
                      StepMap<T> h_new, Matrix<T>*) {
    gru_gates_forward<T>(at(c.G), gh, s[0], at(c.GHN), h_new);  // (3)-(6)
  }
  template <class Cell>
  static void backward(Cell& c, const StepAt& at, const Matrix<T>* ds_new, StepMap<T> dgi,
                       StepMap<T> dgh, Matrix<T>* ds) {
    gru_gates_backward<T>(at(c.G), at(c.GHN), at(c.SP[0]), ds_new[0], dgi, dgh, ds[0]);  // d(3)-(6)
  }
};

// GRUCell's cache of one step.
template <typename T>
struct GruStep {
  Matrix<T> x;      // (B, I)
  Matrix<T> h;      // (B, H)  state entering the step
  Matrix<T> gates;  // (B, 3H) [r | z | n]
  Matrix<T> ghn;    // (B, H)  W_hn h + b_hn
  Matrix<T> h_new;  // (B, H)
};

}  // namespace detail

// One GRU step. For use in a loop (a decoder), the cell keeps a stack of per-step caches:
// each forward in training mode pushes one, each backward pops the most recent, so after T
// forwards call backward T times in reverse order, feeding each step's dh (plus whatever the
// step's output received) to the step before it:
//
//   for t in 0..T-1:   h = cell.forward(x_t, h)                      // push step t
//   for t in T-1..0:   auto g = cell.backward(dh + dout_t); dh = g.dh  // pop step t
//
// Cache slots are reused (never freed) so a loop of fixed T and B allocates only in its first
// iteration. In eval mode forward does not push (inference loops do not grow the stack);
// clear() drops cached steps that will not be back-propagated. The h' returned by forward
// stays valid until its slot is reused, i.e. until backward popped it and forward ran again.
template <typename T>
class GRUCell : public detail::RnnCellBase<T, detail::GruStep<T>> {
  using Base = detail::RnnCellBase<T, detail::GruStep<T>>;

 public:
  struct Grads {
    const Matrix<T>& dx;  // (B, I); empty when requires_input_grad(false)
    const Matrix<T>& dh;  // (B, H)
  };

  // Parameters as torch.nn.GRUCell: weight_ih (3H, I) rows [W_ir; W_iz; W_in], weight_hh
  // (3H, H), bias_ih, bias_hh (1, 3H), all U(-1/sqrt(H), 1/sqrt(H)) in that order.
  GRUCell(Index input_size, Index hidden_size, bool bias = true,
          Generator& gen = default_generator())
      : Base("GRUCell", 3, input_size, hidden_size, bias, gen) {}

  // forward                          x: (B, I), h: (B, H) or empty for zeros -> h': (B, H)
  const Matrix<T>& forward(const ConstRef<T>& x, const ConstRef<T>& h = Matrix<T>()) {
    const Index H = this->H_;
    const auto& p = this->p_;
    detail::check_shape("GRUCell", "input", x, -1, this->I_);
    const Index B = x.rows();
    detail::check_state<T>("GRUCell", "hidden state", h, B, H);
    auto& s = this->steps_.slot(this->training_);  // training: pushed
    s.x = x;  // copies first: x or h may be an earlier step's h' living in this very slot
    if (h.size() != 0) s.h = h; else s.h.setZero(B, H);
    s.gates.resize(B, 3 * H);                                   // (B, 3H)
    s.gates.noalias() = s.x * p.w_ih.transpose();               // (1)
    gh_.resize(B, 3 * H);                                       // (B, 3H)
    gh_.noalias() = s.h * p.w_hh.transpose();                   // (2)
    if (this->has_bias_) {
      s.gates.rowwise() += p.b_ih.row(0);
      gh_.rowwise() += p.b_hh.row(0);
    }
    s.ghn.resize(B, H);
    s.h_new.resize(B, H);
    detail::gru_gates_forward<T>(s.gates, gh_, s.h, s.ghn, s.h_new);  // (3)-(6)
    return s.h_new;
  }

  // backward of the most recent cached step        dh': (B, H) -> {dx (B, I), dh (B, H)}
  Grads backward(const ConstRef<T>& dh_new) {
    auto& s = this->pop_step();
    const Index B = s.x.rows(), H = this->H_;
    detail::check_shape("GRUCell", "gradient", dh_new, B, H);
    dhn_ = dh_new;  // may be the dh this cell returned last time
    dgi_.resize(B, 3 * H);  // (B, 3H)
    dgh_.resize(B, 3 * H);  // (B, 3H)
    dh_.resize(B, H);       // (B, H)
    detail::gru_gates_backward<T>(s.gates, s.ghn, s.h, dhn_, dgi_, dgh_, dh_);  // d(3)-(6)
    this->p_.accumulate_grads(dgi_, dgh_, s.x, s.h);  // d(1), d(2) wrt W_ih, W_hh, b_ih, b_hh
    dh_.noalias() += dgh_ * this->p_.w_hh;            // d(2) wrt h: (B, 3H)(3H, H)
    return {this->input_grad(dgi_), dh_};              // d(1) wrt x
  }

 private:
  Matrix<T> gh_;            // (B, 3H) forward scratch
  Matrix<T> dgi_, dgh_;     // (B, 3H)
  Matrix<T> dhn_, dh_;      // (B, H)
};

// Multi-layer, optionally bidirectional GRU over whole sequences, torch.nn.GRU with
// batch_first=True.
//
//   x      (B*T, I)        row b*T + t is sample b's step t
//   h0     (L*D*B, H)      PyTorch's (L*D, B, H): row (l*D + d)*B + b; empty = zeros
//   output (B*T, D*H)      last layer's h_t; forward direction in columns [0, H), reverse [H, 2H)
//   h_n    (L*D*B, H)      final state of every layer and direction
//
// Layer l > 0 reads layer l-1's output. The reverse direction (d = 1) runs t = T-1 .. 0.
// lengths (B), optional, as pack_padded_sequence: steps t >= lengths[b] leave the state
// unchanged (h carried through, so h_n is the state at the last valid step) and output zeros;
// the reverse direction therefore starts from h0 at t = lengths[b] - 1.
//
// The time loop is detail::StackedRnn's (rnn_driver.hpp): per layer and direction the input
// projections of all steps are one GEMM (1) before it and their gradients one GEMM after it;
// the loop does only the (B, H) x (H, 3H) products (2) and the gates below.
template <typename T>
class GRU : public detail::StackedRnn<T, detail::GruGates<T>> {
  using Base = detail::StackedRnn<T, detail::GruGates<T>>;

 public:
  struct Output {
    const Matrix<T>& output;  // (B*T, D*H)
    const Matrix<T>& h_n;     // (L*D*B, H)
  };
  struct Grads {
    const Matrix<T>& dx;   // (B*T, I); empty when requires_input_grad(false)
    const Matrix<T>& dh0;  // (L*D*B, H)
  };

  // All parameters U(-1/sqrt(H), 1/sqrt(H)), drawn per layer and direction in state_dict order
  // weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, weight_ih_l0_reverse, ...
  GRU(Index input_size, Index hidden_size, RNNOptions opt = {},
      Generator& gen = default_generator())
      : Base("GRU", input_size, hidden_size, opt, gen) {}

  // forward          x: (B*T, I), h0: (L*D*B, H) or empty, lengths: (B) or empty
  //                  -> {output (B*T, D*H), h_n (L*D*B, H)}
  Output forward(const ConstRef<T>& x, Index batch, const ConstRef<T>& h0 = Matrix<T>(),
                 const LabelsRef& lengths = Labels()) {
    this->forward_all(x, batch, {&h0}, lengths);
    return {this->output(), this->sn_[0]};
  }

  // backward          dy: (B*T, D*H), dh_n: (L*D*B, H) or empty -> {dx (B*T, I), dh0 (L*D*B, H)}
  // Accumulates (+=) every parameter gradient.
  Grads backward(const ConstRef<T>& dy, const ConstRef<T>& dh_n = Matrix<T>()) {
    this->backward_all(dy, {&dh_n});
    return {this->dx_, this->ds0_[0]};
  }
};

}  // namespace heed
