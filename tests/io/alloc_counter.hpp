#pragma once
// Counts the bytes held through the global operator new in the test_io executable
// (alloc_counter.cpp replaces it), so tests can bound the memory a load or save takes. Under
// ThreadSanitizer nothing is counted (bytes() is 0), so the bounds are checked by the other builds.
// Eigen's matrices allocate with malloc, not operator new, so a model's own tensors are not
// counted: what is counted is what the reader and writer allocate (file images, maps, strings).
#include <cstddef>

namespace heed_test {

bool counting_allocations();  // false under ThreadSanitizer (its runtime owns operator new)
std::size_t allocated_now();   // bytes currently held through operator new
std::size_t allocated_peak();  // the high-water mark since the last reset_peak()
void reset_peak();

// Peak extra bytes held during a scope: AllocPeak p; ...; p.bytes().
class AllocPeak {
 public:
  AllocPeak() : base_(allocated_now()) { reset_peak(); }
  std::size_t bytes() const { return allocated_peak() - base_; }

 private:
  std::size_t base_;
};

}  // namespace heed_test
