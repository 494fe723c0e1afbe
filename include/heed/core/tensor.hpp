#pragma once
// heed's tensors are Eigen matrices. One layout everywhere, batch-first as in PyTorch:
//   * a batch of feature vectors is a row-major matrix (B, F): row b is sample b, contiguous;
//   * a batch of sequences (B, T, F) is stored as a row-major (B*T, F) matrix, sample b's step t
//     at row b*T + t, exactly PyTorch's memory order for a contiguous (B, T, F) tensor.
// Row-major keeps each sample contiguous (an MNIST image is 784 consecutive values), so a
// mini-batch of consecutive rows is a cheap block and IDX bytes map straight into rows.
#include <Eigen/Core>
#include <cstdint>

namespace heed {

using Index = Eigen::Index;

template <typename T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <typename T>
using RowVector = Eigen::Matrix<T, 1, Eigen::Dynamic>;

template <typename T>
using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

// Read-only view of any row-major matrix or block of rows: inputs are taken by ConstRef so that
// a slice of a larger matrix is passed without a copy.
template <typename T>
using ConstRef = Eigen::Ref<const Matrix<T>>;

// Integer class labels, one per row of a batch.
using Labels = Eigen::Matrix<std::int32_t, Eigen::Dynamic, 1>;
using LabelsRef = Eigen::Ref<const Labels>;

// A batch of token ids, (B, T) row-major: sample b's step t at (b, t), as a (B, T) LongTensor.
using Tokens = Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Boolean masks, row-major like everything else: (B, Tk) key padding, (Tq, Tk) attention masks.
using BoolMatrix = Eigen::Matrix<bool, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

}  // namespace heed
