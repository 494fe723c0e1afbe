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

}  // namespace detail

// One LSTM step, with the same per-step cache stack as GRUCell (see gru.hpp): forward in
// training mode pushes a step, backward pops the most recent one; eval mode does not push;
// clear() drops unpopped steps.
//
//   for t in 0..T-1:  { auto s = cell.forward(x_t, h, c); h = s.h; c = s.c; }
//   for t in T-1..0:  { auto g = cell.backward(dh + dout_t, dc); dh = g.dh; dc = g.dc; }
template <typename T>
class LSTMCell : public ModuleBase<T> {
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

  // Parameters as torch.nn.LSTMCell, all U(-1/sqrt(H), 1/sqrt(H)), drawn in the order
  // weight_ih, weight_hh, bias_ih, bias_hh.
  LSTMCell(Index input_size, Index hidden_size, bool bias = true,
           Generator& gen = default_generator())
      : I_(input_size), H_(hidden_size), has_bias_(bias) {
    detail::check_rnn_sizes("LSTMCell", input_size, hidden_size);
    p_.init(4, I_, H_, has_bias_, gen);  // (4H, I), (4H, H), (1, 4H), (1, 4H)
  }

  // forward       x: (B, I), h, c: (B, H) or empty for zeros -> {h' (B, H), c' (B, H)}
  State forward(const ConstRef<T>& x, const ConstRef<T>& h = Matrix<T>(),
                const ConstRef<T>& c = Matrix<T>()) {
    detail::check_shape("LSTMCell", "input", x, -1, I_);
    const Index B = x.rows();
    detail::check_state<T>("LSTMCell", "hidden state", h, B, H_);
    detail::check_state<T>("LSTMCell", "cell state", c, B, H_);
    Step& s = steps_.slot(this->training_);  // training: pushed
    s.x = x;  // copies first: inputs may be an earlier step's outputs living in this slot
    if (h.size() != 0) s.h = h; else s.h.setZero(B, H_);
    if (c.size() != 0) s.c = c; else s.c.setZero(B, H_);
    s.gates.resize(B, 4 * H_);                               // (B, 4H)
    s.gates.noalias() = s.x * p_.w_ih.transpose();           // (1)
    s.gates.noalias() += s.h * p_.w_hh.transpose();          // (2)
    if (has_bias_) s.gates.rowwise() += p_.b_ih.row(0) + p_.b_hh.row(0);
    s.c_new.resize(B, H_);
    s.tc.resize(B, H_);
    s.h_new.resize(B, H_);
    detail::lstm_gates_forward<T>(s.gates, s.c, s.c_new, s.tc, s.h_new);  // (3)-(5)
    return {s.h_new, s.c_new};
  }

  // backward of the most recent cached step
  //   dh', dc': (B, H) (dc' empty = zero) -> {dx (B, I), dh (B, H), dc (B, H)}
  Grads backward(const ConstRef<T>& dh_new, const ConstRef<T>& dc_new = Matrix<T>()) {
    if (steps_.depth() == 0)
      throw ValueError("LSTMCell: backward called with no cached step (call forward in training "
                       "mode once per backward)");
    Step& s = steps_.pop();
    const Index B = s.x.rows();
    detail::check_shape("LSTMCell", "gradient", dh_new, B, H_);
    detail::check_state<T>("LSTMCell", "cell state gradient", dc_new, B, H_);
    dhn_ = dh_new;  // copies: either may be a gradient this cell returned last time
    if (dc_new.size() != 0) dcn_ = dc_new; else dcn_.setZero(B, H_);
    da_.resize(B, 4 * H_);  // (B, 4H)
    dc_.resize(B, H_);      // (B, H)
    detail::lstm_gates_backward<T>(s.gates, s.c, s.tc, dhn_, dcn_, da_, dc_);  // d(3)-(5)
    p_.dw_ih.noalias() += da_.transpose() * s.x;  // d(1) wrt W_ih: (4H, B)(B, I)
    p_.dw_hh.noalias() += da_.transpose() * s.h;  // d(2) wrt W_hh: (4H, B)(B, H)
    if (has_bias_) {
      p_.db_ih.row(0) += da_.colwise().sum();     // d(1), d(2) wrt the biases: the same sum
      p_.db_hh.row(0) += da_.colwise().sum();
    }
    dh_.resize(B, H_);
    dh_.noalias() = da_ * p_.w_hh;                // d(2) wrt h: (B, 4H)(4H, H)
    if (this->input_grad_) {
      dx_.resize(B, I_);
      dx_.noalias() = da_ * p_.w_ih;              // d(1) wrt x: (B, 4H)(4H, I)
    } else {
      dx_.resize(0, I_);
    }
    return {dx_, dh_, dc_};
  }

