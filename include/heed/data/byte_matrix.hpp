#pragma once
// Raw 8-bit pixels, one image per row as in an IDX file: (N, rows*cols). Kept as bytes (a
// quarter of float's memory) and converted to T per batch by the DataLoader / normalize().
#include <Eigen/Core>
#include <cstdint>

namespace heed {

using ByteMatrix = Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Read-only view of a ByteMatrix or a block of its rows (e.g. images.middleRows(i, n)).
using ByteMatrixRef = Eigen::Ref<const ByteMatrix>;

}  // namespace heed
