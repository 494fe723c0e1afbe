#!/usr/bin/env bash
# Checkpoint/resume of examples/mnist_mlp on the real MNIST files (resume.sh: a run killed
# during its last epoch and resumed prints the same losses, accuracy and confusion matrix as an
# uninterrupted run). Exit 77 (skipped) without MNIST.
# Usage: mnist_resume.sh MNIST_MLP DATA_DIR WORK_DIR [EPOCHS [EXTRA FLAGS...]]
# (e.g. EXTRA = --recipe improved checks dropout, schedule, augmentation and early stopping)
set -euo pipefail
bin=$1 data=$2 work=$3 epochs=${4:-2}
if [[ ! -f $data/train-images-idx3-ubyte ]]; then
  echo "skipped: no MNIST in $data (run scripts/fetch-mnist.sh)"
  exit 77
fi
exec "$(dirname "$0")/resume.sh" "$bin" "$work" "$epochs" --data "$data" --seed 3 "${@:5}"
