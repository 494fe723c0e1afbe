#!/usr/bin/env bash
# Every example rejects bad command lines cleanly: message naming the flag, usage, exit code 2,
# no crash and no run. -h / --help is not an error: usage and about text on stdout, nothing on
# stderr, exit code 0, no run. Usage: bad_flags.sh MNIST_MLP MNIST_ATTENTION SEQ2SEQ_DATES [MORE...]
set -uo pipefail
fail=0
expect() {  # expect BINARY "expected stderr fragment" ARGS...
  local bin=$1 want=$2; shift 2
  local err rc
  err=$("$bin" "$@" 2>&1 >/dev/null); rc=$?
  if [[ $rc != 2 || $err != *"$want"* || $err != *"usage: "* ]]; then
    echo "FAIL: $(basename "$bin") $* -> exit $rc, stderr: $err"
    fail=1
  fi
}
help() {  # help BINARY ARGS...
  local bin=$1 name; shift
  name=$(basename "$bin")
  local out err rc errfile
  errfile=$(mktemp)
  # The timeout turns "ran the training instead" into a failure rather than a hang.
  out=$(timeout 20 "$bin" "$@" 2>"$errfile"); rc=$?
  err=$(<"$errfile"); rm -f -- "$errfile"
  if [[ $rc != 0 || $out != "usage: $name "* || $out != *"Defaults: "* || -n $err ]]; then
    echo "FAIL: $name $* -> exit $rc, stdout: $out, stderr: $err"
    fail=1
  fi
}
for bin in "$@"; do
  help "$bin" --help
  help "$bin" -h
  help "$bin" --epochs 3 --help
  expect "$bin" "unknown flag --nope" --nope 1
  expect "$bin" "missing value for --epochs" --epochs
  expect "$bin" "bad value '3x' for --epochs" --epochs 3x
  expect "$bin" "bad value '' for --epochs" --epochs ""
  expect "$bin" "bad value 'ten' for --epochs" --epochs ten
  expect "$bin" "bad value '-1' for --seed" --seed -1
  expect "$bin" "bad value '1e-3x' for --lr" --lr 1e-3x
  expect "$bin" "bad value '99999999999' for --threads" --threads 99999999999
  # mnist_mlp and mnist_cnn --epochs 0 only evaluate; the others need an epoch.
  if [[ $(basename "$bin") == mnist_mlp || $(basename "$bin") == mnist_cnn ]]; then
    expect "$bin" "--epochs must be >= 0" --epochs -5
  else
    expect "$bin" "--epochs, " --epochs 0
  fi
  expect "$bin" " must be positive, --threads " --threads -1
done
# The shared flags are parsed in one place, but seq2seq_dates generates its data: no --data.
[[ $# -ge 3 ]] && expect "$3" "unknown flag --data" --data x
# A checkpoint holds the weights: --init-from would be ignored or overwrite them.
expect "$1" "--init-from and --resume cannot be combined" --init-from a.safetensors --resume b.heed
expect "$1" "missing value for --init-from" --init-from
expect "$1" "missing value for --export" --epochs 0 --export
expect "$1" "--shards must be positive" --shards 0
[[ $fail == 0 ]] && echo "all bad command lines rejected, --help answered"
exit $fail
