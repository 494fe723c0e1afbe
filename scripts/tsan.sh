#!/usr/bin/env bash
# Builds the test suite with clang and ThreadSanitizer, OpenMP on (preset tsan), and runs it
# with two OpenMP threads; any race report fails the run. Installs the clang toolchain on top of
# the normal build's packages when missing. libomp's own false positives are handled by Archer
# and tests/tsan.supp (see the comments there).
# Usage: scripts/tsan.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
# clang-14: the compiler; libclang-rt-14-dev: TSan's runtime; libomp-14-dev: LLVM's OpenMP
# runtime and Archer (libarcher.so), which tells TSan about OpenMP's synchronisation.
pkgs=(clang-14 libclang-rt-14-dev libomp-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "tsan: installing ${missing[*]}"
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake --preset tsan >/dev/null
cmake --build --preset tsan -j"$(nproc)"
ctest --preset tsan -j"$(nproc)" "$@"
