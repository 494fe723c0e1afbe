#!/usr/bin/env bash
# Builds the test suite with clang and ThreadSanitizer, OpenMP on (preset tsan), and runs it
# with two OpenMP threads; any race report fails the run. Installs the clang toolchain on top of
# the normal build's packages when missing. libomp's own false positives are handled by Archer
# and tests/tsan.supp (see the comments there).
# Usage: scripts/tsan.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."

# clang-14: the compiler; libclang-rt-14-dev: TSan's runtime; libomp-14-dev: LLVM's OpenMP
# runtime and Archer (libarcher.so), which tells TSan about OpenMP's synchronisation.
scripts/deps.sh clang-14 libclang-rt-14-dev libomp-14-dev

cmake --preset tsan >/dev/null
cmake --build --preset tsan -j"$(nproc)"
ctest --preset tsan -j"$(nproc)" "$@"