  Index cached_steps() const { return steps_.depth(); }
  void clear() { steps_.clear(); }

  std::vector<Parameter<T>> local_parameters() override {
    std::vector<Parameter<T>> ps;
    p_.append_parameters(ps);  // weight_ih, weight_hh, bias_ih, bias_hh
    return ps;
  }
  std::string name() const override { return "LSTMCell"; }
  std::string extra_repr() const override { return detail::rnn_repr(I_, H_, has_bias_); }

  Index input_size() const { return I_; }
  Index hidden_size() const { return H_; }
  Matrix<T>& weight_ih() { return p_.w_ih; }  // (4H, I) rows [W_ii; W_if; W_ig; W_io]
  Matrix<T>& weight_hh() { return p_.w_hh; }  // (4H, H)
  Matrix<T>& bias_ih() { return p_.b_ih; }    // (1, 4H); empty without bias
  Matrix<T>& bias_hh() { return p_.b_hh; }    // (1, 4H); empty without bias

 private:
  struct Step {
    Matrix<T> x;         // (B, I)
    Matrix<T> h, c;      // (B, H) state entering the step
    Matrix<T> gates;     // (B, 4H) [i | f | g | o]
    Matrix<T> c_new;     // (B, H)
    Matrix<T> tc;        // (B, H) tanh(c')
    Matrix<T> h_new;     // (B, H)
  };

  Index I_, H_;
  bool has_bias_;
  detail::RnnWeights<T> p_;  // w_ih (4H, I), w_hh (4H, H), b_ih, b_hh (1, 4H)
  detail::StepStack<Step> steps_;  // per-step caches, see the class comment
  Matrix<T> da_;                  // (B, 4H)
  Matrix<T> dhn_, dcn_, dh_, dc_;  // (B, H)
  Matrix<T> dx_;                  // (B, I)
};

// Multi-layer, optionally bidirectional LSTM over whole sequences, torch.nn.LSTM with
// batch_first=True. Shapes, h0/h_n layout, direction columns and `lengths` exactly as GRU
// (gru.hpp), with the cell state alongside: c0, c_n (L*D*B, H). Padded steps carry both h and c.
template <typename T>
class LSTM : public ModuleBase<T> {
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

  // All parameters U(-1/sqrt(H), 1/sqrt(H)), drawn per layer and direction in state_dict order.
  LSTM(Index input_size, Index hidden_size, RNNOptions opt = {},
       Generator& gen = default_generator())
      : I_(input_size), H_(hidden_size), L_(opt.num_layers), D_(opt.bidirectional ? 2 : 1),
        has_bias_(opt.bias) {
    detail::check_rnn_sizes("LSTM", input_size, hidden_size, L_);
    cells_.resize(static_cast<std::size_t>(L_ * D_));
    for (Index l = 0; l < L_; ++l)    // layer l > 0 reads layer l-1's output, D*H columns
      for (Index d = 0; d < D_; ++d)  // (4H, in), (4H, H), (1, 4H), (1, 4H)
        cell(l, d).init(4, l == 0 ? I_ : D_ * H_, H_, has_bias_, gen);
    out_.resize(static_cast<std::size_t>(L_));
  }

