#!/usr/bin/env bash
# The GPU checks in one command (`make gpu-check`; issue 8 item 8), for a machine with a GPU that received an
# ALREADY-BUILT tree: it never runs make, compiles or relinks anything. Every tests/bin/test_cuda_* runs with
# SF_REQUIRE_CUDA=1 (a test that finds no usable GPU FAILs instead of printing SKIP), then every
# bench/bin/bench_cuda_* (a SKIP there is a failure too). Everything goes into ONE report file (default
# gpu_check_report.txt, written to a temp file then renamed); the console gets the summary.
# After the benches, PyTorch's ScoreNet (shared/anchors/scorenet_torch_bench.py) for the ratio to bench_cuda_scorenet.
# Then the SDXL UNet on the GPU (issue 9 item 7): bench/bin/bench_sdxl_unet --device cuda at 1024^2, batch 2,
# fp16 (ms per call, device memory), with each attention kernel (default, then SF_SDXL_ATTN=mma), and beside it, in the same call, diffusers on the same shapes
# (tests/reference/sdxl_unet_gpu_bench.py) when torch with CUDA and a diffusers tree are there: SDXL_REFENV=DIR
# (a folder built by shared/anchors/sdxl_reference_env.sh; default: refenv/ at the tree's root, carried along).
# Each is capped at SDXL_BENCH_TIMEOUT seconds (default 100) so the whole check stays near 8 minutes;
# a missing diffusers side is reported as NOT RUN (not a failure: it is the reference, not our code).
# Order: the tests, the ScoreNet / layer benches and the PyTorch anchor (issue 8's ratio), then the SDXL benches,
# so a device call cut short loses the least; every program's summary line is also printed as it finishes, so
# a run killed at the device call's limit still shows how far it got.
# Usage: scripts/gpu_check.sh [--out FILE] [--no-bench] [--timeout SECONDS (per program, default 120)]
# Exit: 0 when every test passed and every bench ran; 1 otherwise; 2 on a bad flag or when nothing is built.
set -u
cd "$(dirname "$0")/.."
out=gpu_check_report.txt; bench=1; tmo=120
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || { echo "gpu_check: error: --out needs a file" >&2; exit 2; }; out=$2; shift 2 ;;
    --no-bench) bench=0; shift ;;
    --timeout) [ $# -ge 2 ] && [ "$2" -gt 0 ] 2>/dev/null || { echo "gpu_check: error: --timeout needs seconds > 0" >&2; exit 2; }
               tmo=$2; shift 2 ;;
    *) echo "gpu_check: error: unknown flag '$1' (use --out FILE, --no-bench, --timeout S)" >&2; exit 2 ;;
  esac
