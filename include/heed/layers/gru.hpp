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
class GRUCell : public ModuleBase<T> {
 public:
  struct Grads {
    const Matrix<T>& dx;  // (B, I); empty when requires_input_grad(false)
    const Matrix<T>& dh;  // (B, H)
  };

  // Parameters as torch.nn.GRUCell, all U(-1/sqrt(H), 1/sqrt(H)), drawn in the order
  // weight_ih, weight_hh, bias_ih, bias_hh.
  GRUCell(Index input_size, Index hidden_size, bool bias = true,
          Generator& gen = default_generator())
      : I_(input_size), H_(hidden_size), has_bias_(bias) {
    detail::check_rnn_sizes("GRUCell", input_size, hidden_size);
    p_.init(3, I_, H_, has_bias_, gen);  // (3H, I), (3H, H), (1, 3H), (1, 3H)
  }

  // forward                          x: (B, I), h: (B, H) or empty for zeros -> h': (B, H)
  const Matrix<T>& forward(const ConstRef<T>& x, const ConstRef<T>& h = Matrix<T>()) {
    detail::check_shape("GRUCell", "input", x, -1, I_);
    const Index B = x.rows();
    detail::check_state<T>("GRUCell", "hidden state", h, B, H_);
    Step& s = steps_.slot(this->training_);  // training: pushed
    s.x = x;  // copies first: x or h may be an earlier step's h' living in this very slot
    if (h.size() != 0) s.h = h; else s.h.setZero(B, H_);
    s.gates.resize(B, 3 * H_);                                  // (B, 3H)
    s.gates.noalias() = s.x * p_.w_ih.transpose();              // (1)
    gh_.resize(B, 3 * H_);                                      // (B, 3H)
    gh_.noalias() = s.h * p_.w_hh.transpose();                  // (2)
    if (has_bias_) {
      s.gates.rowwise() += p_.b_ih.row(0);
      gh_.rowwise() += p_.b_hh.row(0);
    }
    s.ghn.resize(B, H_);
    s.h_new.resize(B, H_);
    detail::gru_gates_forward<T>(s.gates, gh_, s.h, s.ghn, s.h_new);  // (3)-(6)
    return s.h_new;
  }

  // backward of the most recent cached step        dh': (B, H) -> {dx (B, I), dh (B, H)}
  Grads backward(const ConstRef<T>& dh_new) {
    if (steps_.depth() == 0)
      throw ValueError("GRUCell: backward called with no cached step (call forward in training "
                       "mode once per backward)");
    Step& s = steps_.pop();
    const Index B = s.x.rows();
    detail::check_shape("GRUCell", "gradient", dh_new, B, H_);
    dhn_ = dh_new;  // may be the dh this cell returned last time
    dgi_.resize(B, 3 * H_);  // (B, 3H)
    dgh_.resize(B, 3 * H_);  // (B, 3H)
    dh_.resize(B, H_);       // (B, H)
    detail::gru_gates_backward<T>(s.gates, s.ghn, s.h, dhn_, dgi_, dgh_, dh_);  // d(3)-(6)
    p_.dw_ih.noalias() += dgi_.transpose() * s.x;  // d(1) wrt W_ih: (3H, B)(B, I)
    p_.dw_hh.noalias() += dgh_.transpose() * s.h;  // d(2) wrt W_hh: (3H, B)(B, H)
    if (has_bias_) {
      p_.db_ih.row(0) += dgi_.colwise().sum();     // d(1) wrt b_ih
      p_.db_hh.row(0) += dgh_.colwise().sum();     // d(2) wrt b_hh
    }
    dh_.noalias() += dgh_ * p_.w_hh;               // d(2) wrt h: (B, 3H)(3H, H)
    if (this->input_grad_) {
      dx_.resize(B, I_);
      dx_.noalias() = dgi_ * p_.w_ih;              // d(1) wrt x: (B, 3H)(3H, I)
    } else {
      dx_.resize(0, I_);
    }
    return {dx_, dh_};
  }

  // Steps cached by forward and not yet popped by backward.
  Index cached_steps() const { return steps_.depth(); }
  void clear() { steps_.clear(); }

