#!/usr/bin/env bash
# examples/mnist_cnn against its PyTorch twin (bench/compare/mnist_cnn_torch.py: the same network,
# recipe and data path; PyTorch 1.13 runs the convolutions through oneDNN), both models, the
# same number of epochs, 2 threads each, one after the other in this script:
#   bench/compare/cnn.sh [EPOCHS=2] [OUT_DIR=build/release/compare]
# Prints each run's mean epoch time and test accuracy and the ratio heed / PyTorch (below 1:
# heed is faster); writes OUT_DIR/mnist_{heed,torch}_{cnn,attention}.{log,time} (stdout and
# /usr/bin/time -v), which bench/compare/report.py also reads. Needs data/mnist and the Release
# build of mnist_cnn (bench/compare/run.sh builds it; or cmake --build --preset release
# --target mnist_cnn).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="${PYTHON:-/usr/bin/python3}"
epochs=${1:-2}
out=${2:-$root/build/release/compare}
mkdir -p "$out"
bin="$root/build/release/examples/mnist_cnn"
[[ -x $bin ]] || { echo "cnn.sh: $bin missing (cmake --build --preset release --target mnist_cnn)" >&2; exit 1; }

mean_epoch() { awk '/^Epoch \[/ { for (i = 1; i <= NF; ++i) if ($i == "Time:") { s += $(i + 1); n++ } }
                    END { if (n) printf "%.2f", s / n; else printf "0" }' "$1"; }  # 0: no epoch ran
for model in cnn attention; do
  for side in heed torch; do
    name="mnist_${side}_${model}"
    if [[ $side == heed ]]; then cmd=("$bin" --data "$root/data/mnist" --model "$model" --epochs "$epochs" --threads 2)
    else cmd=("$py" "$here/mnist_cnn_torch.py" "$root/data/mnist" --model "$model" --epochs "$epochs" --threads 2); fi
    /usr/bin/time -v -o "$out/$name.time" "${cmd[@]}" >"$out/$name.log" 2>"$out/$name.err" ||
      echo "cnn.sh: $name FAILED (see $out/$name.err)"
  done
  h=$(mean_epoch "$out/mnist_heed_${model}.log") t=$(mean_epoch "$out/mnist_torch_${model}.log")
  ha=$(grep -oP '^Accuracy: \K[0-9.]+' "$out/mnist_heed_${model}.log" || echo 0)
  ta=$(grep -oP '^Accuracy: \K[0-9.]+' "$out/mnist_torch_${model}.log" || echo 0)
  hm=$(grep -oP 'Maximum resident set size \(kbytes\): \K[0-9]+' "$out/mnist_heed_${model}.time" || echo 0)
  tm=$(grep -oP 'Maximum resident set size \(kbytes\): \K[0-9]+' "$out/mnist_torch_${model}.time" || echo 0)
  awk -v m="$model" -v e="$epochs" -v h="$h" -v t="$t" -v ha="$ha" -v ta="$ta" -v hm="$hm" -v tm="$tm" 'BEGIN {
    printf "%-9s %d epoch(s): heed %6.2f s/epoch %6.2f%% %5.0f MiB | PyTorch %6.2f s/epoch %6.2f%% %5.0f MiB | epoch time heed / PyTorch %s\n",
           m, e, h, ha, hm / 1024, t, ta, tm / 1024, (h > 0 && t > 0 ? sprintf("%.2f", h / t) : "- (a run failed)") }'
done
