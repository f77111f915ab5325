#!/usr/bin/env bash
# The fast part of the suite -- file parsers and formats (IDX, safetensors, PNG) and numerics (W1, barycenter
# quadrature, RK45, GEMM, layers) -- built with AddressSanitizer + UndefinedBehaviorSanitizer (scripts/asan.sh,
# an instrumented copy under build/asan/tree) and run. One PASS per program that passes all its checks with no
# sanitizer report. test_fw is left to `make asan` (the whole suite this way): instrumented, its quadrature-heavy
# checks take 13x longer. About a minute on 2 cores from scratch, most of it compiling.
set -u
cd "$(dirname "$0")/.."
pass=0; fail=0
ok()  { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
subset="test_idx test_safetensors test_imgrid test_w1 test_barycenter test_ode_rk45 test_gemm test_layers"

# inside `make asan` every program is already instrumented (and this would copy the copy)
if [ -n "${SF_ASAN_TREE:-}" ]; then
  echo "SKIP asan subset: already running inside scripts/asan.sh (the whole suite is instrumented)"
  echo "RESULT passed=0 failed=0"
  exit 0
fi
# a toolchain without the sanitizer runtimes (libasan, libubsan) cannot run this test at all: say so
probe=$(mktemp -d); trap 'rm -rf "$probe"' EXIT
echo 'int main(void) { return 0; }' > "$probe/p.c"
if ! ${CC:-gcc} -fsanitize=address,undefined "$probe/p.c" -o "$probe/p" 2>/dev/null || ! "$probe/p"; then
  echo "SKIP asan subset: ${CC:-gcc} cannot build with -fsanitize=address,undefined (install libasan/libubsan)"
  echo "RESULT passed=0 failed=0"
  exit 0
fi

log="$probe/log"
if ! ASAN_JOBS=${ASAN_JOBS:-2} scripts/asan.sh --only "$subset" > "$log" 2>&1; then
  bad "instrumented build" "$(grep -E 'error|Error' "$log" | head -5)"
  echo "RESULT passed=$pass failed=$fail"
  exit 1
fi
# split the log into one section per program ("== test_x" headers from asan.sh)
for t in $subset; do
  sec=$(awk -v t="== $t" '$0 == t { on = 1; next } /^== test_/ { on = 0 } on' "$log")
  res=$(printf '%s\n' "$sec" | grep -E '^RESULT passed=[0-9]+ failed=[0-9]+$' | tail -n 1)
  san=$(printf '%s\n' "$sec" | grep -E 'runtime error|ERROR: (Address|Leak)Sanitizer|SUMMARY: .*Sanitizer' | head -3)
  if [ -n "$san" ]; then
    bad "$t under ASan+UBSan" "$san"
  elif [ -z "$res" ] || printf '%s\n' "$sec" | grep -q '^EXIT '; then
    bad "$t under ASan+UBSan" "no RESULT line or non-zero exit: $(printf '%s\n' "$sec" | tail -n 3 | tr '\n' ' ')"
  elif [ "${res##*failed=}" != 0 ]; then
    bad "$t under ASan+UBSan" "$res: $(printf '%s\n' "$sec" | grep '^FAIL' | head -3 | tr '\n' ' ')"
  else
    ok "$t under ASan+UBSan (${res#RESULT })"
  fi
done
echo "RESULT passed=$pass failed=$fail"
