#!/usr/bin/env bash
# asan.sh: build the CPU backend with AddressSanitizer + UndefinedBehaviorSanitizer (leak checking included)
# and run the test suite with those binaries.
#   scripts/asan.sh                      every test program and shell test (tests/run.sh), i.e. `make asan`
#   scripts/asan.sh --only "test_a ..."  build and run only these test programs (tests/test_asan_subset.sh)
# The instrumented build lives in a copy of the source tree under build/asan/tree (binaries and all), so the
# ordinary binaries are never replaced by slow instrumented ones and the shell tests, which call ./exp_*/...
# and tests/bin/..., run unchanged against the instrumented ones. The copy is refreshed on every call with
# modification times kept, so only what changed is recompiled. Any sanitizer report fails the test it occurs in
# (halt_on_error, and -fno-sanitize-recover for UBSan), which tests/run.sh counts as a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
only=""
case "${1:-}" in
  --only) only=${2:?--only needs a list of test programs}; shift 2 ;;
  "") ;;
  *) echo "asan.sh: error: unknown option '$1' (usage: scripts/asan.sh [--only \"test_a test_b\"])" >&2; exit 2 ;;
esac
tree=build/asan/tree
mkdir -p "$tree"

# the source files: tracked + untracked-but-not-ignored in a git checkout, else everything but outputs
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard | grep -zv '^build/' |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done > build/asan/files
else
  find . -path ./build -prune -o -path ./data -prune -o -path ./results -prune -o -type f -print0 \
    | sed -z 's|^\./||' > build/asan/files
fi
tar -cf - --null -T build/asan/files | tar -xf - -C "$tree"
# fetched data (MNIST) is shared, not copied
if [ -e data ] && [ ! -e "$tree/data" ]; then ln -s "$root/data" "$tree/data"; fi

# -O1 keeps the instrumented code fast enough for the suite; frame pointers give readable stacks
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
export CFLAGS="-O1 -g $san" LDFLAGS="$san"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export SF_ASAN_TREE=1   # tests/test_asan_subset.sh skips inside the instrumented copy
jobs=${ASAN_JOBS:-$(nproc)}

cd "$tree"
if [ -z "$only" ]; then
  echo "asan: building the CPU backend with $san in $tree"
  make --no-print-directory -j"$jobs" NVCC= all
  tests/run.sh
else
  targets=()
  for t in $only; do targets+=("tests/bin/$t"); done
  make --no-print-directory -s -j"$jobs" NVCC= "${targets[@]}" >/dev/null
  for t in $only; do
    echo "== $t"
    "tests/bin/$t" 2>&1 || echo "EXIT $? from $t"
  done
fi
