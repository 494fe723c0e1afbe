#pragma once
// SelfAttention<T>: MultiheadAttention over one input, y = mha(x, x, x), as a Module<T> so it
// fits in a Sequential. A Module sees only x (B*T, E), so the sequence length T is fixed at
// construction and B = rows / T. backward sums the three input gradients:
//   dx = dquery + dkey + dvalue     (x feeds all three projections)
// Masks and flags for every forward are set through args() (need_weights defaults to false,
// so the fused kernel runs unless dropout is active in training). Parameter names are
// MultiheadAttention's ("in_proj_weight", ..., "out_proj.bias").
#include <string>
#include <vector>

#include "../core/module.hpp"
#include "multihead_attention.hpp"

namespace heed {

template <typename T>
class SelfAttention : public Module<T> {
 public:
  SelfAttention(Index embed_dim, Index num_heads, Index seq_len,
                MultiheadAttentionOptions opts = {}, Generator& gen = default_generator())
      : mha_(embed_dim, num_heads, opts, gen), T_(seq_len) {
    detail::require(seq_len > 0, "SelfAttention",
                    "seq_len must be positive, got " + std::to_string(seq_len));
    args_.need_weights = false;
  }

  // forward      x (B*T, E) -> y (B*T, E)
  const Matrix<T>& forward(const ConstRef<T>& x) override {
    detail::check_shape("SelfAttention", "input", x, -1, mha_.embed_dim());
    if (x.rows() == 0 || x.rows() % T_ != 0)
      throw ShapeError("SelfAttention: input rows " + std::to_string(x.rows()) +
                       " not a positive multiple of seq_len " + std::to_string(T_));
    return mha_.forward(x, x.rows() / T_, args_).output;
  }

  // backward     dy (B*T, E) -> dx (B*T, E)
  const Matrix<T>& backward(const ConstRef<T>& dy) override {
    mha_.requires_input_grad(this->input_grad_);
    auto g = mha_.backward(dy);
    dx_.resize(g.dquery.rows(), g.dquery.cols());
    if (dx_.size() != 0) dx_ = g.dquery + g.dkey + g.dvalue;  // x was query, key and value
    return dx_;
  }

  // The MultiheadAttention is a transparent child: its tensors have the SelfAttention's own
  // names ("in_proj_weight", ..., "out_proj.bias"), so it loads a PyTorch
  // MultiheadAttention's state_dict; its mode and dropout stream are the module's too.
  Children<T> children() override { return {{"", &mha_}}; }
  std::string name() const override { return "SelfAttention"; }
  std::string extra_repr() const override {
    return mha_.extra_repr() + ", seq_len=" + std::to_string(T_);
  }

  // Masks and flags used by every forward; mask matrices must outlive the backward.
  MultiheadAttentionArgs<T>& args() { return args_; }
  // The weights of the last forward if args().need_weights was set, else empty.
  const Matrix<T>& weights() const { return mha_.weights(); }
  MultiheadAttention<T>& mha() { return mha_; }
  Index seq_len() const { return T_; }

 private:
  MultiheadAttention<T> mha_;
  Index T_;
  MultiheadAttentionArgs<T> args_;
  Matrix<T> dx_;  // (B*T, E)
};

}  // namespace heed
