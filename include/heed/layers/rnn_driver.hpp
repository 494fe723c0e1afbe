#pragma once
// The one backpropagation-through-time driver of GRU and LSTM (gru.hpp, lstm.hpp), which
// differ only in their gates. detail::StackedRnn<T, Gates> owns the layer x direction x time
// loop, the `lengths` mask, the state slicing of h0/h_n, the input projections before the loop,
// the weight gradients after it and the gradient hand-over between layers; a Gates policy
// supplies the per-step gate math (the contract is below the equations).
//
// Layer l, direction d (d = 1 runs t = T-1 .. 0), in = x for l = 0, else layer l-1's output;
// the S states s (GRU: h; LSTM: h, c) start at h0 (, c0) rows (l*D + d)*B .. +B, or zeros:
//
//   GI   = in W_ih^T + b_ih               (B*T, G*H)  every step in one GEMM             (1)
//   gh_t = h_{t-1} W_hh^T + b_hh          (B, G*H)    the only GEMM in the loop          (2)
//   h~_t (, c~_t) = gates(GI_t, gh_t, h_{t-1} (, c_{t-1}))   GRU (3)-(6), LSTM (3)-(5)   (G)
//   s_t = m_t ? s~_t : s_{t-1},  y_t = m_t ? h~_t : 0                                   (M)
//   h_n (, c_n) = the states after the direction's last step
//
// m_t(b) = [t < lengths[b]]: padded steps carry the states and output zeros (without lengths
// m = 1 and the masking is skipped). (M) and its backward are selects, not products (valid
// rows still take s + (s~ - s), the bits the products gave), and the padded input rows are
// zeroed in the kept copy of x, so NaN/inf in the padding reaches no output, state or gradient
// (0 * NaN would be NaN), as with PyTorch's packed sequences. Where the gates see only gi + gh
// (LSTM: Gates::kSummed) b_hh is folded into (1) and (2) accumulates into GI_t in place.
//
// Backward, steps in reverse, ds = the gradient reaching each state (from dh_n (, dc_n)):
//   dh~ = m_t ? dh + dy_t : 0,  dc~ = m_t ? dc : 0      d(M) wrt h~, c~ (y_t is h~ where valid)
//   ds = m_t ? 0 : ds                                   d(M) wrt s_{t-1}: the carried part
//   dGI_t, dgh_t from (dh~, dc~); ds += the direct paths   d(G) (the policy's backward;
//                                                       padded rows set to exactly 0)
//   dh += dgh_t W_hh                                     d(2) wrt h
// then for all steps at once (H_prev: the states h entering every step, cached by forward):
//   dW_ih += dGI^T in,  db_ih += sum dGI                 d(1)
//   dW_hh += dGH^T H_prev,  db_hh += sum dGH              d(2); dGH = dGI when kSummed
//   din (+)= dGI W_ih, summed over directions            d(1) wrt in: layer l-1's dy
//
// The Gates policy (GruGates in gru.hpp, LstmGates in lstm.hpp) supplies
//   kGates        G, gate blocks stacked in W's rows (GRU 3, LSTM 4)
//   kStates       S, h first, then the cell's own states (GRU 1, LSTM 2)
//   kSummed       the gates see gi + gh only (LSTM), see above; GRU keeps them apart
//   kDirect[S]    s_{t-1} reaches the step directly, not only through W_hh (GRU h, LSTM c)
//   kInitNames[S], kGradNames[S]     "h0", "c0" / "h_n gradient", ... for error messages
//   Cache         its own per-step caches of one layer and direction (GRU gh_n, LSTM tanh c'),
//                 sized by resize_steps(B*T, H); a Cell derives from it
//   forward(cell, at, gh, s, h_new, s_new)     (G) at step `at`: at(cell.G) holds gi (LSTM:
//                 gi + gh) and becomes the gates; s[S] the states entering; writes h~ to
//                 h_new (the output view) and c~ to s_new[1..S)
//   backward(cell, at, ds_new, dgi, dgh, ds)   d(G) from ds_new[S] = dh~ (, dc~): writes dgi,
//                 dgh (B, G*H) (one buffer when kSummed) and the direct paths ds[k], kDirect[k]
#include <array>
#include <string>
#include <vector>

#include "rnn_common.hpp"