  std::vector<Parameter<T>> local_parameters() override {
    std::vector<Parameter<T>> ps;
    p_.append_parameters(ps);  // weight_ih, weight_hh, bias_ih, bias_hh
    return ps;
  }
  std::string name() const override { return "GRUCell"; }
  std::string extra_repr() const override { return detail::rnn_repr(I_, H_, has_bias_); }

  Index input_size() const { return I_; }
  Index hidden_size() const { return H_; }
  Matrix<T>& weight_ih() { return p_.w_ih; }  // (3H, I) rows [W_ir; W_iz; W_in]
  Matrix<T>& weight_hh() { return p_.w_hh; }  // (3H, H) rows [W_hr; W_hz; W_hn]
  Matrix<T>& bias_ih() { return p_.b_ih; }    // (1, 3H); empty without bias
  Matrix<T>& bias_hh() { return p_.b_hh; }    // (1, 3H); empty without bias

 private:
  struct Step {
    Matrix<T> x;      // (B, I)
    Matrix<T> h;      // (B, H)  state entering the step
    Matrix<T> gates;  // (B, 3H) [r | z | n]
    Matrix<T> ghn;    // (B, H)  W_hn h + b_hn
    Matrix<T> h_new;  // (B, H)
  };

  Index I_, H_;
  bool has_bias_;
  detail::RnnWeights<T> p_;  // w_ih (3H, I), w_hh (3H, H), b_ih, b_hh (1, 3H)
  detail::StepStack<Step> steps_;  // per-step caches, see the class comment
  Matrix<T> gh_;            // (B, 3H) forward scratch
  Matrix<T> dgi_, dgh_;     // (B, 3H)
  Matrix<T> dhn_, dh_;      // (B, H)
  Matrix<T> dx_;            // (B, I)
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
// Per layer and direction the input projections of all steps are one GEMM (1) before the time
// loop and their gradients one GEMM after it; the loop does only the (B, H) x (H, 3H) products.
template <typename T>
class GRU : public ModuleBase<T> {
 public:
  struct Output {
    const Matrix<T>& output;  // (B*T, D*H)
    const Matrix<T>& h_n;     // (L*D*B, H)
  };
  struct Grads {
    const Matrix<T>& dx;   // (B*T, I); empty when requires_input_grad(false)
    const Matrix<T>& dh0;  // (L*D*B, H)
  };

  // All parameters U(-1/sqrt(H), 1/sqrt(H)), drawn per layer and direction in state_dict order.
  GRU(Index input_size, Index hidden_size, RNNOptions opt = {},
      Generator& gen = default_generator())
      : I_(input_size), H_(hidden_size), L_(opt.num_layers), D_(opt.bidirectional ? 2 : 1),
        has_bias_(opt.bias) {
    detail::check_rnn_sizes("GRU", input_size, hidden_size, L_);
    cells_.resize(static_cast<std::size_t>(L_ * D_));
    for (Index l = 0; l < L_; ++l)    // layer l > 0 reads layer l-1's output, D*H columns
      for (Index d = 0; d < D_; ++d)  // (3H, in), (3H, H), (1, 3H), (1, 3H)
        cell(l, d).init(3, l == 0 ? I_ : D_ * H_, H_, has_bias_, gen);
    out_.resize(static_cast<std::size_t>(L_));
  }

