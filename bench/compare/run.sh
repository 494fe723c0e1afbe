#!/usr/bin/env bash
# heed vs PyTorch on this machine, one command:
#   bench/compare/run.sh [--quick]
# (a) builds heed's benchmarks and the MNIST example in Release (preset `release`);
# (b) trains the article's MNIST classifier end to end (10 epochs; --quick: 1) as a whole process
#     under /usr/bin/time -v, three ways: heed's examples/mnist_mlp --threads 2, PyTorch as the
#     article writes it (torchvision datasets + DataLoader), PyTorch with pre-loaded tensors;
#     then heed's epoch against the epoch's matrix products alone (bench_mnist_epoch); and
#     examples/mnist_cnn (both models) against its PyTorch twin, bench/compare/cnn.sh (2 epochs;
#     --quick: 1; PyTorch with oneDNN);
# (c) runs the attention micro-benchmarks at the same shapes on both sides (batch 8, 8 heads,
#     head dim 64, T = 128 ... 4096; --quick: 128, 256), float32, 2 threads, medians; and
#     TransformerEncoderLayer(512, 8, ff 2048) at batch 8, T = 128 ... 512 (--quick: 128), 1 thread;
# (e) the libtorch (PyTorch C++ API) side, bench/compare/libtorch.sh: installs libtorch-dev if
#     missing, builds bench/compare/libtorch into build/libtorch (-j1), runs the MNIST MLP, the
#     attention and transformer cases at 1 and 2 threads and the CNN at 2, then the MNIST runs
#     with one core kept busy (heed and libtorch); if it cannot be built the report goes on
#     without it;
# (d) prints one table and writes bench/compare/results.md and docs/compare_attention.svg.
# Logs and raw JSON go to build/release/compare/. Needs /usr/bin/python3 with torch and
# torchvision (apt-get install python3-torchvision), and data/mnist (scripts/mnist.sh fetches it).
# Environment: HEED_BENCH_MEM_MIB caps the memory the plain attention paths may use (both sides;
# default 3/4 of MemAvailable), PYTHON overrides /usr/bin/python3.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="${PYTHON:-/usr/bin/python3}"
quick=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
if [[ $quick == 1 ]]; then
  epochs=1 lens="128,256" max_len=256 reps=1 torch_reps=3 min_time=0.2 tr_lens="128" tr_max_len=128
  cnn_epochs=1
else
  epochs=10 lens="128,256,512,1024,2048,4096" max_len=4096 reps=3 torch_reps=5 min_time=1.0
  tr_lens="128,256,512" tr_max_len=512 cnn_epochs=2
fi
data="$root/data/mnist"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  [[ -f "$data/$f" ]] || { echo "run.sh: $data/$f missing (run scripts/mnist.sh)" >&2; exit 1; }
done
"$py" -c 'import torch, torchvision' || { echo "run.sh: $py needs torch and torchvision" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "run.sh: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }

out="$root/build/release/compare"
export OMP_NUM_THREADS=2
# PyTorch's attention at T = 4096 forward + backward peaks at ~13 GiB: allow 3/4 of what is free.
budget="${HEED_BENCH_MEM_MIB:-$(awk '/^MemAvailable:/ {printf "%d", $2 / 1024 * 3 / 4}' /proc/meminfo)}"
export HEED_BENCH_MEM_MIB="$budget"

echo "== (a) build (Release, preset release)"
cd "$root"
cmake --preset release >/dev/null
benches=$(cd bench && ls bench_*.cpp | sed 's/\.cpp$//')
# shellcheck disable=SC2086
cmake --build --preset release --target $benches mnist_mlp mnist_cnn
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.log "$out"/*.time "$out"/*.err "$out"/libtorch_load.txt
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "load=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
  echo "nproc=$(nproc)"
  echo "torch=$("$py" -c 'import torch; print(torch.__version__)')"
  echo "epochs=$epochs"
  echo "quick=$quick"
} >"$out/meta.txt"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# torchvision's MNIST(root) reads root/MNIST/raw/<files>: link them, so nothing downloads.
tv_root="$(mktemp -d)"
trap 'rm -rf "$tv_root"' EXIT
mkdir -p "$tv_root/MNIST/raw"
for f in "$data"/*-ubyte; do ln -s "$f" "$tv_root/MNIST/raw/$(basename "$f")"; done

run_timed() {  # name, command...
  local name=$1; shift
  echo "== (b) MNIST: $name"
  if /usr/bin/time -v -o "$out/mnist_$name.time" "$@" >"$out/mnist_$name.log" 2>"$out/mnist_$name.err"; then
    :
  else
    echo "   FAILED (see $out/mnist_$name.err)"
  fi
  grep -E 'Accuracy|Training time' "$out/mnist_$name.log" | sed 's/^/   /' || true
  grep -E 'Elapsed|Maximum resident' "$out/mnist_$name.time" | sed 's/^\s*/   /' || true
}
run_timed heed "$root/build/release/examples/mnist_mlp" --data "$data" --epochs "$epochs" --threads 2
# heed at 1 thread too: issue #15 compares each side at its best thread count (libtorch.sh runs 1 and 2)
run_timed heed_t1 "$root/build/release/examples/mnist_mlp" --data "$data" --epochs "$epochs" --threads 1
run_timed torch_article "$py" "$here/mnist_torch_article.py" "$tv_root" "$epochs"
run_timed torch_preloaded "$py" "$here/mnist_torch_preloaded.py" "$data" "$epochs"
echo "== (b) MNIST conv net (examples/mnist_cnn, both models) against PyTorch with oneDNN"
"$here/cnn.sh" "$cnn_epochs" "$out"

