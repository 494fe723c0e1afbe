#pragma once
#include "activation.hpp"

namespace heed {

// Identity(x) = x. The default policy of Dense (a plain Linear layer).
template <typename T>
class Identity : public Activation<T, Identity<T>> {
 public:
  static constexpr bool kNeedsInput = false;
  static constexpr const char* kName = "Identity";
  template <class X, class Y>
  void apply(const X& x, Y& y) const { y = x; }
  template <class X, class Y, class G, class D>
  void grad(const X&, const Y&, const G& dy, D& dx) const { dx = dy; }
};

}  // namespace heed
