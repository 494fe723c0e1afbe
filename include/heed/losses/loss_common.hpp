#pragma once
// Pieces shared by every loss (cross_entropy.hpp, mse.hpp, bce_with_logits.hpp), so that all of
// them refuse the same misuse with the same messages.
#include <string>

#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace heed::detail {

// ShapeError "<loss>: input is empty (0, 3)". The mean over no elements is 0/0 (PyTorch gives
// NaN); returning 0 instead would hide an empty batch or an empty data split.
template <typename M>
void check_nonempty(const char* loss, const M& input) {
  if (input.size() == 0)
    throw ShapeError(std::string(loss) + ": input is empty " + shape_str(input.rows(), input.cols()));
}

}  // namespace heed::detail
