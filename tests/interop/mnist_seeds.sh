#!/usr/bin/env bash
# The article's recipe over seeds 0-4 (or the seeds given), heed against PyTorch, one thread
# each, one run at a time: every run's test accuracy and both means. Not a ctest (about 5 min
# in all on this machine's cores).
# Usage: tests/interop/mnist_seeds.sh MNIST_MLP MNIST_DIR [SEEDS...]
#   e.g. tests/interop/mnist_seeds.sh build/mnist/examples/mnist_mlp data/mnist
# (MNIST_MLP from the release-portable preset; PyTorch is /usr/bin/python3's torch.)
set -euo pipefail
bin=$1 data=$2
shift 2
seeds=("$@")
[[ ${#seeds[@]} -gt 0 ]] || seeds=(0 1 2 3 4)
here=$(dirname "$0")
acc() { grep -oP '^Accuracy: \K[0-9.]+' ; }
printf "seed  heed     PyTorch\n"
h_all=() t_all=()
for s in "${seeds[@]}"; do
  h=$("$bin" --data "$data" --seed "$s" --threads 1 | acc)
  t=$(/usr/bin/python3 "$here/mnist_article.py" "$data" --seed "$s" 2>/dev/null | acc)
  printf "%4s  %6s%%  %6s%%\n" "$s" "$h" "$t"
  h_all+=("$h") t_all+=("$t")
done
mean() { printf "%s\n" "$@" | awk '{ s += $1; q += $1 * $1; n++ } END { m = s / n; printf "%.2f%% (sd %.2f)", m, sqrt((q - n * m * m) / (n > 1 ? n - 1 : 1)) }'; }
printf "mean  heed %s, PyTorch %s\n" "$(mean "${h_all[@]}")" "$(mean "${t_all[@]}")"