  // forward          x: (B*T, I), h0: (L*D*B, H) or empty, lengths: (B) or empty
  //                  -> {output (B*T, D*H), h_n (L*D*B, H)}
  Output forward(const ConstRef<T>& x, Index batch, const ConstRef<T>& h0 = Matrix<T>(),
                 const LabelsRef& lengths = Labels()) {
    const auto s = detail::check_sequence("GRU", x.rows(), x.cols(), batch, I_);
    const Index B = s.B, T_ = s.T, H = H_;
    detail::check_state<T>("GRU", "h0", h0, L_ * D_ * B, H);
    masked_ = detail::build_mask<T>("GRU", lengths, s, mask_);  // (T, B)
    shape_ = s;
    x_ = x;                          // (B*T, I) kept for dW_ih of layer 0
    hn_.resize(L_ * D_ * B, H);      // (L*D*B, H)
    h_.resize(B, H);                 // (B, H)      running state
    gh_.resize(B, 3 * H);            // (B, 3H)
    for (Index l = 0; l < L_; ++l) {
      const Matrix<T>& in = l == 0 ? x_ : out_[l - 1];  // (B*T, in)
      Matrix<T>& out = out_[l];
      out.resize(B * T_, D_ * H);                       // (B*T, D*H)
      for (Index d = 0; d < D_; ++d) {
        Cell& c = cell(l, d);
        c.G.resize(B * T_, 3 * H);                      // (B*T, 3H)
        c.GHN.resize(B * T_, H);                        // (B*T, H)
        c.HP.resize(B * T_, H);                         // (B*T, H)
        c.G.noalias() = in * c.w_ih.transpose();        // (1) for every step at once
        if (has_bias_) c.G.rowwise() += c.b_ih.row(0);
        if (h0.size() != 0) h_ = h0.middleRows((l * D_ + d) * B, B); else h_.setZero();
        for (Index k = 0; k < T_; ++k) {
          const Index t = d == 0 ? k : T_ - 1 - k;
          detail::step_rows(c.HP, T_, t, 0, H) = h_;    // state entering step t
          gh_.noalias() = h_ * c.w_hh.transpose();      // (2)
          if (has_bias_) gh_.rowwise() += c.b_hh.row(0);
          auto y = detail::step_rows(out, T_, t, d * H, H);  // (B, H) view of output
          detail::gru_gates_forward<T>(detail::step_rows(c.G, T_, t, 0, 3 * H), gh_, h_,
                                       detail::step_rows(c.GHN, T_, t, 0, H), y);  // (3)-(6)
          if (masked_) {  // padded steps: state carried, output zero
            const auto m = mask_.row(t).transpose().array();  // (B)
            h_.array() += (y.array() - h_.array()).colwise() * m;
            y.array().colwise() *= m;
          } else {
            h_ = y;
          }
        }
        hn_.middleRows((l * D_ + d) * B, B) = h_;
      }
    }
    return {out_.back(), hn_};
  }

  // backward          dy: (B*T, D*H), dh_n: (L*D*B, H) or empty -> {dx (B*T, I), dh0 (L*D*B, H)}
  // Accumulates (+=) every parameter gradient.
  Grads backward(const ConstRef<T>& dy, const ConstRef<T>& dh_n = Matrix<T>()) {
    if (x_.size() == 0) throw ValueError("GRU: backward called before forward");
    const Index B = shape_.B, T_ = shape_.T, H = H_;
    detail::check_shape("GRU", "gradient", dy, B * T_, D_ * H);
    detail::check_state<T>("GRU", "h_n gradient", dh_n, L_ * D_ * B, H);
    dh0_.resize(L_ * D_ * B, H);                        // (L*D*B, H)
    dh_.resize(B, H);                                   // (B, H)
    dcand_.resize(B, H);                                // (B, H)
    dhz_.resize(B, H);                                  // (B, H)
    DGI_.resize(B * T_, 3 * H);                         // (B*T, 3H)
    DGH_.resize(B * T_, 3 * H);                         // (B*T, 3H)
    for (Index l = L_ - 1; l >= 0; --l) {
      const Matrix<T>& in = l == 0 ? x_ : out_[l - 1];  // (B*T, in)
      const bool need_din = l > 0 || this->input_grad_;
      Matrix<T>& din = l == 0 ? dx_ : dmid_[(l - 1) % 2];  // (B*T, in); dmid_[l % 2] is dY
      din.resize(need_din ? B * T_ : 0, in.cols());
      const ConstRef<T> dY = l == L_ - 1 ? dy : ConstRef<T>(dmid_[l % 2]);  // (B*T, D*H)
      for (Index d = 0; d < D_; ++d) {
        Cell& c = cell(l, d);
        if (dh_n.size() != 0) dh_ = dh_n.middleRows((l * D_ + d) * B, B); else dh_.setZero();
        for (Index k = T_ - 1; k >= 0; --k) {
          const Index t = d == 0 ? k : T_ - 1 - k;
          dcand_ = dh_ + detail::step_rows<T>(dY, T_, t, d * H, H);  // output_t = h'_t
          if (masked_) {  // padded rows: no gradient into the step, dh passes through
            const auto m = mask_.row(t).transpose().array();  // (B)
            dcand_.array().colwise() *= m;
            dh_.array().colwise() *= (T(1) - m);
          }
          auto dgh = detail::step_rows(DGH_, T_, t, 0, 3 * H);
          detail::gru_gates_backward<T>(detail::step_rows(c.G, T_, t, 0, 3 * H),
                                        detail::step_rows(c.GHN, T_, t, 0, H),
                                        detail::step_rows(c.HP, T_, t, 0, H), dcand_,
                                        detail::step_rows(DGI_, T_, t, 0, 3 * H), dgh, dhz_);
          if (masked_) dh_ += dhz_; else dh_ = dhz_;    // d(6) wrt h
          dh_.noalias() += dgh * c.w_hh;                // d(2) wrt h: (B, 3H)(3H, H)
        }
        dh0_.middleRows((l * D_ + d) * B, B) = dh_;
        c.dw_ih.noalias() += DGI_.transpose() * in;     // d(1) wrt W_ih, all steps: (3H, B*T)(B*T, in)
        c.dw_hh.noalias() += DGH_.transpose() * c.HP;   // d(2) wrt W_hh, all steps
        if (has_bias_) {
          c.db_ih.row(0) += DGI_.colwise().sum();
          c.db_hh.row(0) += DGH_.colwise().sum();
        }
        if (need_din) {                                 // d(1) wrt input, summed over directions
          if (d == 0) din.noalias() = DGI_ * c.w_ih; else din.noalias() += DGI_ * c.w_ih;
        }
      }
    }
    return {dx_, dh0_};
  }

