#!/usr/bin/env bash
# Shell test of scripts/gpu_check.sh (`make gpu-check`): it runs the already-built GPU tests with
# SF_REQUIRE_CUDA=1 and writes one report. Here: the report is written atomically with one section per
# test_cuda_* program and a summary; its exit status agrees with the summary (on a machine without a GPU every
# GPU test must FAIL, not SKIP, so the status is 1); it never invokes make (a make on PATH that fails is not
# called); a bad flag is a one-line error with exit 2. Prints PASS/FAIL lines and "RESULT passed=P failed=F".
set -u
cd "$(dirname "$0")/.."
passed=0; failed=0
check() {   # check NAME EXIT-STATUS [DETAIL]
  if [ "$2" = 0 ]; then echo "PASS $1"; passed=$((passed + 1)); else echo "FAIL $1: ${3:-}"; failed=$((failed + 1)); fi
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"; printf '#!/bin/sh\necho "make was called" >&2\nexit 99\n' > "$tmp/bin/make"; chmod +x "$tmp/bin/make"
PATH="$tmp/bin:$PATH" scripts/gpu_check.sh --no-bench --out "$tmp/report.txt" > "$tmp/stdout" 2> "$tmp/stderr"; rc=$?
[ -s "$tmp/report.txt" ] && grep -q '^== summary' "$tmp/report.txt" && ! ls "$tmp"/report.txt.tmp.* >/dev/null 2>&1
check "gpu_check writes one complete report" $? "rc=$rc $(head -c 300 "$tmp/stderr")"
n=0; ok=1
for t in tests/bin/test_cuda_*; do
  [ -x "$t" ] || continue; n=$((n + 1))
  grep -q "^== $(basename "$t"): " "$tmp/report.txt" || ok=0
done
[ $n -gt 0 ] && [ $ok = 1 ]; check "report has a section for each of the $n test_cuda_* programs" $?
! grep -q "make was called" "$tmp/stderr" "$tmp/report.txt"; check "gpu_check never calls make" $?
if grep -q 'programs with a failure: 0$' "$tmp/report.txt"; then want=0; else want=1; fi
[ $rc = $want ]; check "exit status ($rc) agrees with the report's summary" $? "want $want"
if [ $want = 1 ] && grep -q 'no usable GPU' "$tmp/report.txt"; then
  ! grep -q '^SKIP' "$tmp/report.txt"; check "without a GPU: FAIL under SF_REQUIRE_CUDA=1, never SKIP" $?
fi
scripts/gpu_check.sh --bogus > /dev/null 2> "$tmp/err"; rc=$?
[ $rc = 2 ] && [ "$(wc -l < "$tmp/err")" = 1 ]; check "gpu_check --bogus: one-line error, exit 2" $? "rc=$rc"
echo "RESULT passed=$passed failed=$failed"
[ $failed = 0 ]
