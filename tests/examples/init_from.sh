#!/usr/bin/env bash
# The MNIST examples' PyTorch-interop flags (mnist_mlp, mnist_cnn) on a tiny synthetic
# MNIST-shaped data set (200 training, 100 test images of random bytes; no real MNIST needed):
#   --init-from a missing file, a file that is not weights, and a safetensors file with the
#   article's names but wrong shapes: "<example>: <message>" on stderr, exit code 1, and the
#   shape mismatches listed (mnist_mlp) or the missing and unexpected names (mnist_cnn);
#   --export into a directory that does not exist: refused before training (exit code 1);
#   --init-from with --resume: refused as a bad command line (exit code 2);
#   --epochs 0 evaluates only (fresh init, or --init-from weights): the Accuracy line and the
#   per-class report;
#   --export after a run, then --init-from that file with --epochs 0: the same accuracy, the
#   same per-class report and confusion matrix.
# mnist_cnn also: --model attention --maps DIR writes one PNG per image, and a run killed in
# its last epoch resumes to print the same (resume.sh) on this data.
# Usage: init_from.sh MNIST_MLP|MNIST_CNN WORK_DIR
set -uo pipefail
bin=$1 work=$2
name=$(basename "$bin")
rm -rf -- "$work"
mkdir -p -- "$work/data"
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# IDX files: big-endian magic and sizes, then the bytes.
bytes() { for b; do printf "\\$(printf '%03o' "$b")"; done; }
u32() { bytes $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)); }
idx_pair() {  # idx_pair PREFIX COUNT
  { u32 2051; u32 "$2"; u32 28; u32 28; head -c $(($2 * 784)) /dev/urandom; } >"$work/data/$1-images-idx3-ubyte"
  { u32 2049; u32 "$2"; for ((i = 0; i < $2; ++i)); do bytes $((i % 10)); done; } \
    >"$work/data/$1-labels-idx1-ubyte"
}
idx_pair train 200
idx_pair t10k 100
run=(--data "$work/data" --threads 1)