  // state_dict order and names: weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0,
  // weight_ih_l0_reverse, ..., weight_ih_l1, ...
  std::vector<Parameter<T>> local_parameters() override {
    std::vector<Parameter<T>> ps;
    for (Index l = 0; l < L_; ++l)
      for (Index d = 0; d < D_; ++d) cell(l, d).append_parameters(ps, detail::layer_suffix(l, d));
    return ps;
  }
  std::string name() const override { return "GRU"; }
  std::string extra_repr() const override {
    return detail::rnn_repr(I_, H_, has_bias_, L_, D_ == 2);
  }

  Index input_size() const { return I_; }
  Index hidden_size() const { return H_; }
  Index num_layers() const { return L_; }
  Index num_directions() const { return D_; }

 private:
  // One layer and direction: parameters w_ih (3H, in), w_hh (3H, H), b_ih, b_hh (1, 3H)
  // with their gradients (rnn_common.hpp), and the forward cache.
  struct Cell : detail::RnnWeights<T> {
    Matrix<T> G;            // (B*T, 3H) gi, then [r | z | n] of every step
    Matrix<T> GHN;          // (B*T, H)  W_hn h + b_hn of every step
    Matrix<T> HP;           // (B*T, H)  state entering every step
  };
  Cell& cell(Index l, Index d) { return cells_[static_cast<std::size_t>(l * D_ + d)]; }

  Index I_, H_, L_, D_;
  bool has_bias_;
  bool masked_ = false;
  detail::SeqShape shape_;
  std::vector<Cell> cells_;     // l*D + d
  std::vector<Matrix<T>> out_;  // per layer (B*T, D*H)
  Matrix<T> x_;                 // (B*T, I)
  Matrix<T> hn_;                // (L*D*B, H)
  Matrix<T> mask_;              // (T, B), empty without lengths
  Matrix<T> h_, gh_;            // (B, H), (B, 3H) forward scratch
  Matrix<T> dh_, dcand_, dhz_;  // (B, H) backward scratch
  Matrix<T> DGI_, DGH_;         // (B*T, 3H)
  Matrix<T> dx_;                // (B*T, I)
  Matrix<T> dmid_[2];           // (B*T, D*H) gradients between layers, ping-pong
  Matrix<T> dh0_;               // (L*D*B, H)
};

}  // namespace heed
