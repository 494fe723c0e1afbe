#pragma once
// error_of<E>(f): runs f, requires it to throw E (any heed::Error by default) and returns the
// message; the test fails when f throws nothing or another type. Shared by the test folders.
#include <doctest/doctest.h>

#include <exception>
#include <heed/core/error.hpp>
#include <string>

namespace heed_test {

template <class E = heed::Error, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("wrong exception type: " << e.what());
    return {};
  }
  FAIL("no exception thrown");
  return {};
}

}  // namespace heed_test
