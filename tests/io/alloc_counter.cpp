// The replaced global operator new/delete behind alloc_counter.hpp. Sizes are taken with
// malloc_usable_size on both sides, so a block counts the same when it is freed.
#include "io/alloc_counter.hpp"

#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <new>

// ThreadSanitizer's runtime defines operator new itself (statically), so under TSan nothing is
// replaced and counting_allocations() says so; the memory bounds are then not checked.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HEED_TEST_NO_COUNTER 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define HEED_TEST_NO_COUNTER 1
#endif

namespace {
std::atomic<std::size_t> g_now{0}, g_peak{0};

[[maybe_unused]] void* counted(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (!p) throw std::bad_alloc();
  const std::size_t now = g_now.fetch_add(malloc_usable_size(p)) + malloc_usable_size(p);
  std::size_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
  return p;
}
[[maybe_unused]] void uncounted(void* p) noexcept {
  if (!p) return;
  g_now.fetch_sub(malloc_usable_size(p));
  std::free(p);
}
}  // namespace

namespace heed_test {
#ifdef HEED_TEST_NO_COUNTER
bool counting_allocations() { return false; }
#else
bool counting_allocations() { return true; }
#endif
std::size_t allocated_now() { return g_now.load(); }
std::size_t allocated_peak() { return g_peak.load(); }
void reset_peak() { g_peak.store(g_now.load()); }
}  // namespace heed_test

#ifndef HEED_TEST_NO_COUNTER
void* operator new(std::size_t n) { return counted(n); }
void* operator new[](std::size_t n) { return counted(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try { return counted(n); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try { return counted(n); } catch (...) { return nullptr; }
}
void operator delete(void* p) noexcept { uncounted(p); }
void operator delete[](void* p) noexcept { uncounted(p); }
void operator delete(void* p, std::size_t) noexcept { uncounted(p); }
void operator delete[](void* p, std::size_t) noexcept { uncounted(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { uncounted(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { uncounted(p); }
#endif  // HEED_TEST_NO_COUNTER
