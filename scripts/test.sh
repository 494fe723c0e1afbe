#!/usr/bin/env bash
# Builds everything (library tests, examples, benchmarks) and runs the test suite.
# Installs missing Debian packages first. Usage: scripts/test.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset release-portable >/dev/null
cmake --build --preset release-portable -j"$(nproc)"
ctest --test-dir build/release-portable --output-on-failure -j"$(nproc)" "$@"
