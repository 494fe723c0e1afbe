#!/usr/bin/env bash
# Builds everything (library tests, examples, benchmarks) and runs the test suite.
# Installs missing Debian packages first, and fetches MNIST so the tests on real data (the
# reader on the real files, kill-and-resume of the example) run; without network they are
# skipped, not failed. With a BLAS found (core/gemm.hpp) the suite runs twice: on the BLAS,
# then on Eigen's products. Usage: scripts/test.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/fetch-mnist.sh data/mnist || echo "heed: MNIST not available; tests on real data will be skipped"
cmake --preset release-portable >/dev/null
cmake --build --preset release-portable -j"$(nproc)"
ctest --test-dir build/release-portable --output-on-failure -j"$(nproc)" "$@"
# With a BLAS compiled in, the products above went through it (core/gemm.hpp's default for a
# build without AVX-512); the whole suite runs again on Eigen's own products.
if grep -q '^HEED_WITH_BLAS:INTERNAL=ON' build/release-portable/CMakeCache.txt; then
  echo "heed: the tests again with HEED_GEMM=eigen"
  HEED_GEMM=eigen ctest --test-dir build/release-portable --output-on-failure -j"$(nproc)" "$@"
fi