namespace heed {
namespace detail {

// Step t's B rows of a (B*T, *) buffer of the current call, all columns: at(G) is (B, G*H).
struct StepAt {
  Index steps, t;
  template <typename T>
  StepMap<T> operator()(Matrix<T>& m) const {
    return step_rows(m, steps, t, 0, m.cols());
  }
};

template <typename T, class Gates>
class StackedRnn : public ModuleBase<T> {
  static constexpr Index S = Gates::kStates;

 public:
  // One layer and direction: parameters w_ih (G*H, in), w_hh (G*H, H), b_ih, b_hh (1, G*H)
  // with their gradients (rnn_common.hpp), and the forward cache of every step.
  struct Cell : RnnWeights<T>, Gates::Cache {
    Matrix<T> G;      // (B*T, G*H) (1), then the gates of every step
    Matrix<T> SP[S];  // (B*T, H)   states entering every step: SP[0] h, (LSTM) SP[1] c
  };

  // state_dict order and names: weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0,
  // weight_ih_l0_reverse, ..., weight_ih_l1, ...
  std::vector<Parameter<T>> local_parameters() override {
    std::vector<Parameter<T>> ps;
    for (Index l = 0; l < L_; ++l)
      for (Index d = 0; d < D_; ++d) cell(l, d).append_parameters(ps, layer_suffix(l, d));
    return ps;
  }
  std::string name() const override { return module_; }
  std::string extra_repr() const override { return rnn_repr(I_, H_, has_bias_, L_, D_ == 2); }

  Index input_size() const { return I_; }
  Index hidden_size() const { return H_; }
  Index num_layers() const { return L_; }
  Index num_directions() const { return D_; }

 protected:
  // All parameters U(-1/sqrt(H), 1/sqrt(H)), drawn per layer and direction in state_dict order.
  StackedRnn(const char* module, Index input_size, Index hidden_size, RNNOptions opt,
             Generator& gen)
      : module_(module), I_(input_size), H_(hidden_size), L_(opt.num_layers),
        D_(opt.bidirectional ? 2 : 1), has_bias_(opt.bias) {
    check_rnn_sizes(module_, input_size, hidden_size, L_);
    cells_.resize(static_cast<std::size_t>(L_ * D_));
    for (Index l = 0; l < L_; ++l)    // layer l > 0 reads layer l-1's output, D*H columns
      for (Index d = 0; d < D_; ++d)  // (G*H, in), (G*H, H), (1, G*H), (1, G*H)
        cell(l, d).init(Gates::kGates, l == 0 ? I_ : D_ * H_, H_, has_bias_, gen);
    out_.resize(static_cast<std::size_t>(L_));
  }

