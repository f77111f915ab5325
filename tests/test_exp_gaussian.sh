#!/usr/bin/env bash
# End-to-end smoke run of exp_gaussian and every bad-input path (one-line error, non-zero exit, no output).
set -u
cd "$(dirname "$0")/.."
bin=./exp_gaussian/exp_gaussian
pass=0; fail=0
ok()  { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# expect_error NAME PATTERN ARGS...: non-zero exit, exactly one line on stderr matching PATTERN, nothing on stdout
expect_error() {
  local name=$1 pat=$2; shift 2
  local out err rc
  out=$("$bin" "$@" 2>"$tmp/err"); rc=$?
  err=$(cat "$tmp/err")
  if [ $rc -eq 0 ]; then bad "$name" "exit status 0"; return; fi
  if [ "$(printf '%s\n' "$err" | wc -l)" != 1 ]; then bad "$name" "stderr is not one line: $err"; return; fi
  if ! printf '%s' "$err" | grep -q -- "$pat"; then bad "$name" "stderr '$err' lacks '$pat'"; return; fi
  if [ -n "$out" ]; then bad "$name" "wrote to stdout: $out"; return; fi
  ok "$name"
}

expect_error "malformed mixture flag" "--target" --target "0.6:-6,0.4:6:0.8" --out "$tmp/a"
expect_error "weights not summing to 1" "sum to" --target "0.6:-6:0.8,0.5:6:0.8" --out "$tmp/a"
expect_error "negative std" "std -0.8" --aux "0.5:0:-0.8,0.5:1:1" --aux "1:0:1" --out "$tmp/a"
expect_error "single auxiliary" "at least two" --aux "1:0:1" --out "$tmp/a"
expect_error "bad profile" "--profile" --profile fast --out "$tmp/a"
expect_error "bad n list" "--n" --n 32,abc --out "$tmp/a"
expect_error "n too small" "--n" --n 2 --out "$tmp/a"
# issue 11: list items and flag combinations are checked before any work
expect_error "empty item inside --n" "empty item" --n 32,,64 --out "$tmp/a"
expect_error "empty first item of --n" "empty item" --n ,64 --out "$tmp/a"
expect_error "empty last item of --n" "empty item" --n 64, --out "$tmp/a"
expect_error "repeated --n value" "32 given twice" --n 32,32 --out "$tmp/a"
expect_error "target too far for quadrature, before training" "--target: KL" --target "1:1e6:1" --out "$tmp/a"
expect_error "target too narrow for quadrature, before training" "--target: KL" --target "1:0:1e-6" --out "$tmp/a"
expect_error "target with a huge mean, before training" "--target" --target "1:1e300:1" --out "$tmp/a"
expect_error "target with a vanishing sd, before training" "sd 0" --target "1:0:1e-300" --out "$tmp/a"
expect_error "unknown flag" "bad option" --frobnicate --out "$tmp/a"
expect_error "bad device" "--device" --device tpu --out "$tmp/a"
expect_error "cuda asked for a CPU-only experiment" "CPU only" --device cuda --out "$tmp/a"
touch "$tmp/file"
expect_error "unwritable output dir" "--out" --out "$tmp/file/sub"
mkdir -p "$tmp/ro"; chmod 555 "$tmp/ro"
if [ "$(id -u)" != 0 ]; then expect_error "read-only output dir" "not writable" --out "$tmp/ro"; fi
[ -z "$(ls -A "$tmp/ro")" ] && ok "no output left behind by a failed run" || bad "no output left behind" "$(ls "$tmp/ro")"

# smoke run end to end
if OMP_NUM_THREADS=2 "$bin" --profile smoke --out "$tmp/run" --quiet > "$tmp/stdout" 2> "$tmp/stderr"; then
  ok "smoke run exits 0"
else
  bad "smoke run exits 0" "$(tail -3 "$tmp/stderr")"
fi
for f in table6.csv table6.csv.meta lambda.csv frank_wolfe.csv family_best.csv hist_n32.csv hist_n64.csv compare_table6.csv; do
  [ -s "$tmp/run/$f" ] && ok "smoke output $f" || bad "smoke output $f" "missing or empty"
done
rows=$(tail -n +2 "$tmp/run/table6.csv" 2>/dev/null | wc -l)
# per n: 1 baseline + 5 rows per mode x 2 modes
[ "$rows" = 22 ] && ok "table6 has 22 rows (2 n x 11)" || bad "table6 rows" "$rows"
if awk -F, 'NR>1 && ($8=="nan" || $8=="" || $8<0) {bad=1} END {exit bad}' "$tmp/run/table6.csv"; then
  ok "every W1 is a finite non-negative number"; else bad "W1 values" "$(cat "$tmp/run/table6.csv")"; fi
grep -q 'profile: smoke' "$tmp/run/table6.csv.meta" && ok ".meta records the profile" || bad ".meta profile" "missing"
ls "$tmp/run" | grep -q '\.tmp\.' && bad "no temp files left" "$(ls "$tmp/run")" || ok "no temp files left"
grep -q 'Table 6' "$tmp/stdout" && ok "prints the comparison with the paper" || bad "comparison" "not printed"
# the lambda of every calibration is on the simplex
if awk -F, 'NR>1 { s=$4+$5; if (s<0.999999 || s>1.000001 || $4<0 || $5<0) bad=1 } END {exit bad}' "$tmp/run/lambda.csv"; then
  ok "every lambda is on the simplex"; else bad "lambda on simplex" "$(cat "$tmp/run/lambda.csv")"; fi
# Frank-Wolfe (exact line search) certifies its optimum in both modes: the open-loop step stopped paper mode
# at gaps of 1e-4..3e-3 here
if awk -F, 'NR>1 && $3=="vanilla-frank-wolfe" { k++; if (!($7 + 0 <= 1e-6) || $7=="nan") bad=1 } END {exit bad || k != 4}' \
     "$tmp/run/lambda.csv"; then
  ok "vanilla fusion: certified duality gap <= 1e-6 for every n and mode"
else
  bad "vanilla fusion gap" "$(grep vanilla "$tmp/run/lambda.csv")"
fi
# family_best.csv: exact moments, this seed's draws, and the spread over other seeds, per mode, gaps certified
fb="$tmp/run/family_best.csv"
if [ "$(cut -d, -f1,2 "$fb" | tail -n +2 | tr '\n' ' ')" = "paper,exact paper,sampled paper,spread corrected,exact corrected,sampled corrected,spread " ] &&
   awk -F, 'NR>1 { if (!($8 + 0 <= 1e-6) || !($5 > 0)) bad=1 } END {exit bad}' "$fb"; then
  ok "family_best: exact, sampled and spread rows for both modes, gaps <= 1e-6"
else
  bad "family_best rows" "$(cat "$fb")"
fi
# corrected mode: KL is invariant under the common affine map, so the three rows agree; paper mode's exact
# family is the draw-free one (its lambda differs from the sampled one's by the sampling spread)
if awk -F, '$1=="corrected" { split($4, l, ";"); if (n++ == 0) { l0 = l[1]; k0 = $5 } else if ((l[1]-l0)^2 > 1e-12 || (($5-k0)/k0)^2 > 1e-12) bad=1 }
            $1=="paper" && $2=="spread" { if (!($6 > 0)) bad=1 }
            END {exit bad}' "$fb"; then
  ok "family_best: corrected rows agree (map invariance); paper spread reported"
else
  bad "family_best invariance" "$(cat "$fb")"
fi
grep -q 'frank_wolfe: exact line search' "$tmp/run/table6.csv.meta" && ok ".meta records the Frank-Wolfe rule" ||
  bad ".meta Frank-Wolfe rule" "missing"

# issue 11: a damaged part stops the merge with one line naming it; stale temp files of dead processes go
part=$(ls "$tmp/run/parts/"lambda_n*.csv 2>/dev/null | head -1)
if [ -n "$part" ]; then
  head -1 "$part" > "$tmp/x" && mv "$tmp/x" "$part"
  expect_error "truncated part: merge fails naming it" "$(basename "$part")" --profile smoke --stage merge --out "$tmp/run" --quiet
else bad "truncated part" "no lambda part written"; fi
sh -c 'exit 0' & deadpid=$!; wait $deadpid
touch "$tmp/run/parts/table6_n00032.csv.tmp.$(hostname | tr ./ __).$deadpid" "$tmp/run/ckpt/aux1.safetensors.tmp.$deadpid"
"$bin" --profile smoke --stage merge --out "$tmp/run" --n 32 > /dev/null 2>&1
ls "$tmp/run/parts" "$tmp/run/ckpt" | grep -q "\.tmp\." && bad "stale temp files removed at start" "$(ls "$tmp/run/parts" "$tmp/run/ckpt")" \
  || ok "stale temp files removed at start"

echo "RESULT passed=$pass failed=$fail"