  // forward     x: (B*T, I), h0, c0: (L*D*B, H) or empty, lengths: (B) or empty
  //             -> {output (B*T, D*H), h_n (L*D*B, H), c_n (L*D*B, H)}
  Output forward(const ConstRef<T>& x, Index batch, const ConstRef<T>& h0 = Matrix<T>(),
                 const ConstRef<T>& c0 = Matrix<T>(), const LabelsRef& lengths = Labels()) {
    const auto s = detail::check_sequence("LSTM", x.rows(), x.cols(), batch, I_);
    const Index B = s.B, T_ = s.T, H = H_;
    detail::check_state<T>("LSTM", "h0", h0, L_ * D_ * B, H);
    detail::check_state<T>("LSTM", "c0", c0, L_ * D_ * B, H);
    masked_ = detail::build_mask<T>("LSTM", lengths, s, mask_);  // (T, B)
    shape_ = s;
    x_ = x;                        // (B*T, I) kept for dW_ih of layer 0
    hn_.resize(L_ * D_ * B, H);    // (L*D*B, H)
    cn_.resize(L_ * D_ * B, H);    // (L*D*B, H)
    h_.resize(B, H);               // (B, H) running states
    c_.resize(B, H);
    cnew_.resize(B, H);            // (B, H) step scratch
    for (Index l = 0; l < L_; ++l) {
      const Matrix<T>& in = l == 0 ? x_ : out_[l - 1];  // (B*T, in)
      Matrix<T>& out = out_[l];
      out.resize(B * T_, D_ * H);                       // (B*T, D*H)
      for (Index d = 0; d < D_; ++d) {
        Cell& c = cell(l, d);
        c.G.resize(B * T_, 4 * H);                      // (B*T, 4H)
        c.HP.resize(B * T_, H);                         // (B*T, H)
        c.CP.resize(B * T_, H);                         // (B*T, H)
        c.TC.resize(B * T_, H);                         // (B*T, H)
        c.G.noalias() = in * c.w_ih.transpose();        // (1) for every step at once
        if (has_bias_) c.G.rowwise() += c.b_ih.row(0) + c.b_hh.row(0);
        const Index r0 = (l * D_ + d) * B;
        if (h0.size() != 0) h_ = h0.middleRows(r0, B); else h_.setZero();
        if (c0.size() != 0) c_ = c0.middleRows(r0, B); else c_.setZero();
        for (Index k = 0; k < T_; ++k) {
          const Index t = d == 0 ? k : T_ - 1 - k;
          detail::step_rows(c.HP, T_, t, 0, H) = h_;    // states entering step t
          detail::step_rows(c.CP, T_, t, 0, H) = c_;
          auto a = detail::step_rows(c.G, T_, t, 0, 4 * H);  // (B, 4H)
          a.noalias() += h_ * c.w_hh.transpose();       // (2)
          auto y = detail::step_rows(out, T_, t, d * H, H);  // (B, H) view of output
          detail::lstm_gates_forward<T>(a, c_, cnew_, detail::step_rows(c.TC, T_, t, 0, H), y);
          if (masked_) {  // padded steps: states carried, output zero
            const auto m = mask_.row(t).transpose().array();  // (B)
            h_.array() += (y.array() - h_.array()).colwise() * m;
            c_.array() += (cnew_.array() - c_.array()).colwise() * m;
            y.array().colwise() *= m;
          } else {
            h_ = y;
            c_ = cnew_;
          }
        }
        hn_.middleRows(r0, B) = h_;
        cn_.middleRows(r0, B) = c_;
      }
    }
    return {out_.back(), hn_, cn_};
  }