  // x: (B*T, I), s0[k]: (L*D*B, H) or empty for zeros, lengths: (B) or empty. Leaves the output
  // in out_.back() (B*T, D*H) and the final states in sn_[k] (L*D*B, H).
  void forward_all(const ConstRef<T>& x, Index batch, const std::array<const ConstRef<T>*, S>& s0,
                   const LabelsRef& lengths) {
    const auto s = check_sequence(module_, x.rows(), x.cols(), batch, I_);
    const Index B = s.B, T_ = s.T, H = H_;
    for (Index k = 0; k < S; ++k)
      check_state<T>(module_, Gates::kInitNames[k], *s0[k], L_ * D_ * B, H);
    masked_ = build_mask<T>(module_, lengths, s, mask_);  // (T, B)
    shape_ = s;
    x_ = x;                                 // (B*T, I) kept for dW_ih of layer 0
    if (masked_) {  // padding is never read: NaN/inf there must not reach GI or dW_ih
      for (Index b = 0; b < B; ++b)
        for (Index t = 0; t < T_; ++t)
          if (mask_(t, b) == T(0)) x_.row(b * T_ + t).setZero();
    }
    for (Index k = 0; k < S; ++k) {
      sn_[k].resize(L_ * D_ * B, H);        // (L*D*B, H)
      s_[k].resize(B, H);                   // (B, H) running states
      if (k > 0) snew_[k].resize(B, H);     // (B, H) s~ of the step (h~ goes to the output)
    }
    if constexpr (!Gates::kSummed) gh_.resize(B, Gates::kGates * H);  // (B, G*H)
    for (Index l = 0; l < L_; ++l) {
      const Matrix<T>& in = l == 0 ? x_ : out_[l - 1];  // (B*T, in)
      Matrix<T>& out = out_[l];
      out.resize(B * T_, D_ * H);                       // (B*T, D*H)
      for (Index d = 0; d < D_; ++d) {
        Cell& c = cell(l, d);
        c.G.resize(B * T_, Gates::kGates * H);          // (B*T, G*H)
        for (Index k = 0; k < S; ++k) c.SP[k].resize(B * T_, H);  // (B*T, H)
        c.resize_steps(B * T_, H);
        detail::gemm<T>(c.G, in, detail::Op::N, c.w_ih, detail::Op::T);  // (1) for every step at once
        if (has_bias_) {
          if constexpr (Gates::kSummed) c.G.rowwise() += c.b_ih.row(0) + c.b_hh.row(0);
          else c.G.rowwise() += c.b_ih.row(0);
        }
        const Index r0 = (l * D_ + d) * B;
        for (Index k = 0; k < S; ++k) {
          if (s0[k]->size() != 0) s_[k] = s0[k]->middleRows(r0, B); else s_[k].setZero();
        }
        for (Index i = 0; i < T_; ++i) {
          const StepAt at{T_, d == 0 ? i : T_ - 1 - i};
          for (Index k = 0; k < S; ++k) at(c.SP[k]) = s_[k];  // states entering step t
          if constexpr (Gates::kSummed) {
            at(c.G).noalias() += s_[0] * c.w_hh.transpose();  // (2) into gi
          } else {
            gh_.noalias() = s_[0] * c.w_hh.transpose();      // (2)
            if (has_bias_) gh_.rowwise() += c.b_hh.row(0);
          }
          auto y = step_rows(out, T_, at.t, d * H, H);       // (B, H) view of the output
          Gates::forward(c, at, gh_, s_, y, snew_);          // (G)
          if (masked_) {  // (M) by select: padded rows carry the states, output exact 0
            for (Index b = 0; b < B; ++b) {
              if (mask_(at.t, b) == T(0)) {
                y.row(b).setZero();
              } else {  // s + (s~ - s), not s~: the same bits as the masked products gave
                s_[0].row(b) += y.row(b) - s_[0].row(b);
                for (Index k = 1; k < S; ++k) s_[k].row(b) += snew_[k].row(b) - s_[k].row(b);
              }
            }
          } else {
            s_[0] = y;
            for (Index k = 1; k < S; ++k) s_[k] = snew_[k];
          }
        }
        for (Index k = 0; k < S; ++k) sn_[k].middleRows(r0, B) = s_[k];
      }
    }
  }

