#!/usr/bin/env bash
# examples/mnist_mlp prints the same losses, accuracy and confusion matrix whatever --threads
# (heed::DataParallel with a fixed --shards): one epoch on the real MNIST files with 1 and with
# 2 threads, the outputs compared with the times and the thread count taken out. Exit 77
# (skipped) without MNIST. Usage: threads.sh MNIST_MLP DATA_DIR
set -euo pipefail
bin=$1 data=$2
if [[ ! -f $data/train-images-idx3-ubyte ]]; then
  echo "skipped: no MNIST in $data (run scripts/fetch-mnist.sh)"
  exit 77
fi
stable() { sed -E -e 's/[0-9]+(\.[0-9]+)? s\b/T s/g' -e 's/[0-9]+ thread\(s\)/N thread(s)/'; }
one=$("$bin" --data "$data" --epochs 1 --threads 1 | stable)
two=$("$bin" --data "$data" --epochs 1 --threads 2 | stable)
if [[ "$one" != "$two" ]]; then
  echo "FAIL: --threads 1 and --threads 2 print different numbers"
  diff <(echo "$one") <(echo "$two") || true
  exit 1
fi
grep -E '^(Epoch|Accuracy)' <<<"$one"
echo "same output with 1 and 2 threads"
