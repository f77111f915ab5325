#!/usr/bin/env bash
# Run every test program and shell test; sum their RESULT lines into the final "N passed, N failed".
# A program that crashes or prints no RESULT line counts as one failure.
set -u
cd "$(dirname "$0")/.."
passed=0; failed=0
run_one() {
  local name=$1; shift
  local out rc
  out=$("$@" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -E '^(PASS|FAIL|SKIP)' | sed "s|^|[$name] |"
  local line p f
  line=$(printf '%s\n' "$out" | grep -E '^RESULT passed=[0-9]+ failed=[0-9]+$' | tail -n 1)
  if [ -z "$line" ]; then
    echo "[$name] FAIL: exited with status $rc and no RESULT line; last output:"
    printf '%s\n' "$out" | tail -n 15 | sed 's/^/    /'
    failed=$((failed + 1)); return
  fi
  p=${line#RESULT passed=}; p=${p%% *}; f=${line##*failed=}
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$f" = 0 ] && [ "$rc" != 0 ]; then echo "[$name] FAIL: exit status $rc"; failed=$((failed + 1)); fi
}
for t in tests/bin/test_*; do
  [ -x "$t" ] || continue
  run_one "$(basename "$t")" "$t"
done
for t in tests/test_*.sh; do
  [ -f "$t" ] || continue
  run_one "$(basename "$t" .sh)" bash "$t"
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
