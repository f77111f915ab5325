#!/usr/bin/env bash
# tests/fuzz/run.sh: build the libFuzzer harnesses (tests/fuzz/fuzz_*.c) with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer, run each for FUZZ_SECONDS (default 600) from its seed corpus, then replay the
# corpus it grew through a coverage build and report executions, libFuzzer's edge coverage and the line
# coverage of the reader it targets (llvm-cov). `make fuzz` runs this.
#   tests/fuzz/run.sh [HARNESS...]     e.g. tests/fuzz/run.sh idx safetensors (default: every harness)
# Environment: FUZZ_SECONDS, FUZZ_JOBS (parallel libFuzzer workers per harness, default 1), CLANG (default
# clang), FUZZ_CFLAGS (added to both builds), FUZZ_KEEP_GOING=1 (libFuzzer's fork mode: record every crash
# and keep fuzzing, to measure a harness whose known findings are not fixed yet).
# Outputs under build/fuzz/<h>/: corpus/ (the grown corpus, kept between runs), crash-*/leak-*/oom-*/timeout-*
# (failing inputs of the latest run), log (libFuzzer's output), cov-*.txt (llvm-cov per-function report).
# Exit status: 0 when no harness crashed, 1 otherwise, 2 when clang/libFuzzer are missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
CLANG=${CLANG:-clang}
secs=${FUZZ_SECONDS:-600}
jobs=${FUZZ_JOBS:-1}
case "$secs" in ''|*[!0-9]*|0) echo "fuzz: error: FUZZ_SECONDS='$secs' is not a positive integer" >&2; exit 2 ;; esac
case "$jobs" in ''|*[!0-9]*|0) echo "fuzz: error: FUZZ_JOBS='$jobs' is not a positive integer" >&2; exit 2 ;; esac
out=build/fuzz
mkdir -p "$out"

probe="$out/probe.c"
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' > "$probe"
if ! "$CLANG" -fsanitize=fuzzer,address,undefined "$probe" -o "$out/probe" 2>/dev/null; then
  echo "fuzz: error: '$CLANG' cannot build a libFuzzer target (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi
llvm_cov=$(command -v llvm-cov || ls /usr/lib/llvm-*/bin/llvm-cov 2>/dev/null | tail -n 1 || true)
llvm_profdata=$(command -v llvm-profdata || ls /usr/lib/llvm-*/bin/llvm-profdata 2>/dev/null | tail -n 1 || true)

# harness -> the reader functions whose line coverage is reported, as FILE:REGEX (the functions whose llvm-cov
# name matches) or FILE:!REGEX (all but those): writers and path/directory helpers the harness cannot reach are
# left out of the denominator
declare -A target=(
  [idx]="common/idx.c:!^(idx_resolve|idx_load_split|idx_write_.*|idx.c:(put_be32|write_atomic))$"
  [safetensors]="common/safetensors.c:!(writer|:sb_|^safetensors_open$) common/json.c:!(^json_load$|^json_utf8_encode$)"
  [emnist_parts]="exp_emnist/evaluate.c:^ee_eval_read$ exp_emnist/fusion.c:^ee_fusion_read$"
)
# extra objects a harness links besides the library
declare -A extra=(
  [emnist_parts]="$(ls exp_emnist/*.c | grep -v '/main\.c$' | tr '\n' ' ')"
)

harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do h=${f#tests/fuzz/fuzz_}; harnesses+=("${h%.c}"); done
fi
for h in "${harnesses[@]}"; do
  [ -f "tests/fuzz/fuzz_$h.c" ] || { echo "fuzz: error: no harness tests/fuzz/fuzz_$h.c" >&2; exit 2; }
done

# Library objects through the project Makefile (its flags, -Werror included), one object tree per variant.
# CFLAGS comes from the environment so that the Makefile's own flags are appended to it.
build_variant() {   # variant cflags
  local v=$1 flags="$2 ${FUZZ_CFLAGS:-}" objs=()
  # the Makefile does not track flags: a variant built with other flags is rebuilt from scratch
  if [ "$(cat "$out/$v/flags" 2>/dev/null)" != "$CLANG $flags" ]; then rm -rf "${out:?}/$v"; fi
  mkdir -p "$out/$v"; printf '%s\n' "$CLANG $flags" > "$out/$v/flags"
  for h in "${harnesses[@]}"; do for s in ${extra[$h]:-}; do objs+=("$out/$v/obj/${s%.c}.o"); done; done
  CFLAGS="$flags" make --no-print-directory -s -j"$(nproc)" CC="$CLANG" NVCC= BUILD="$out/$v/obj" \
    "$out/$v/obj/libscorefusion.a" "${objs[@]}" >/dev/null
}
libs="-Wl,-Bstatic -lgsl -lgslcblas -lpng16 -lz -Wl,-Bdynamic -lm -fopenmp"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
# clang reports `#pragma omp simd` loops it could not vectorise under instrumentation as warnings (-Werror)
quiet="-Wno-pass-failed"
echo "fuzz: building the library twice with $CLANG (sanitized for fuzzing, and for coverage)"
build_variant san "-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $san $quiet"
build_variant cov "-O1 -g -fprofile-instr-generate -fcoverage-mapping $quiet"
link() {   # variant harness flags
  local v=$1 h=$2 flags=$3 objs=()
  for s in ${extra[$h]:-}; do objs+=("$out/$v/obj/${s%.c}.o"); done
  # shellcheck disable=SC2086
  "$CLANG" -std=c11 -D_GNU_SOURCE -O1 -g $flags ${FUZZ_CFLAGS:-} -I common -I common/nn -I common/models -I common/models/sdxl -I exp_emnist -I tests/fuzz \
    "tests/fuzz/fuzz_$h.c" "${objs[@]}" "$out/$v/obj/libscorefusion.a" $libs -o "$out/$h/fuzz_$h.$v"
}

status=0
summary=()
for h in "${harnesses[@]}"; do
  d="$out/$h"
  mkdir -p "$d/corpus"
  find "$d" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' -o -name 'timeout-*' \) -delete
  link san "$h" "-fsanitize=fuzzer $san"
  link cov "$h" "-fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping"
  par=(); [ "$jobs" -gt 1 ] && par=(-jobs="$jobs" -workers="$jobs")
  # keep going past crashes (fork mode): to measure a harness whose known findings are not fixed yet
  [ "${FUZZ_KEEP_GOING:-0}" = 1 ] && par=(-fork="$jobs" -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
  dict=(); [ -f "tests/fuzz/$h.dict" ] && dict=(-dict="tests/fuzz/$h.dict")
  echo "fuzz: $h for $secs s (seeds tests/fuzz/corpus/$h, corpus $d/corpus)"
  rc=0
  ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=0" UBSAN_OPTIONS="print_stacktrace=1" \
    "$d/fuzz_$h.san" "$d/corpus" "tests/fuzz/corpus/$h" "${dict[@]}" -max_total_time="$secs" \
    -print_final_stats=1 -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -artifact_prefix="$d/" \
    "${par[@]}" > "$d/log" 2>&1 || rc=$?
  execs=$(awk '/^stat::number_of_executed_units/ {s += $2} /^#[0-9]+: cov:/ {f = substr($1, 2) + 0}
               END {print (s > 0 ? s : f + 0)}' "$d/log")
  rate=$(awk '/^stat::average_exec_per_sec/ {s += $2} /^#[0-9]+: cov:/ {f = $0; sub(/.*exec\/s /, "", f); sub(/ .*/, "", f)}
              END {print (s > 0 ? s : f + 0)}' "$d/log")
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$d/log" | tail -n 1 || true)
  found=$(find "$d" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' -o -name 'timeout-*' \) | sort)
  crashes=$(printf '%s' "$found" | grep -c . || true)
  # line coverage of the target reader: replay seeds + grown corpus through the coverage build
  lines="(llvm-cov not found)"
  if [ -n "$llvm_cov" ] && [ -n "$llvm_profdata" ]; then
    rm -f "$d"/cov-*.profraw
    LLVM_PROFILE_FILE="$d/cov-%p.profraw" "$d/fuzz_$h.cov" -runs=0 "$d/corpus" "tests/fuzz/corpus/$h" \
      > "$d/cov.log" 2>&1 || true
    "$llvm_profdata" merge -sparse "$d"/cov-*.profraw -o "$d/cov.profdata"
    lines=""
    set -f; specs=(${target[$h]}); set +f   # the regexes must not glob
    for spec in "${specs[@]}"; do
      file=${spec%%:*} re=${spec#*:}
      [ "$re" = "$spec" ] && re=""
      "$llvm_cov" report "$d/fuzz_$h.cov" -instr-profile="$d/cov.profdata" -show-functions "$file" \
        > "$d/cov-$(basename "$file").txt" 2>/dev/null || true
      # the reader functions: sum their lines and missed lines (llvm-cov columns 5 and 6)
      lines+=$(awk -v re="$re" -v f="$file" '
        BEGIN { neg = (substr(re, 1, 1) == "!"); if (neg) re = substr(re, 2) }
        NF == 10 && $1 != "Name" && $1 != "TOTAL" && (($1 ~ re) != neg) { l += $5; m += $6 }
        END { if (l > 0) printf "%s %d/%d lines (%.1f%%) of the reader functions; ", f, l - m, l, 100 * (l - m) / l }' \
        "$d/cov-$(basename "$file").txt")
    done
  fi
  line="fuzz: $h: $execs executions ($rate/s), $cov, $(find "$d/corpus" -type f | wc -l) corpus inputs, $crashes crash(es); ${lines%; }"
  echo "$line"
  summary+=("$line")
  if [ "$crashes" != 0 ] || { [ "$rc" != 0 ] && [ "$rc" != 70 ]; }; then
    status=1
    echo "fuzz: $h FAILED (libFuzzer exit $rc); inputs: $(printf '%s' "$found" | tr '\n' ' ')"
    grep -E 'ERROR|runtime error|SUMMARY' "$d/log" | head -5 || true
  fi
done
echo "== fuzz summary (FUZZ_SECONDS=$secs)"
printf '%s\n' "${summary[@]}"
exit $status