  // backward     dy: (B*T, D*H), dh_n, dc_n: (L*D*B, H) or empty
  //              -> {dx (B*T, I), dh0, dc0 (L*D*B, H)}; accumulates every parameter gradient.
  Grads backward(const ConstRef<T>& dy, const ConstRef<T>& dh_n = Matrix<T>(),
                 const ConstRef<T>& dc_n = Matrix<T>()) {
    if (x_.size() == 0) throw ValueError("LSTM: backward called before forward");
    const Index B = shape_.B, T_ = shape_.T, H = H_;
    detail::check_shape("LSTM", "gradient", dy, B * T_, D_ * H);
    detail::check_state<T>("LSTM", "h_n gradient", dh_n, L_ * D_ * B, H);
    detail::check_state<T>("LSTM", "c_n gradient", dc_n, L_ * D_ * B, H);
    dh0_.resize(L_ * D_ * B, H);                        // (L*D*B, H)
    dc0_.resize(L_ * D_ * B, H);                        // (L*D*B, H)
    dh_.resize(B, H);                                   // (B, H)
    dc_.resize(B, H);
    dhc_.resize(B, H);
    dcc_.resize(B, H);
    dcz_.resize(B, H);
    DA_.resize(B * T_, 4 * H);                          // (B*T, 4H)
    for (Index l = L_ - 1; l >= 0; --l) {
      const Matrix<T>& in = l == 0 ? x_ : out_[l - 1];  // (B*T, in)
      const bool need_din = l > 0 || this->input_grad_;
      Matrix<T>& din = l == 0 ? dx_ : dmid_[(l - 1) % 2];  // (B*T, in); dmid_[l % 2] is dY
      din.resize(need_din ? B * T_ : 0, in.cols());
      const ConstRef<T> dY = l == L_ - 1 ? dy : ConstRef<T>(dmid_[l % 2]);  // (B*T, D*H)
      for (Index d = 0; d < D_; ++d) {
        Cell& c = cell(l, d);
        const Index r0 = (l * D_ + d) * B;
        if (dh_n.size() != 0) dh_ = dh_n.middleRows(r0, B); else dh_.setZero();
        if (dc_n.size() != 0) dc_ = dc_n.middleRows(r0, B); else dc_.setZero();
        for (Index k = T_ - 1; k >= 0; --k) {
          const Index t = d == 0 ? k : T_ - 1 - k;
          dhc_ = dh_ + detail::step_rows<T>(dY, T_, t, d * H, H);  // output_t = h'_t
          dcc_ = dc_;
          if (masked_) {  // padded rows: no gradient into the step, dh and dc pass through
            const auto m = mask_.row(t).transpose().array();  // (B)
            dhc_.array().colwise() *= m;
            dcc_.array().colwise() *= m;
            dh_.array().colwise() *= (T(1) - m);
            dc_.array().colwise() *= (T(1) - m);
          }
          auto da = detail::step_rows(DA_, T_, t, 0, 4 * H);
          detail::lstm_gates_backward<T>(detail::step_rows(c.G, T_, t, 0, 4 * H),
                                         detail::step_rows(c.CP, T_, t, 0, H),
                                         detail::step_rows(c.TC, T_, t, 0, H), dhc_, dcc_, da,
                                         dcz_);
          if (masked_) {
            dc_ += dcz_;                                // d(4) wrt c
            dh_.noalias() += da * c.w_hh;               // d(2) wrt h: (B, 4H)(4H, H)
          } else {
            dc_ = dcz_;
            dh_.noalias() = da * c.w_hh;
          }
        }
        dh0_.middleRows(r0, B) = dh_;
        dc0_.middleRows(r0, B) = dc_;
        c.dw_ih.noalias() += DA_.transpose() * in;      // d(1) wrt W_ih, all steps: (4H, B*T)(B*T, in)
        c.dw_hh.noalias() += DA_.transpose() * c.HP;    // d(2) wrt W_hh, all steps
        if (has_bias_) {
          c.db_ih.row(0) += DA_.colwise().sum();        // d(1), d(2) wrt the biases
          c.db_hh.row(0) += DA_.colwise().sum();
        }
        if (need_din) {                                 // d(1) wrt input, summed over directions
          if (d == 0) din.noalias() = DA_ * c.w_ih; else din.noalias() += DA_ * c.w_ih;
        }
      }
    }
    return {dx_, dh0_, dc0_};
  }

  // state_dict order and names, as GRU: weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ...
  std::vector<Parameter<T>> local_parameters() override {
    std::vector<Parameter<T>> ps;
    for (Index l = 0; l < L_; ++l)
      for (Index d = 0; d < D_; ++d) cell(l, d).append_parameters(ps, detail::layer_suffix(l, d));
    return ps;
  }
  std::string name() const override { return "LSTM"; }
  std::string extra_repr() const override {
    return detail::rnn_repr(I_, H_, has_bias_, L_, D_ == 2);
  }

  Index input_size() const { return I_; }
  Index hidden_size() const { return H_; }
  Index num_layers() const { return L_; }
  Index num_directions() const { return D_; }

 private:
  // One layer and direction: parameters w_ih (4H, in), w_hh (4H, H), b_ih, b_hh (1, 4H)
  // with their gradients (rnn_common.hpp), and the forward cache.
  struct Cell : detail::RnnWeights<T> {
    Matrix<T> G;            // (B*T, 4H) pre-activations, then [i | f | g | o] of every step
    Matrix<T> HP, CP;       // (B*T, H)  states entering every step
    Matrix<T> TC;           // (B*T, H)  tanh(c') of every step
  };
  Cell& cell(Index l, Index d) { return cells_[static_cast<std::size_t>(l * D_ + d)]; }

  Index I_, H_, L_, D_;
  bool has_bias_;
  bool masked_ = false;
  detail::SeqShape shape_;
  std::vector<Cell> cells_;     // l*D + d
  std::vector<Matrix<T>> out_;  // per layer (B*T, D*H)
  Matrix<T> x_;                 // (B*T, I)
  Matrix<T> hn_, cn_;           // (L*D*B, H)
  Matrix<T> mask_;              // (T, B), empty without lengths
  Matrix<T> h_, c_, cnew_;      // (B, H) forward scratch
  Matrix<T> dh_, dc_, dhc_, dcc_, dcz_;  // (B, H) backward scratch
  Matrix<T> DA_;                // (B*T, 4H)
  Matrix<T> dx_;                // (B*T, I)
  Matrix<T> dmid_[2];           // (B*T, D*H) gradients between layers, ping-pong
  Matrix<T> dh0_, dc0_;         // (L*D*B, H)
};

}  // namespace heed
