#pragma once
// Embedding: a lookup table of num_embeddings vectors of size embedding_dim, as
// torch.nn.Embedding.
//
//   y_i = W[ids_i]                    ids (N) -> y (N, D)                              (1)
//   dW[ids_i] += dy_i                 repeated ids accumulate; W[padding_idx] gets none
//
// The input is integer ids, not a matrix, so Embedding is a ModuleBase<T> (parameters,
// zero_grad, train/eval, name) rather than a single-input Module<T>. The gradient is
// dense in storage but sparse in work: backward touches only the rows it was given.
// For sequences, flatten (B, T) ids row-major (sample b's step t at b*T + t) and the output is
// the (B*T, D) sequence layout the recurrent layers read.
#include <string>
#include <vector>

#include "../core/module.hpp"
#include "../core/random.hpp"

namespace heed {

template <typename T>
class Embedding : public ModuleBase<T> {
 public:
  // W ~ N(0, 1) like PyTorch, drawn from `gen` row by row; the padding row is then zeroed.
  // padding_idx in [0, num_embeddings), or -1 for none (PyTorch's None; heed does not
  // accept PyTorch's negative indices counted from the end).
  Embedding(Index num_embeddings, Index embedding_dim, Index padding_idx = -1,
            Generator& gen = default_generator())
      : N_(num_embeddings), D_(embedding_dim), pad_(padding_idx) {
    detail::require(num_embeddings > 0 && embedding_dim > 0, "Embedding",
                    "num_embeddings and embedding_dim must be positive, got " +
                        std::to_string(num_embeddings) + " and " + std::to_string(embedding_dim));
    detail::require(padding_idx >= -1 && padding_idx < num_embeddings, "Embedding",
                    "padding_idx must be -1 (none) or in [0, " + std::to_string(num_embeddings) +
                        "), got " + std::to_string(padding_idx));
    W_.resize(N_, D_);  // (N, D)
    for (Index i = 0; i < W_.size(); ++i) W_.data()[i] = static_cast<T>(gen.normal());
    if (pad_ >= 0) W_.row(pad_).setZero();
    dW_ = Matrix<T>::Zero(N_, D_);
  }

  // forward                                                    ids: (N) -> y: (N, D)
  const Matrix<T>& forward(const LabelsRef& ids) {
    for (Index i = 0; i < ids.size(); ++i)
      if (ids(i) < 0 || ids(i) >= N_)
        throw ValueError("Embedding: index " + std::to_string(ids(i)) + " at position " +
                         std::to_string(i) + " out of range [0, " + std::to_string(N_) + ")");
    ids_ = ids;             // (N) kept for backward
    y_.resize(ids.size(), D_);
    for (Index i = 0; i < ids.size(); ++i) y_.row(i) = W_.row(ids(i));  // (1)
    return y_;
  }

  // backward: accumulates dy's rows into the rows of dW that forward read. dy: (N, D)
  void backward(const ConstRef<T>& dy) {
    detail::check_shape("Embedding", "gradient", dy, ids_.size(), D_);
    for (Index i = 0; i < ids_.size(); ++i)
      if (ids_(i) != pad_) dW_.row(ids_(i)) += dy.row(i);  // d(1) wrt W: scatter-add
  }

  std::vector<Parameter<T>> parameters() override { return {{"weight", &W_, &dW_}}; }
  std::string name() const override { return "Embedding"; }

  Index num_embeddings() const { return N_; }
  Index embedding_dim() const { return D_; }
  Index padding_idx() const { return pad_; }
  Matrix<T>& weight() { return W_; }  // (N, D)

 private:
  Index N_, D_, pad_;
  Matrix<T> W_, dW_;  // (N, D)
  Labels ids_;        // (N)
  Matrix<T> y_;       // (N, D)
};

}  // namespace heed
