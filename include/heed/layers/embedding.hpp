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
// For sequences, pass the (B, T) ids (heed::Tokens): the output is the (B*T, D) sequence
// layout the attention and recurrent layers read.
#include <string>
#include <type_traits>
#include <vector>

#include "../core/init.hpp"
#include "../core/module.hpp"
#include "../core/random.hpp"

namespace heed {

template <typename T>
class Embedding : public ModuleBase<T> {
 public:
  // W ~ N(0, 1) like PyTorch (init::normal_ from `gen`); the padding row is then zeroed.
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
    init::normal_(W_, 0.0, 1.0, gen);
    if (pad_ >= 0) W_.row(pad_).setZero();
    dW_ = Matrix<T>::Zero(N_, D_);
  }

  // forward     ids (N) -> y (N, D),  or  ids (B, T) row-major (heed::Tokens) -> y (B*T, D)
  // A (B, T) batch is read row-major, sample b's step t at output row b*T + t: the sequence
  // layout of the attention and recurrent layers. Any integer Eigen vector, matrix or block
  // is accepted without a copy; a column-major matrix with several rows and columns is
  // refused (its order is ambiguous), as is a non-integer scalar type at compile time.
  template <class Derived>
  const Matrix<T>& forward(const Eigen::DenseBase<Derived>& ids) {
    static_assert(std::is_integral_v<typename Derived::Scalar>, "Embedding: ids must be integers");
    const Index rows = ids.rows(), cols = ids.cols();
    if (cols != 1 && rows != 1 && !Derived::IsRowMajor)
      throw ShapeError("Embedding: ids expected (N) or a row-major (B, T) matrix (heed::Tokens), "
                       "got a column-major " + detail::shape_str(rows, cols));
    ids_.resize(rows * cols);  // (N), row-major order
    for (Index r = 0, i = 0; r < rows; ++r)
      for (Index c = 0; c < cols; ++c, ++i) {
        const auto id = ids.derived().coeff(r, c);
        if (id < 0 || id >= N_)
          throw ValueError("Embedding: index " + std::to_string(id) + " at position " +
                           (cols == 1 ? std::to_string(r)
                                      : "(" + std::to_string(r) + ", " + std::to_string(c) + ")") +
                           " out of range [0, " + std::to_string(N_) + ")");
        ids_(i) = static_cast<std::int32_t>(id);
      }
    forwarded_ = true;
    y_.resize(ids_.size(), D_);
    for (Index i = 0; i < ids_.size(); ++i) y_.row(i) = W_.row(ids_(i));  // (1)
    return y_;
  }

  // backward: accumulates dy's rows into the rows of dW that forward read. dy: (N, D)
  void backward(const ConstRef<T>& dy) {
    detail::require_forward(forwarded_, "Embedding");
    detail::check_shape("Embedding", "gradient", dy, ids_.size(), D_);
    for (Index i = 0; i < ids_.size(); ++i)
      if (ids_(i) != pad_) dW_.row(ids_(i)) += dy.row(i);  // d(1) wrt W: scatter-add
  }

  std::vector<Parameter<T>> local_parameters() override { return {{"weight", &W_, &dW_}}; }
  std::string name() const override { return "Embedding"; }
  std::string extra_repr() const override {
    return std::to_string(N_) + ", " + std::to_string(D_) +
           (pad_ >= 0 ? ", padding_idx=" + std::to_string(pad_) : "");
  }

  Index num_embeddings() const { return N_; }
  Index embedding_dim() const { return D_; }
  Index padding_idx() const { return pad_; }
  Matrix<T>& weight() { return W_; }  // (N, D)

 private:
  Index N_, D_, pad_;
  Matrix<T> W_, dW_;  // (N, D)
  Labels ids_;        // (N)
  bool forwarded_ = false;
  Matrix<T> y_;       // (N, D)
};

}  // namespace heed
