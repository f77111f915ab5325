#!/usr/bin/env bash
# Shell test of the run-time GEMM dispatch (issue 8 item 8): the portable kernels must be tested too, not only the
# AVX-512 ones this CPU picks. Runs tests/bin/test_gemm and tests/bin/test_gemm_bf16 with SF_GEMM_KERNEL=generic
# (and =avx512 when the CPU has AVX-512 F/BW/DQ/VL, resp. BF16; =amx for the bf16 GEMM where AMX-BF16 is offered), checks that nn_sgemm returns the same bits from
# both kernels (test_gemm_bf16 --dump-sgemm), and that a bad SF_GEMM_KERNEL is a one-line error with exit 2.
# Prints PASS/FAIL lines and "RESULT passed=P failed=F" (tests/run.sh sums these).
set -u
cd "$(dirname "$0")/.."
passed=0; failed=0
check() {   # check NAME EXIT-STATUS [DETAIL]
  if [ "$2" = 0 ]; then echo "PASS $1"; passed=$((passed + 1)); else echo "FAIL $1: ${3:-}"; failed=$((failed + 1)); fi
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for b in test_gemm test_gemm_bf16; do
  [ -x tests/bin/$b ] || { echo "FAIL $b built: tests/bin/$b missing (run make)"; echo "RESULT passed=$passed failed=$((failed + 1))"; exit 1; }
done
has() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }
avx512=0; has avx512f && has avx512bw && has avx512dq && has avx512vl && avx512=1
bf16=0; [ $avx512 = 1 ] && has avx512_bf16 && bf16=1

# a program's own checks under a forced kernel: its RESULT line must say failed=0
run_forced() {   # run_forced KERNEL PROGRAM
  local out rc line
  out=$(SF_GEMM_KERNEL=$1 tests/bin/$2 2>&1); rc=$?
  line=$(printf '%s\n' "$out" | grep -E '^RESULT ' | tail -n 1)
  [ $rc = 0 ] && [ -n "$line" ] && [ "${line##*failed=}" = 0 ]
  check "$2 with SF_GEMM_KERNEL=$1 (${line#RESULT })" $? "$(printf '%s\n' "$out" | grep -E '^FAIL' | head -n 3)"
}
run_forced generic test_gemm
run_forced generic test_gemm_bf16
if [ $avx512 = 1 ]; then run_forced avx512 test_gemm; else echo "SKIP test_gemm with SF_GEMM_KERNEL=avx512: no AVX-512 on this CPU"; fi
if [ $bf16 = 1 ]; then run_forced avx512 test_gemm_bf16; else echo "SKIP test_gemm_bf16 with SF_GEMM_KERNEL=avx512: no AVX-512 BF16 on this CPU"; fi
# AMX needs the CPU flag and the kernel's consent (Linux >= 5.16 grants the tile state); a refusal is a SKIP
if [ $bf16 = 1 ] && has amx_bf16 && has amx_tile && \
   ! SF_GEMM_KERNEL=amx tests/bin/test_gemm_bf16 2>&1 | grep -q 'offers no AMX'; then
  run_forced amx test_gemm_bf16
else
  echo "SKIP test_gemm_bf16 with SF_GEMM_KERNEL=amx: no AMX-BF16 on this CPU or kernel"
fi

if [ $avx512 = 1 ]; then
  SF_GEMM_KERNEL=generic tests/bin/test_gemm_bf16 --dump-sgemm "$tmp/generic.bin" && \
    SF_GEMM_KERNEL=avx512 tests/bin/test_gemm_bf16 --dump-sgemm "$tmp/avx512.bin" && cmp -s "$tmp/generic.bin" "$tmp/avx512.bin"
  check "nn_sgemm: generic and avx512 kernels give the same bits (6 shapes x 4 transposes)" $? "outputs differ"
fi

# portability: in the portable build (ARCH=x86-64-v3, the default) only the AVX-512 kernel objects (built with
# AVX512_FLAGS: the two GEMMs, the AMX im2col packer and the AMX attention, reached after nn_amx_available()) and
# attention.o (function clones chosen by a run-time CPU check) may hold AVX-512 code (zmm registers); everything else must run on any x86-64-v3 CPU
if command -v objdump >/dev/null 2>&1; then
  for d in build/cpu build/cuda; do
    [ -f "$d/arch.x86-64-v3" ] || continue
    bad=""
    for o in $(find "$d/common" -name '*.o' ! -name gemm_avx512.o ! -name gemm_bf16_avx512.o ! -name gemm_amx.o ! -name attention.o ! -name attention_amx.o); do
      objdump -d "$o" | grep -q zmm && bad="$bad $o"
    done
    n512=$(objdump -d "$d/common/nn/gemm_avx512.o" 2>/dev/null | grep -c zmm)
    [ -z "$bad" ] && [ "${n512:-0}" -gt 0 ]
    check "$d: AVX-512 code only in the dispatched kernels (gemm_avx512, gemm_bf16_avx512, gemm_amx, attention, attention_amx)" $? "zmm in:$bad (gemm_avx512.o: ${n512:-0})"
  done
else
  echo "SKIP AVX-512 object scan: objdump not installed"
fi

SF_GEMM_KERNEL=bogus tests/bin/test_gemm > "$tmp/out" 2> "$tmp/err"; rc=$?
[ $rc = 2 ] && [ "$(wc -l < "$tmp/err")" = 1 ] && grep -q 'SF_GEMM_KERNEL=bogus' "$tmp/err"
check "SF_GEMM_KERNEL=bogus: one-line error naming it, exit 2" $? "rc=$rc: $(head -c 200 "$tmp/err")"
echo "RESULT passed=$passed failed=$failed"
[ $failed = 0 ]
