#!/usr/bin/env bash
# Builds heed's libFuzzer targets (tests/fuzz/fuzz_*.cpp) with clang and AddressSanitizer +
# UndefinedBehaviorSanitizer, then runs each for a bounded time on a copy of its seed corpus
# (tests/fuzz/corpus/<target>/). Fails on any crash, leak, timeout or sanitizer report; the
# reproducer and the log are kept in build-fuzz/.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]   (targets run in turn)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true

# The fuzzing toolchain, on top of the normal build's packages (scripts/deps.sh).
scripts/deps.sh clang-14 libclang-rt-14-dev
cxx=$(command -v clang++-14 || command -v clang++)

out=build-fuzz
mkdir -p "$out"
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in tests/fuzz/fuzz_*.cpp; do t=$(basename "$f" .cpp); targets+=("${t#fuzz_}"); done
fi

flags=(-std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=all -Iinclude -I/usr/include/eigen3)
for t in "${targets[@]}"; do
  src=tests/fuzz/fuzz_$t.cpp
  [[ -f $src ]] || { echo "fuzz: no target $src"; exit 2; }
  if [[ ! -x $out/fuzz_$t || $src -nt $out/fuzz_$t || -n $(find include tests/fuzz/fuzz_common.hpp -newer "$out/fuzz_$t" -print -quit) ]]; then
    echo "fuzz: building fuzz_$t"
    "$cxx" "${flags[@]}" "$src" -o "$out/fuzz_$t"
  fi
done

status=0
for t in "${targets[@]}"; do
  corpus=$out/corpus/$t
  mkdir -p "$corpus" "$out/artifacts/$t"
  cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  log=$out/fuzz_$t.log
  echo "fuzz: $t for ${secs} s (log $log)"
  # Leak detection is on (ASan's default); -timeout catches hangs, -rss_limit_mb blow-ups.
  if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     "$out/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$out/artifacts/$t/" "$corpus" >"$log" 2>&1; then
    execs=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$log" || echo '?')
    cov=$(grep -oP '^#[0-9]+\s+DONE\s+cov: \K[0-9]+' "$log" || echo '?')
    echo "fuzz: $t ok: $execs executions, coverage $cov, no crash"
  else
    echo "fuzz: $t FAILED, see $log and $out/artifacts/$t/"
    grep -m1 -E 'ERROR: |runtime error|SUMMARY' "$log" || tail -20 "$log"
    status=1
  fi
done
exit $status