# A safetensors file (u64 little-endian header length, JSON, zero data) with Net's names and
# the weights transposed: (in, out) where PyTorch has (out, in).
{
  header='{"fc1.weight":{"dtype":"F32","shape":[784,256],"data_offsets":[0,802816]},'
  header+='"fc1.bias":{"dtype":"F32","shape":[256],"data_offsets":[802816,803840]},'
  header+='"fc2.weight":{"dtype":"F32","shape":[256,128],"data_offsets":[803840,934912]},'
  header+='"fc2.bias":{"dtype":"F32","shape":[128],"data_offsets":[934912,935424]},'
  header+='"fc3.weight":{"dtype":"F32","shape":[128,64],"data_offsets":[935424,968192]},'
  header+='"fc3.bias":{"dtype":"F32","shape":[64],"data_offsets":[968192,968448]},'
  header+='"fc4.weight":{"dtype":"F32","shape":[64,10],"data_offsets":[968448,971008]},'
  header+='"fc4.bias":{"dtype":"F32","shape":[10],"data_offsets":[971008,971048]}}'
  while ((${#header} % 8)); do header+=' '; done
  n=${#header}
  bytes $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) $((n >> 24 & 255)) 0 0 0 0
  printf '%s' "$header"
  head -c 971048 /dev/zero
} >"$work/transposed.safetensors"
echo "not weights" >"$work/text.txt"

refused() {  # refused WANT_RC "stderr fragment"... -- ARGS...
  local want=$1; shift
  local frags=()
  while [[ $1 != -- ]]; do frags+=("$1"); shift; done
  shift
  local err rc
  err=$("$bin" "${run[@]}" "$@" 2>&1 >/dev/null); rc=$?
  [[ $rc == "$want" && $err == "$name: "* ]] || bad "$name $* -> exit $rc (expected $want), stderr: $err"
  for f in "${frags[@]}"; do
    [[ $err == *"$f"* ]] || bad "$name $*: stderr lacks '$f': $err"
  done
}
refused 1 "$work/none.safetensors: cannot open" -- --epochs 0 --init-from "$work/none.safetensors"
refused 1 "is neither a safetensors file" -- --epochs 0 --init-from "$work/text.txt"
if [[ $name == mnist_mlp ]]; then
  refused 1 "shape mismatches (4): " "'fc1.weight' expected (256, 784), got (784, 256)" \
    "'fc4.weight' expected (10, 64), got (64, 10)" "the model is unchanged" \
    -- --epochs 0 --init-from "$work/transposed.safetensors"
else  # the MLP's names in a conv net
  refused 1 "missing keys (" "'conv1.weight'" "unexpected keys (" "'fc3.weight'" "the model is unchanged" \
    -- --epochs 0 --init-from "$work/transposed.safetensors"
fi
refused 1 "--export $work/no/such.safetensors: no directory $work/no" \
  -- --epochs 3 --export "$work/no/such.safetensors"
refused 2 "--init-from and --resume cannot be combined" "usage: " \
  -- --init-from "$work/transposed.safetensors" --resume "$work/ck.heed"

# From "Accuracy:" to the confusion matrix's end.
report() { sed -n '/^Accuracy: /,/^Exported /p' "$1" | grep -v -e '^Exported ' -e '^$'; }

"$bin" "${run[@]}" --epochs 0 >"$work/fresh.log" 2>&1 || bad "--epochs 0: exit $?: $(cat "$work/fresh.log")"
grep -q '^Accuracy: [0-9.]*%$' "$work/fresh.log" && grep -q '^class  precision' "$work/fresh.log" &&
  ! grep -q '^Epoch ' "$work/fresh.log" || bad "--epochs 0 trained or printed no report: $(cat "$work/fresh.log")"

"$bin" "${run[@]}" --epochs 2 --export "$work/trained.safetensors" >"$work/trained.log" 2>&1 ||
  bad "--export: exit $?: $(cat "$work/trained.log")"
"$bin" "${run[@]}" --epochs 0 --init-from "$work/trained.safetensors" >"$work/eval.log" 2>&1 ||
  bad "--init-from the export: exit $?: $(cat "$work/eval.log")"
grep -q "^Initialised from $work/trained.safetensors$" "$work/eval.log" || bad "no 'Initialised from' line"
[[ -n $(report "$work/eval.log") ]] && diff <(report "$work/trained.log") <(report "$work/eval.log") ||
  bad "--init-from the exported weights, --epochs 0: another report than the run that exported them"
# The same weights, exported again, are the same bytes.
"$bin" "${run[@]}" --epochs 0 --init-from "$work/trained.safetensors" --export "$work/again.safetensors" \
  >/dev/null 2>&1 && cmp -s "$work/trained.safetensors" "$work/again.safetensors" ||
  bad "--init-from then --export did not write the same file"

if [[ $name == mnist_cnn ]]; then
  "$bin" "${run[@]}" --model attention --epochs 1 --maps "$work/maps" --num-maps 3 >"$work/maps.log" 2>&1 ||
    bad "--maps: exit $?: $(cat "$work/maps.log")"
  [[ $(ls "$work/maps" | grep -c '^test_000[0-2]_label[0-9]_pred[0-9]\.png$') == 3 ]] ||
    bad "--maps --num-maps 3 did not write 3 PNG files: $(ls "$work/maps")"
  # The attention model's weights (attn.conv.weight too) go out and come back.
  "$bin" "${run[@]}" --model attention --epochs 1 --export "$work/attn.safetensors" >"$work/attn.log" 2>&1 ||
    bad "--model attention --export: exit $?: $(cat "$work/attn.log")"
  "$bin" "${run[@]}" --model attention --epochs 0 --init-from "$work/attn.safetensors" >"$work/attn_eval.log" 2>&1 ||
    bad "--model attention --init-from: exit $?: $(cat "$work/attn_eval.log")"
  [[ -n $(report "$work/attn_eval.log") ]] && diff <(report "$work/attn.log") <(report "$work/attn_eval.log") ||
    bad "--model attention: the exported weights evaluate differently"
  refused 1 "missing keys (1): 'attn.conv.weight'" -- --model attention --epochs 0 --init-from "$work/trained.safetensors"
  refused 2 "--maps needs --model attention" -- --maps "$work/maps"
  refused 2 "--model is cnn or attention" -- --model mlp
  # The attention model's checkpoint (its attn.conv weight too) resumes exactly.
  "$(dirname "$0")/resume.sh" "$bin" "$work/resume" 2 --data "$work/data" --model attention || fail=1
fi

[[ $fail == 0 ]] && echo "init_from: bad files refused, --epochs 0 evaluates, --export / --init-from round trip: $(grep '^Accuracy' "$work/eval.log")"
exit $fail
