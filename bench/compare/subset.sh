#!/usr/bin/env bash
# A subset of run.sh for issue #15 (~12 min, 2 cores): heed against libtorch on the idle machine
# (MNIST MLP 10 epochs at 1 and 2 threads, the GEMM backends and FMA peak, the MLP epoch
# against its bound, MultiheadAttention fwd+bwd T = 128..1024, TransformerEncoderLayer fwd+bwd
# T = 128..512, one CNN epoch), then MNIST with one core kept busy (libtorch.sh contention),
# then report.py. Needs the release build (bench_gemm bench_mnist_epoch bench_attention
# bench_transformer mnist_mlp mnist_cnn) and bench/compare/libtorch.sh build.
#   bench/compare/subset.sh [OUT_DIR=build/release/compare-subset]
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build/release/compare-subset}
rm -rf "$out"; mkdir -p "$out"
data=data/mnist
load() { cut -d' ' -f1-3 /proc/loadavg; }
timed() { local name=$1; shift; echo "$name $(load)" >> "$out/libtorch_load.txt"; /usr/bin/time -v -o "$out/$name.time" "$@" > "$out/$name.log" 2> "$out/$name.err"; }
{ echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"; echo "load=$(load)"; echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"; echo "nproc=$(nproc)"; echo "epochs=10"; echo "quick=0"; } > "$out/meta.txt"
build/release/bench/bench_gemm --benchmark_out="$out/heed_peak.json" --benchmark_out_format=json > "$out/bench_gemm.txt" 2>&1
build/release/bench/bench_mnist_epoch --benchmark_repetitions=3 --benchmark_report_aggregates_only=true --benchmark_out="$out/heed_mnist_epoch.json" --benchmark_out_format=json > "$out/bench_mnist_epoch.txt" 2>&1
timed mnist_heed build/release/examples/mnist_mlp --data $data --epochs 10 --threads 2
timed mnist_heed_t1 build/release/examples/mnist_mlp --data $data --epochs 10 --threads 1
timed mnist_libtorch_t1 build/libtorch/mnist_mlp_torch $data 10 --threads 1
timed mnist_libtorch_t2 build/libtorch/mnist_mlp_torch $data 10 --threads 2
OMP_NUM_THREADS=2 build/release/bench/bench_attention --threads=2 --max_len=1024 --benchmark_filter='^mha/(plain|fused)/fwdbwd/T:(128|256|512|1024)' --benchmark_min_time=0.5 --benchmark_out="$out/heed_attention.json" --benchmark_out_format=json > "$out/bench_attention.txt" 2>&1
for t in 1 2; do echo "libtorch_attention_t$t $(load)" >> "$out/libtorch_load.txt"; build/libtorch/attention_torch --lens 128,256,512,1024 --reps 3 --min-time 0.5 --threads $t --out "$out/libtorch_attention_t$t.json" > /dev/null 2>&1; done
build/release/bench/bench_transformer --threads=1 --max_len=512 --benchmark_filter='^layer/fwdbwd' --benchmark_out="$out/heed_transformer.json" --benchmark_out_format=json > "$out/bench_transformer.txt" 2>&1
for t in 1 2; do echo "libtorch_transformer_t$t $(load)" >> "$out/libtorch_load.txt"; build/libtorch/transformer_torch --lens 128,256,512 --reps 3 --min-time 0.5 --threads $t --out "$out/libtorch_transformer_t$t.json" > /dev/null 2>&1; done
timed mnist_heed_cnn build/release/examples/mnist_cnn --data $data --model cnn --epochs 1 --threads 2
timed mnist_libtorch_cnn build/libtorch/mnist_cnn_torch $data --model cnn --epochs 1 --threads 2
echo "load_after=$(load)" >> "$out/meta.txt"
bench/compare/libtorch.sh contention "$out" > "$out/contention.txt" 2>&1
/usr/bin/python3 bench/compare/report.py "$out" "$out/results.md" "$out/compare_attention.svg"
echo "wrote $out/results.md"