  // dy: (B*T, D*H), dsn[k]: (L*D*B, H) or empty. Leaves dx_ (B*T, I), empty when
  // requires_input_grad(false), and ds0_[k] (L*D*B, H); accumulates (+=) every parameter gradient.
  void backward_all(const ConstRef<T>& dy, const std::array<const ConstRef<T>*, S>& dsn) {
    if (x_.size() == 0) throw ValueError(std::string(module_) + ": backward called before forward");
    const Index B = shape_.B, T_ = shape_.T, H = H_;
    check_shape(module_, "gradient", dy, B * T_, D_ * H);
    for (Index k = 0; k < S; ++k)
      check_state<T>(module_, Gates::kGradNames[k], *dsn[k], L_ * D_ * B, H);
    for (Index k = 0; k < S; ++k) {
      ds0_[k].resize(L_ * D_ * B, H);       // (L*D*B, H)
      ds_[k].resize(B, H);                  // (B, H) gradient reaching the running state
      dsnew_[k].resize(B, H);               // (B, H) dh~, dc~
      dsz_[k].resize(B, H);                 // (B, H) direct paths d(G) wrt s_{t-1}
    }
    DGI_.resize(B * T_, Gates::kGates * H);                           // (B*T, G*H)
    if constexpr (!Gates::kSummed) DGH_.resize(B * T_, Gates::kGates * H);  // (B*T, G*H)
    Matrix<T>& DGH = Gates::kSummed ? DGI_ : DGH_;
    for (Index l = L_ - 1; l >= 0; --l) {
      const Matrix<T>& in = l == 0 ? x_ : out_[l - 1];  // (B*T, in)
      const bool need_din = l > 0 || this->input_grad_;
      Matrix<T>& din = l == 0 ? dx_ : dmid_[(l - 1) % 2];  // (B*T, in); dmid_[l % 2] is dY
      din.resize(need_din ? B * T_ : 0, in.cols());
      const ConstRef<T> dY = l == L_ - 1 ? dy : ConstRef<T>(dmid_[l % 2]);  // (B*T, D*H)
      for (Index d = 0; d < D_; ++d) {
        Cell& c = cell(l, d);
        const Index r0 = (l * D_ + d) * B;
        for (Index k = 0; k < S; ++k) {
          if (dsn[k]->size() != 0) ds_[k] = dsn[k]->middleRows(r0, B); else ds_[k].setZero();
        }
        for (Index i = T_ - 1; i >= 0; --i) {
          const StepAt at{T_, d == 0 ? i : T_ - 1 - i};
          dsnew_[0] = ds_[0] + step_rows<T>(dY, T_, at.t, d * H, H);  // y_t = h~_t
          for (Index k = 1; k < S; ++k) dsnew_[k] = ds_[k];
          if (masked_) {  // d(M) by select: padded rows send nothing into the step, ds passes
            for (Index b = 0; b < B; ++b) {
              for (Index k = 0; k < S; ++k) {
                if (mask_(at.t, b) == T(0)) dsnew_[k].row(b).setZero();
                else ds_[k].row(b).setZero();
              }
            }
          }
          auto dgh = at(DGH);
          auto dgi = at(DGI_);
          Gates::backward(c, at, dsnew_, dgi, dgh, dsz_);  // d(G)
          if (masked_) {  // padded rows of d(G) exactly 0 (not 0 * a gate): none reach a GEMM
            for (Index b = 0; b < B; ++b) {
              if (mask_(at.t, b) != T(0)) continue;
              dgi.row(b).setZero();
              if constexpr (!Gates::kSummed) dgh.row(b).setZero();
              for (Index k = 0; k < S; ++k) dsz_[k].row(b).setZero();
            }
          }
          for (Index k = 0; k < S; ++k) {
            if (!Gates::kDirect[k]) continue;
            if (masked_) ds_[k] += dsz_[k]; else ds_[k] = dsz_[k];  // d(G) wrt s_{t-1}
          }
          if (masked_ || Gates::kDirect[0]) ds_[0].noalias() += dgh * c.w_hh;  // d(2) wrt h
          else ds_[0].noalias() = dgh * c.w_hh;                                 // (B, G*H)(G*H, H)
        }
        for (Index k = 0; k < S; ++k) ds0_[k].middleRows(r0, B) = ds_[k];
        c.accumulate_grads(DGI_, DGH, in, c.SP[0]);     // d(1), d(2) wrt the weights, all steps
        if (need_din) {                                 // d(1) wrt input, summed over directions
          detail::gemm<T>(din, DGI_, detail::Op::N, c.w_ih, detail::Op::N, T(d == 0 ? 0 : 1));
        }
      }
    }
  }

  const Matrix<T>& output() const { return out_.back(); }  // (B*T, D*H)

  Matrix<T> sn_[S];   // (L*D*B, H) h_n (, c_n)
  Matrix<T> ds0_[S];  // (L*D*B, H) dh0 (, dc0)
  Matrix<T> dx_;      // (B*T, I)

 private:
  Cell& cell(Index l, Index d) { return cells_[static_cast<std::size_t>(l * D_ + d)]; }

  const char* module_;  // "GRU", "LSTM": name() and every message
  Index I_, H_, L_, D_;
  bool has_bias_;
  bool masked_ = false;
  SeqShape shape_;
  std::vector<Cell> cells_;     // l*D + d
  std::vector<Matrix<T>> out_;  // per layer (B*T, D*H)
  Matrix<T> x_;                 // (B*T, I)
  Matrix<T> mask_;              // (T, B), empty without lengths
  Matrix<T> s_[S], snew_[S];    // (B, H) forward scratch: running states, s~ (snew_[0] unused)
  Matrix<T> gh_;                // (B, G*H) (2), unless kSummed
  Matrix<T> ds_[S], dsnew_[S], dsz_[S];  // (B, H) backward scratch
  Matrix<T> DGI_, DGH_;         // (B*T, G*H) d(1), d(2) of every step; DGH_ unused when kSummed
  Matrix<T> dmid_[2];           // (B*T, D*H) gradients between layers, ping-pong
};

}  // namespace detail
}  // namespace heed
