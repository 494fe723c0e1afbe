#!/usr/bin/env bash
# heed -> safetensors -> PyTorch round trip. Builds test_interop, runs it with HEED_INTEROP_OUT
# set to a temporary directory (the PyTorch fixtures are checked too, as in ctest), then loads
# every module heed saved there into PyTorch with load_state_dict(strict=True) and compares
# PyTorch's outputs with heed's (tests/interop/roundtrip_check.py).
#
# Needs PyTorch for /usr/bin/python3: Debian's python3-torch (tested with 1.13), which has no
# safetensors module; the script reads the files by hand. Not part of CI (CI has no torch);
# the fixtures it compares against are committed and need no torch to test.
#
# Usage: scripts/interop.sh [build dir, default build/interop]   (HEED_JOBS=1 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/interop}
python=${HEED_PYTHON:-/usr/bin/python3}
"$python" -c "import torch" 2>/dev/null || {
  echo "interop.sh: $python cannot import torch (apt-get install python3-torch)" >&2
  exit 77
}
[ -f "$build/CMakeCache.txt" ] || cmake --preset release-portable -B "$build" >/dev/null
cmake --build "$build" -j"${HEED_JOBS:-1}" --target test_interop
out=$(mktemp -d "${TMPDIR:-/tmp}/heed-interop.XXXXXX")
trap 'rm -rf "$out"' EXIT
HEED_INTEROP_OUT="$out" "$build/tests/test_interop"
"$python" tests/interop/roundtrip_check.py "$out"