done
tests=(); for t in tests/bin/test_cuda_*; do [ -x "$t" ] && tests+=("$t"); done
benches=(); [ $bench = 1 ] && for b in bench/bin/bench_cuda_*; do [ -x "$b" ] && benches+=("$b"); done
if [ ${#tests[@]} = 0 ]; then
  echo "gpu_check: error: no tests/bin/test_cuda_* here: build the tree with nvcc present (make), then carry it" >&2
  exit 2
fi
tmp="$out.tmp.$$"; trap 'rm -f "$tmp"' EXIT
export SF_REQUIRE_CUDA=1
commit=$(git describe --always --dirty --abbrev=12 2>/dev/null || ls build/commit.* 2>/dev/null | head -n 1 | sed 's|build/commit\.||')
{
  echo "# gpu-check report: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname)"
  echo "# commit: ${commit:-unknown}; SF_REQUIRE_CUDA=1; per-program timeout ${tmo}s"
  if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -L 2>&1 | sed 's/^/# /'
    nvidia-smi --query-gpu=driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/# driver, memory: /'
  else echo "# nvidia-smi: not found"; fi
} > "$tmp"
passed=0; failed=0; bad_programs=0; summary=()
for t in "${tests[@]}"; do
  start=$(date +%s)
  res=$(timeout "$tmo" "$t" 2>&1); rc=$?
  secs=$(( $(date +%s) - start ))
  line=$(printf '%s\n' "$res" | grep -E '^RESULT passed=[0-9]+ failed=[0-9]+$' | tail -n 1)
  p=0; f=1
  if [ -n "$line" ]; then p=${line#RESULT passed=}; p=${p%% *}; f=${line##*failed=}; fi
  [ -z "$line" ] || [ "$rc" != 0 ] && [ "$f" = 0 ] && f=1   # crash, timeout or bad exit with no FAIL line
  passed=$((passed + p)); failed=$((failed + f))
  [ "$f" = 0 ] || bad_programs=$((bad_programs + 1))
  s="$(basename "$t"): passed=$p failed=$f exit=$rc ${secs}s"; summary+=("$s"); echo "gpu-check: $s"
  { echo; echo "== $s"; printf '%s\n' "$res"; } >> "$tmp"
done
for b in "${benches[@]}"; do
  start=$(date +%s)
  res=$(timeout "$tmo" "$b" 2>&1); rc=$?
  secs=$(( $(date +%s) - start ))
  st=ok
  if [ "$rc" != 0 ] || printf '%s\n' "$res" | grep -q 'SKIP'; then st=FAIL; bad_programs=$((bad_programs + 1)); fi
  s="$(basename "$b"): $st exit=$rc ${secs}s"; summary+=("$s"); echo "gpu-check: $s"
  { echo; echo "== $s"; printf '%s\n' "$res"; } >> "$tmp"
done
# PyTorch eager fp32 (TF32 off) on the same ScoreNet, in the same run as bench_cuda_scorenet (issue 8: the ratio
# is only fair on the same GPU the same day): SCORENET_TORCH_BENCH=FILE, else the shared anchors folder beside or
# above the tree. A missing script or torch without CUDA is NOT RUN (the reference, not our code).
if [ $bench = 1 ] && [ -x bench/bin/bench_cuda_scorenet ]; then
  anchor=${SCORENET_TORCH_BENCH:-}
  if [ -z "$anchor" ]; then
    for a in shared/anchors/scorenet_torch_bench.py ../shared/anchors/scorenet_torch_bench.py \
             ../../shared/anchors/scorenet_torch_bench.py; do [ -f "$a" ] && { anchor=$a; break; }; done
  fi
  py=${PYTHON:-python3}
  if [ -z "$anchor" ] || [ ! -f "$anchor" ]; then
    summary+=("scorenet_torch_bench.py (PyTorch anchor): NOT RUN: script not found (set SCORENET_TORCH_BENCH)")
  elif ! "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
    summary+=("scorenet_torch_bench.py (PyTorch anchor): NOT RUN: $py has no torch with CUDA")
  else
    start=$(date +%s)
    res=$(timeout "$tmo" "$py" "$anchor" 2>&1); rc=$?
    secs=$(( $(date +%s) - start ))
    st=ok; [ "$rc" = 0 ] || { st=FAIL; bad_programs=$((bad_programs + 1)); }
    s="scorenet_torch_bench.py (PyTorch anchor, $anchor): $st exit=$rc ${secs}s"; summary+=("$s"); echo "gpu-check: $s"
    { echo; echo "== $s"; printf '%s\n' "$res"; } >> "$tmp"
  fi
fi
# the SDXL UNet (ours, then diffusers): one command line each, capped
sdxl_tmo=${SDXL_BENCH_TIMEOUT:-100}; [ "$sdxl_tmo" -gt "$tmo" ] && sdxl_tmo=$tmo
sdxl_cmds=()
if [ $bench = 1 ] && [ -x bench/bin/bench_sdxl_unet ]; then
  sdxl_cmds+=("bench/bin/bench_sdxl_unet --device cuda --res 1024 --batch 2 --dtype f16 --reps 10")
  sdxl_cmds+=("env SF_SDXL_ATTN=mma bench/bin/bench_sdxl_unet --device cuda --res 1024 --batch 2 --dtype f16 --reps 10")
  refenv=${SDXL_REFENV:-refenv}
  py=${PYTHON:-python3}
  if [ ! -d "$refenv/diffusers/src/diffusers" ]; then
    summary+=("sdxl_unet_gpu_bench.py (diffusers): NOT RUN: no diffusers tree at $refenv (set SDXL_REFENV)")
  elif ! "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
    summary+=("sdxl_unet_gpu_bench.py (diffusers): NOT RUN: $py has no torch with CUDA")
  else
    export PYTHONPATH="$refenv/diffusers/src:$refenv/hub/src:$refenv/open_clip/src:$refenv/stub${PYTHONPATH:+:$PYTHONPATH}"
    sdxl_cmds+=("$py tests/reference/sdxl_unet_gpu_bench.py --res 1024 --batch 2 --reps 10")
  fi
fi
for cmd in "${sdxl_cmds[@]}"; do
  start=$(date +%s)
  # shellcheck disable=SC2086  # the command line is split on purpose
  res=$(timeout "$sdxl_tmo" $cmd 2>&1); rc=$?
  secs=$(( $(date +%s) - start ))
  st=ok
  if [ "$rc" != 0 ] || printf '%s\n' "$res" | grep -q 'SKIP'; then st=FAIL; bad_programs=$((bad_programs + 1)); fi
  s="$cmd: $st exit=$rc ${secs}s (limit ${sdxl_tmo}s)"; summary+=("$s"); echo "gpu-check: $s"
  { echo; echo "== $s"; printf '%s\n' "$res"; } >> "$tmp"
done
{
  echo; echo "== summary"
  printf '%s\n' "${summary[@]}"
  echo "tests: $passed passed, $failed failed; programs with a failure: $bad_programs"
} >> "$tmp"
mv "$tmp" "$out"; trap - EXIT
printf '%s\n' "${summary[@]}"
echo "gpu-check: $passed passed, $failed failed; $bad_programs program(s) failed; report: $out"
[ $bad_programs = 0 ]
