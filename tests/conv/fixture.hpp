#pragma once
// The PyTorch fixtures conv_reference.py writes (tests/conv/data/<config>_{f32,f64}.safetensors),
// as the tests of conv/ and attention/ read them: the file's path, its "__" entries skipped when
// loading the module's weights, and compare(), which checks one result against the file's
// "__output__.<key>" and keeps the largest difference per kind for print_worst().
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <type_traits>
#include <heed/heed.hpp>

namespace heed_test::fixture {

// Relative to max(1, |want|): float32 rounding, and double's to the last bits.
template <typename T>
constexpr double kTol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
template <typename T>
constexpr const char* kSuffix = std::is_same_v<T, float> ? "f32" : "f64";

// The fixture of `config` in T's precision; "" when there is none (float32: some configs only).
template <typename T>
std::string path(const std::string& config) {
  const std::string p = std::string(HEED_TEST_SOURCE_DIR) + "/conv/data/" + config + "_" + kSuffix<T> + ".safetensors";
  return std::filesystem::exists(p) ? p : std::string();
}

// load_weights's rename: the inputs and outputs ("__input__.x", "__output__.y") are not weights.
inline std::string skip_reserved(const std::string& k) { return k.starts_with("__") ? std::string() : k; }

inline std::map<std::string, double>& worst() {
  static std::map<std::string, double> w;
  return w;
}

// got against "__output__.<key>" (same size; reshaped row-major to the file's matrix shape, so a
// (1, C*k*k) weight gradient meets the file's (C, k*k)), within kTol<T> * max(1, |want|).
template <typename T>
void compare(const heed::io::TensorFile& f, const std::string& key, const heed::Matrix<T>& got) {
  const heed::Matrix<T> want = f.matrix<T>("__output__." + key);
  CAPTURE(key);
  REQUIRE(got.size() == want.size());
  const heed::Matrix<T> g = got.template reshaped<Eigen::RowMajor>(want.rows(), want.cols());
  REQUIRE(want.allFinite());
  REQUIRE(g.allFinite());  // maxCoeff below may skip a NaN
  const double diff = static_cast<double>((g - want).cwiseAbs().maxCoeff());
  const double scale = std::max(1.0, static_cast<double>(want.cwiseAbs().maxCoeff()));
  CHECK(diff <= kTol<T> * scale);
  double& w = worst()[std::string(kSuffix<T>) + " " + key];
  w = std::max(w, diff);
}

// One MESSAGE per kind compared so far: the largest |heed - PyTorch|.
inline void print_worst(const std::string& what) {
  for (const auto& kv : worst()) MESSAGE(what << " " << kv.first << ": max |heed - PyTorch| = " << kv.second);
  worst().clear();
}

}  // namespace heed_test::fixture