echo "== (b) the FMA peak and heed's GEMM backends (bench_gemm)"
"$root/build/release/bench/bench_gemm" --benchmark_out="$out/heed_peak.json" --benchmark_out_format=json
echo "== (b) MNIST epoch against its bound (bench_mnist_epoch, 1 and 2 threads)"
"$root/build/release/bench/bench_mnist_epoch" --benchmark_repetitions="$reps" \
  --benchmark_report_aggregates_only=true \
  --benchmark_out="$out/heed_mnist_epoch.json" --benchmark_out_format=json

echo "== (c) attention: heed (bench_attention), T = $lens"
filter="^((attention/(scaled|fused))|(mha/(plain|fused))|gemm_bound)/(fwd|fwdbwd)/T:[0-9]+"
[[ $quick == 1 ]] && skip16k=--skip_16k || { skip16k=; filter="$filter|^fused_single_head_16k"; }
# shellcheck disable=SC2086
"$root/build/release/bench/bench_attention" --threads=2 --max_len="$max_len" $skip16k \
  --benchmark_filter="$filter" --benchmark_min_time="$min_time" \
  --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
  --benchmark_out="$out/heed_attention.json" --benchmark_out_format=json
echo "== (c) attention: PyTorch, T = $lens"
"$py" "$here/attention_torch.py" --lens "$lens" --reps "$torch_reps" --min-time "$min_time" \
  --threads 2 --mem-budget-mib "$budget" --out "$out/torch_attention.json"

echo "== (c) TransformerEncoderLayer: heed (bench_transformer), 1 thread, T = $tr_lens"
"$root/build/release/bench/bench_transformer" --threads=1 --max_len="$tr_max_len" \
  --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
  --benchmark_out="$out/heed_transformer.json" --benchmark_out_format=json
echo "== (c) TransformerEncoderLayer: PyTorch, 1 thread, T = $tr_lens"
"$py" "$here/transformer_torch.py" --lens "$tr_lens" --reps "$torch_reps" --min-time "$min_time" \
  --threads 1 --out "$out/torch_transformer.json"

echo "== (e) libtorch C++ (bench/compare/libtorch.sh), same shapes, 1 and 2 threads"
lt_quick=(); [[ $quick == 1 ]] && lt_quick=(--quick)
if "$here/libtorch.sh" build >"$out/libtorch_build.log" 2>&1; then
  HEED_LIBTORCH_LENS="$lens" HEED_LIBTORCH_TR_LENS="$tr_lens" "$here/libtorch.sh" run "$out" "${lt_quick[@]}" ||
    echo "run.sh: libtorch.sh run failed; the report shows what it measured"
  "$here/libtorch.sh" contention "$out" ||
    echo "run.sh: libtorch.sh contention failed; the report shows what it measured"
else
  echo "run.sh: libtorch side skipped: libtorch-dev could not be installed or the programs not built"
  tail -n 5 "$out/libtorch_build.log" | sed 's/^/   /'
fi

echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/meta.txt"
echo "== (d) report"
"$py" "$here/report.py" "$out" "$here/results.md" "$root/docs/compare_attention.svg"
echo "wrote $here/results.md and $root/docs/compare_attention.svg (raw outputs in $out)"
