#!/usr/bin/env bash
# Checkpoint/resume of examples/mnist_mlp on the real MNIST files: a run killed during its last
# epoch and resumed with --resume must print the same losses, accuracy and confusion matrix as
# an uninterrupted run (default recipe, one thread). Exit 77 (skipped) without MNIST.
# Usage: mnist_resume.sh MNIST_MLP DATA_DIR WORK_DIR [EPOCHS [EXTRA FLAGS...]]
# (e.g. EXTRA = --recipe improved checks dropout, schedule, augmentation and early stopping)
set -euo pipefail
bin=$1 data=$2 work=$3 epochs=${4:-2}
if [[ ! -f $data/train-images-idx3-ubyte ]]; then
  echo "skipped: no MNIST in $data (run scripts/fetch-mnist.sh)"
  exit 77
fi
rm -rf -- "$work"
mkdir -p -- "$work"
common=(--data "$data" --epochs "$epochs" --threads 1 --seed 3 "${@:5}")
# What a run prints that must not depend on interruption: losses (not times), accuracy, metrics.
stable() { sed -E -e 's/, Time: [0-9.]+ s//' -e '/^(MNIST:|Training time:|Resumed from)/d' "$1"; }

"$bin" "${common[@]}" --save "$work/full.heed" >"$work/full.log"

# The interrupted run: killed once the next-to-last epoch is reported (its checkpoint is written
# before that line) and some of the last epoch has run.
"$bin" "${common[@]}" --save "$work/cut.heed" >"$work/cut.log" 2>&1 &
pid=$!
for _ in $(seq 1 1200); do
  grep -q "^Epoch \[$((epochs - 1))/$epochs\]" "$work/cut.log" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
sleep 0.3
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if grep -q "^Epoch \[$epochs/$epochs\]" "$work/cut.log"; then
  echo "FAIL: the run finished its last epoch before it could be killed"; exit 1
fi
grep -q "^Epoch \[$((epochs - 1))/$epochs\]" "$work/cut.log" ||
  { echo "FAIL: the run to interrupt did not complete epoch $((epochs - 1))"; cat "$work/cut.log"; exit 1; }

"$bin" "${common[@]}" --resume "$work/cut.heed" >"$work/resumed.log"
grep -q "^Resumed from .* after epoch $((epochs - 1))$" "$work/resumed.log" ||
  { echo "FAIL: no resume message"; cat "$work/resumed.log"; exit 1; }

# Interrupted epochs from the first log + everything from the resumed one = the full run.
if ! diff <( (grep '^Epoch' "$work/cut.log"; cat "$work/resumed.log") | stable /dev/stdin) \
          <(stable "$work/full.log"); then
  echo "FAIL: the resumed run differs from the uninterrupted one"; exit 1
fi
grep '^Accuracy' "$work/full.log"
echo "resume: identical to the uninterrupted run"
