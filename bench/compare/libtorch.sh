#!/usr/bin/env bash
# heed vs libtorch (PyTorch's C++ API, Debian's libtorch-dev 1.13), benchmark-only: the programs
# in bench/compare/libtorch/ are a standalone CMake project, never part of heed's build.
#   bench/compare/libtorch.sh [build]                    install libtorch-dev if missing, build
#   bench/compare/libtorch.sh run OUT_DIR [--quick]      build, then the measurements below
#   bench/compare/libtorch.sh contention OUT_DIR         the MNIST runs with one core kept busy
# run writes into OUT_DIR (bench/compare/report.py reads them):
#   mnist_libtorch_t{1,2}.{log,time}   the article's MNIST MLP, 10 epochs (--quick: 1), whole
#                                      process under /usr/bin/time -v, --threads 1 and 2
#   libtorch_attention_t{1,2}.json     MultiheadAttention and SDPA math, T = 128 ... 4096
#                                      (--quick: 128, 256), memory budget as run.sh's
#   libtorch_transformer_t{1,2}.json   TransformerEncoderLayer fwd / fwd+bwd, T = 128 ... 4096
#                                      (--quick: 128)
#   mnist_libtorch_{cnn,attention}.{log,time}   examples/mnist_cnn's network, 2 threads, 2 epochs
#                                      (--quick: 1); with HEED_LIBTORCH_CNN_T1=1 also at 1 thread
#                                      (mnist_libtorch_{cnn,attention}_t1.*; ~1 min per epoch)
# contention starts one CPU-bound process (`while :; do :; done`, killed on exit) and runs
# mnist_libtorch_load_t{1,2}.* (3 epochs, --threads 1 / 2) and, if build/release/examples/mnist_mlp
# exists, heed's mnist_heed_load_default.* (no --threads: heed's default) and
# mnist_heed_load_t1.* (--threads 1).
# Every step's load average goes to OUT_DIR/libtorch_load.txt ("step load1 load5 load15").
# Environment: HEED_JOBS (build jobs, default 1: each torch TU needs ~1 GiB and ~20 s),
# HEED_BENCH_MEM_MIB (memory budget of the attention / transformer cases; default 3/4 of
# MemAvailable), HEED_LIBTORCH_LENS / HEED_LIBTORCH_TR_LENS (override the lengths).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="$root/build/libtorch"
data="$root/data/mnist"
mode=${1:-build}
[[ $# -gt 0 ]] && shift

usage() { sed -n '2,26p' "$0"; }

install_and_build() {
  if ! dpkg-query -W -f='${Status}' libtorch-dev 2>/dev/null | grep -q "install ok installed"; then
    echo "libtorch.sh: installing libtorch-dev"
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends libtorch-dev >/dev/null
  fi
  cmake -S "$here/libtorch" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j "${HEED_JOBS:-1}"
}

load() { cut -d' ' -f1-3 /proc/loadavg; }

timed_run() {  # OUT_DIR NAME command... : stdout, stderr, /usr/bin/time -v, load
  local out=$1 name=$2; shift 2
  echo "$name $(load)" >>"$out/libtorch_load.txt"
  echo "== libtorch: $name (load $(load))"
  /usr/bin/time -v -o "$out/$name.time" "$@" >"$out/$name.log" 2>"$out/$name.err" ||
    echo "   FAILED (see $out/$name.err)"
  grep -E '^(Accuracy|Training time)' "$out/$name.log" | sed 's/^/   /' || true
  grep -E 'Elapsed|Maximum resident' "$out/$name.time" | sed 's/^\s*/   /' || true
}

need_data() {
  for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [[ -f "$data/$f" ]] || { echo "libtorch.sh: $data/$f missing (run scripts/mnist.sh)" >&2; exit 1; }
  done
  [[ -x /usr/bin/time ]] || { echo "libtorch.sh: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
}

run_all() {  # OUT_DIR [--quick]
  local out=$1 quick=0
  [[ ${2:-} == --quick ]] && quick=1
  mkdir -p "$out"
  local epochs=10 lens="128,256,512,1024,2048,4096" tr_lens="128,256,512,1024,2048,4096"
  local reps=5 min_time=1.0 cnn_epochs=2
  if [[ $quick == 1 ]]; then
    epochs=1 lens="128,256" tr_lens="128" reps=3 min_time=0.2 cnn_epochs=1
  fi
  lens=${HEED_LIBTORCH_LENS:-$lens} tr_lens=${HEED_LIBTORCH_TR_LENS:-$tr_lens}
  # the same budget as run.sh gives both sides of the attention comparison
  local budget="${HEED_BENCH_MEM_MIB:-$(awk '/^MemAvailable:/ {printf "%d", $2 / 1024 * 3 / 4}' /proc/meminfo)}"
  for t in 1 2; do
    timed_run "$out" "mnist_libtorch_t$t" "$build/mnist_mlp_torch" "$data" "$epochs" --threads "$t"
  done
  for t in 1 2; do
    echo "libtorch_attention_t$t $(load)" >>"$out/libtorch_load.txt"
    echo "== libtorch: attention, $t thread(s), T = $lens (load $(load))"
    "$build/attention_torch" --lens "$lens" --reps "$reps" --min-time "$min_time" --threads "$t" \
      --mem-budget-mib "$budget" --out "$out/libtorch_attention_t$t.json" ||
      echo "   FAILED: attention_torch --threads $t"
  done
  for t in 1 2; do
    echo "libtorch_transformer_t$t $(load)" >>"$out/libtorch_load.txt"
    echo "== libtorch: TransformerEncoderLayer, $t thread(s), T = $tr_lens (load $(load))"
    "$build/transformer_torch" --lens "$tr_lens" --reps 3 --min-time "$min_time" --threads "$t" \
      --mem-budget-mib "$budget" --out "$out/libtorch_transformer_t$t.json" ||
      echo "   FAILED: transformer_torch --threads $t"
  done
  local threads=(2)
  [[ ${HEED_LIBTORCH_CNN_T1:-0} == 1 ]] && threads+=(1)
  for model in cnn attention; do
    for t in "${threads[@]}"; do
      local name="mnist_libtorch_$model"
      [[ $t == 1 ]] && name+="_t1"
      timed_run "$out" "$name" "$build/mnist_cnn_torch" "$data" --model "$model" --epochs "$cnn_epochs" --threads "$t"
    done
  done
}

contention() {  # OUT_DIR : one core kept busy by a spinning shell for the whole mode
  local out=$1 epochs=3
  mkdir -p "$out"
  sh -c 'while :; do :; done' &
  spinner=$!  # global: the EXIT trap may run after this function's locals are gone
  trap 'kill "$spinner" 2>/dev/null || true' EXIT
  trap 'exit 130' INT TERM
  sleep 2  # let it be scheduled before the first measurement
  echo "contention: spinner pid $spinner"
  for t in 1 2; do
    timed_run "$out" "mnist_libtorch_load_t$t" "$build/mnist_mlp_torch" "$data" "$epochs" --threads "$t"
  done
  local heed_bin="$root/build/release/examples/mnist_mlp"
  if [[ -x $heed_bin ]]; then
    timed_run "$out" mnist_heed_load_default "$heed_bin" --data "$data" --epochs "$epochs"
    timed_run "$out" mnist_heed_load_t1 "$heed_bin" --data "$data" --epochs "$epochs" --threads 1
  else
    echo "contention: $heed_bin missing, heed's runs skipped (cmake --build --preset release --target mnist_mlp)"
  fi
  kill "$spinner" 2>/dev/null || true
  trap - EXIT
}

case "$mode" in
  build) install_and_build ;;
  run)
    [[ $# -ge 1 ]] || { usage; exit 2; }
    need_data; install_and_build; run_all "$@" ;;
  contention)
    [[ $# -ge 1 ]] || { usage; exit 2; }
    need_data; install_and_build; contention "$1" ;;
  -h|--help) usage ;;
  *) usage; exit 2 ;;
esac
