#!/usr/bin/env bash
# Checkpoint/resume of an example (--save / --resume): a run killed during its last epoch and
# resumed must print what an uninterrupted run prints, times aside, and exit with the same
# code; a resume with another --seed is refused. Every run uses one thread.
# Usage: resume.sh BINARY WORK_DIR EPOCHS [FLAGS...]
set -uo pipefail
bin=$1 work=$2 epochs=$3
shift 3
rm -rf -- "$work"
mkdir -p -- "$work"
common=(--epochs "$epochs" --threads 1 "$@")
fail() { echo "FAIL: $(basename "$bin"): $*"; exit 1; }
# Every "<number> s" is a time, which may differ between runs.
stable() { sed -E 's/[0-9]+(\.[0-9]+)? s\b/T s/g' "$1"; }

t0=$(date +%s.%N)
"$bin" "${common[@]}" --save "$work/full.heed" >"$work/full.log" 2>&1
full_rc=$?
# A quarter of an epoch (the whole run's mean), at most 0.3 s: well inside the last epoch even
# on a fast build.
pause=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" -v n="$epochs" \
  'BEGIN { p = (t1 - t0) / n / 4; printf "%.2f", p < 0.3 ? p : 0.3 }')

# The interrupted run: killed once the next-to-last epoch is reported (its checkpoint is written
# before that line) and some of the last epoch has run.
"$bin" "${common[@]}" --save "$work/cut.heed" >"$work/cut.log" 2>&1 &
pid=$!
for _ in $(seq 1 1200); do
  grep -q "^Epoch \[$((epochs - 1))/$epochs\]" "$work/cut.log" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
sleep "$pause"
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
grep -q "^Epoch \[$epochs/$epochs\]" "$work/cut.log" &&
  fail "the run finished its last epoch before it could be killed"
grep -q "^Epoch \[$((epochs - 1))/$epochs\]" "$work/cut.log" ||
  { cat "$work/cut.log"; fail "the run to interrupt did not complete epoch $((epochs - 1))"; }

"$bin" "${common[@]}" --resume "$work/cut.heed" >"$work/resumed.log" 2>&1
resumed_rc=$?
grep -q "^Resumed from .* after epoch $((epochs - 1))$" "$work/resumed.log" ||
  { cat "$work/resumed.log"; fail "no resume message"; }
[[ $resumed_rc == "$full_rc" ]] || fail "exit code $resumed_rc after resuming, $full_rc uninterrupted"

# The resumed run with the cut run's epoch lines in place of its resume message = the full run.
grep '^Epoch' "$work/cut.log" >"$work/cut_epochs.log"
awk -v cut="$work/cut_epochs.log" \
  '/^Resumed from /{while ((getline l < cut) > 0) print l; next} {print}' \
  "$work/resumed.log" >"$work/joined.log"
diff <(stable "$work/joined.log") <(stable "$work/full.log") ||
  fail "the resumed run differs from the uninterrupted one"

# The settings are checked: another seed would not continue the same run.
err=$("$bin" "${common[@]}" --seed 12345 --resume "$work/cut.heed" 2>&1 >/dev/null)
[[ $? == 1 && $err == *"the checkpoint was written with --seed "*", this run has --seed 12345"* ]] ||
  fail "a resume with another --seed was not refused: $err"
echo "resume: identical to the uninterrupted run (exit code $full_rc); another --seed refused"
