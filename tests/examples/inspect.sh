#!/usr/bin/env bash
# heed_inspect lists valid files (exit 0) and refuses every invalid or hostile one with
# "heed_inspect: FILE: reason" and exit 1: never a crash, a hang or a blow-up. Each run is
# under `timeout`, so a hang fails the test instead of stalling it.
# Usage: inspect.sh HEED_INSPECT SOURCE_DIR SCRATCH_DIR
set -uo pipefail
bin=$1 src=$2 dir=$3
rm -rf -- "$dir" && mkdir -p -- "$dir"
fail=0
lists() {  # lists FILE "expected stdout fragment"...
  local f=$1 out rc; shift
  out=$(timeout 20 "$bin" "$f" 2>&1); rc=$?
  for want in "$@"; do
    [[ $rc == 0 && $out == *"$want"* ]] || { echo "FAIL: heed_inspect $f -> exit $rc, want '$want', got: $out"; fail=1; }
  done
}
refuses() {  # refuses FILE "expected reason fragment"
  local f=$1 want=$2 err rc
  err=$(timeout 20 "$bin" "$f" 2>&1 >/dev/null); rc=$?
  if [[ $rc != 1 || $err != "heed_inspect: $f: "*"$want"* ]]; then
    echo "FAIL: heed_inspect $f -> exit $rc, want 'heed_inspect: $f: ...$want', got: $err"
    fail=1
  fi
}

st=$src/tests/data/safetensors/fixture.safetensors
ck=$src/tests/data/checkpoint/net.heed
lists "$st" "safetensors," "metadata "
lists "$ck" "heed checkpoint, format version 1, float32 tensors, CRC-32" "model.fc1.weight" "(3, 5)"
for pt in "$src"/tests/data/torch/*.pt; do
  [[ -e $pt ]] || continue
  case $(basename "$pt") in
    legacy*|hostile*|bad*) refuses "$pt" "" ;;
    *) lists "$pt" "torch.save," ;;
  esac
done

# Broken copies of the valid files.
head -c 20 "$st" > "$dir/truncated.safetensors";      refuses "$dir/truncated.safetensors" "truncated"
cp "$ck" "$dir/flipped.heed"
printf '\xff' | dd of="$dir/flipped.heed" bs=1 seek=100 conv=notrunc status=none
refuses "$dir/flipped.heed" "checksum mismatch"
head -c 40 "$ck" > "$dir/short.heed";                  refuses "$dir/short.heed" "payload length"
printf 'hello, world' > "$dir/text.bin";               refuses "$dir/text.bin" "is neither a safetensors file"
: > "$dir/empty";                                      refuses "$dir/empty" "is neither"
refuses "$dir/missing" "cannot open"
refuses "$dir" "is a directory"
refuses /dev/zero "is a character device"
mkfifo "$dir/fifo";                                    refuses "$dir/fifo" "is a FIFO"
# Huge sparse files: refused from their first bytes, in well under the timeout.
truncate -s 200G "$dir/sparse.bin";                    refuses "$dir/sparse.bin" "is neither"
printf '\x00\x00\x00\x00\x00\x01\x00\x00{' > "$dir/huge_header.safetensors"
truncate -s 200G "$dir/huge_header.safetensors";       refuses "$dir/huge_header.safetensors" "exceeds the limit"
# A valid header describing a 50 GB tensor in a 50 GB sparse file lists without reading it.
h='{"w":{"dtype":"F32","shape":[12500000000],"data_offsets":[0,50000000000]}}'
while (( ${#h} % 8 )); do h+=' '; done
printf "$(printf '\\x%02x\\x%02x\\x00\\x00\\x00\\x00\\x00\\x00' $(( ${#h} & 255 )) $(( ${#h} >> 8 )))%s" "$h" > "$dir/big.safetensors"
truncate -s $(( 8 + ${#h} + 50000000000 )) "$dir/big.safetensors"
lists "$dir/big.safetensors" "(12500000000,)" "50000000000 bytes"
rm -f -- "$dir/sparse.bin" "$dir/huge_header.safetensors" "$dir/big.safetensors"

# Several files: each reported, exit 1 if any is bad.
out=$(timeout 20 "$bin" "$st" "$dir/text.bin" 2>&1); rc=$?
[[ $rc == 1 && $out == *"safetensors,"* && $out == *"heed_inspect: $dir/text.bin: "* ]] || { echo "FAIL: two files -> exit $rc: $out"; fail=1; }
"$bin" >/dev/null 2>&1; [[ $? == 2 ]] || { echo "FAIL: no argument should exit 2"; fail=1; }
exit $fail
