#pragma once
// Pieces shared by every loss (cross_entropy.hpp, mse.hpp, bce_with_logits.hpp), so that all of
// them refuse the same misuse with the same messages: an empty batch, and backward() without a
// completed forward().
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

// The dL/dinput buffer a loss's backward() returns, readable only once a forward has completed.
// Before that it is empty, or half-written by a forward that threw, so get() throws ValueError
// rather than hand out a gradient that belongs to no loss value.
template <typename T>
class LossGrad {
 public:
  explicit LossGrad(const char* loss) : loss_(loss) {}

  // First statement of forward(): the buffer to fill, invalid until end().
  Matrix<T>& begin() {
    state_ = State::Pending;
    return grad_;
  }
  void end() { state_ = State::Ready; }

  const Matrix<T>& get() const {
    if (state_ == State::None)
      throw ValueError(std::string(loss_) + ": backward called before forward");
    if (state_ == State::Pending)
      throw ValueError(std::string(loss_) + ": backward called after a forward that threw");
    return grad_;
  }

 private:
  enum class State { None, Pending, Ready };
  const char* loss_;
  Matrix<T> grad_;
  State state_ = State::None;
};

}  // namespace heed::detail
