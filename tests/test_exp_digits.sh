#!/usr/bin/env bash
# exp_sdxl --family digits end to end (issue 10 item 3), smoke profile on real MNIST: bad flags and a missing data
# directory fail with one line and write nothing; the smoke run writes every CSV (+ .meta) and grid; the exact
# seed-paired identities (lambda = 1 barycenter == fine-tune 7 == w = 1 merge; lambda = 0 / w = 0 == fine-tune 9)
# hold on the real path while lambda = w = 1/2 differs; class fractions are fractions; the sweep and its slopes
# are finite; a second run reuses every checkpoint (no training) and reproduces the samples CSV exactly.
# (The LoRA gradients, the merge, scale 0 == base and the k = 1 barycenter: tests/test_lora_adapter.c.)
set -u
cd "$(dirname "$0")/.."
pass=0; fail=0
ok()  { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
bin=./exp_sdxl/exp_sdxl
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# one thread: the runs are compared bit for bit, and OpenMP barriers on an oversubscribed machine cost ~10x
export OMP_NUM_THREADS=1

one_line_error() {   # $1 name, $2 pattern, rest: command
  local name=$1 pat=$2; shift 2
  if "$@" > /dev/null 2> "$tmp/err"; then bad "$name" "exit 0"; return; fi
  if [ "$(wc -l < "$tmp/err")" = 1 ] && grep -q -- "$pat" "$tmp/err"; then ok "$name"
  else bad "$name" "$(head -3 "$tmp/err")"; fi
}

help=$($bin --family digits --help)
missing=""
for o in family profile out data seed samples steps rank ckpt-every threads quiet help; do
  grep -q -- "--$o" <<< "$help" || missing="$missing --$o"
done
[ -z "$missing" ] && ok "--help names every digits option" || bad "--help" "missing$missing"

one_line_error "bad --profile rejected" "--profile" $bin --family digits --profile paper --out "$tmp/x"
one_line_error "unknown flag rejected" "bogus" $bin --family digits --bogus --out "$tmp/x"
one_line_error "bad --samples rejected" "--samples" $bin --family digits --samples 0 --out "$tmp/x"
one_line_error "bad --rank rejected" "--rank" $bin --family digits --rank x --out "$tmp/x"
one_line_error "stray argument rejected" "stray" $bin --family digits stray --out "$tmp/x"
one_line_error "missing data directory named" "$tmp/none" $bin --family digits --profile smoke --data "$tmp/none" \
  --out "$tmp/x"
[ -z "$(ls "$tmp/x" 2> /dev/null | grep -v '^ckpt$')" ] && ok "a failed start writes no output" \
  || bad "a failed start writes no output" "$(ls "$tmp/x")"

if [ ! -f data/mnist/train-images-idx3-ubyte ] && ! scripts/fetch_mnist.sh > /dev/null 2>&1; then
  echo "SKIP digits end to end: MNIST not present and \`make data\` failed"
  # killed like SIGKILL right after the first in-training checkpoint, then resumed: the same samples as run "a"
DG_TEST_DIE_AFTER_CHECKPOINT=1 $bin --family digits --profile smoke --quiet --out "$tmp/b" > /dev/null 2>&1
rc=$?
ls "$tmp/b"/ckpt/digits_base_*.partial > /dev/null 2>&1 && [ "$rc" = 137 ] && ok "killed inside the base training, partial checkpoint left" \
  || bad "killed run" "rc $rc, $(ls "$tmp/b/ckpt" 2> /dev/null)"
if $bin --family digits --profile smoke --out "$tmp/b" > /dev/null 2> "$tmp/stderr3"; then ok "resumed run exits 0"
else bad "resumed run exits 0" "$(tail -3 "$tmp/stderr3")"; fi
grep -q "base: resuming from" "$tmp/stderr3" && ok "resumed inside the base network" || bad "resume" "$(head -3 "$tmp/stderr3")"
cut -d, -f1-13 "$tmp/b/digits_samples.csv" | cmp -s - "$tmp/samples1.csv" && ok "killed + resumed run gives the same samples" \
  || bad "killed + resumed run gives the same samples" "$(cut -d, -f1-13 "$tmp/b/digits_samples.csv" | diff - "$tmp/samples1.csv" | head -4)"

echo "RESULT passed=$pass failed=$fail"
  exit 0
fi

start=$(date +%s)
if $bin --family digits --profile smoke --quiet --out "$tmp/a" > "$tmp/stdout" 2> "$tmp/stderr"; then
  ok "smoke run exits 0"
else bad "smoke run exits 0" "$(tail -3 "$tmp/stderr")"; fi
echo "note: the smoke run took $(( $(date +%s) - start )) s (not a check: timings live in bench/)"
for f in digits_classifier.csv digits_loss_base.csv digits_loss_lora7.csv digits_loss_lora9.csv digits_samples.csv \
         digits_paired.csv digits_identities.csv digits_sweep.csv digits_slopes.csv digits_timing.csv; do
  [ -s "$tmp/a/$f" ] && [ -s "$tmp/a/$f.meta" ] && ok "output $f (+ .meta)" || bad "output $f" "missing or empty"
done
for f in digits_grid_models.png digits_grid_barycenter.png digits_grid_merge.png; do
  [ "$(head -c 8 "$tmp/a/$f" 2> /dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && ok "grid $f is a PNG" \
    || bad "grid $f" "missing or not a PNG"
done
ls "$tmp/a"/ckpt/digits_base_*.safetensors "$tmp/a"/ckpt/digits_lora7_*.safetensors \
   "$tmp/a"/ckpt/digits_lora9_*.safetensors > /dev/null 2>&1 && ok "checkpoints written" || bad "checkpoints" "missing"
ls "$tmp/a"/ckpt/*.partial > /dev/null 2>&1 && bad "no partial checkpoint left" "$(ls "$tmp/a"/ckpt)" \
  || ok "no partial checkpoint left"

# the identities, on the experiment's own samples
id=$tmp/a/digits_identities.csv
for chk in barycenter_lambda1_vs_finetune7 merge_w1_vs_finetune7 barycenter_lambda0_vs_finetune9 merge_w0_vs_finetune9; do
  v=$(awk -F, -v k="$chk" '$1 == k {print $2}' "$id")
  [ "$v" = 0 ] && ok "identity $chk (max |diff| 0)" || bad "identity $chk" "max |diff| '$v'"
done
v=$(awk -F, '$1 ~ /^barycenter_vs_merge_half/ {print $2}' "$id")
awk -v v="$v" 'BEGIN {exit !(v + 0 > 0)}' && ok "barycenter and merge differ at 1/2 (max |diff| $v)" \
  || bad "barycenter vs merge at 1/2" "'$v'"

# samples: 3 single models + 7 barycenter + 7 merge rows; fractions in [0,1] summing to 1, CI around them
s=$tmp/a/digits_samples.csv
[ "$(tail -n +2 "$s" | wc -l)" = 17 ] && ok "17 method rows" || bad "method rows" "$(tail -n +2 "$s" | wc -l)"
[ "$(awk -F, 'NR > 1 && $1 == "barycenter"' "$s" | cut -d, -f2 | tr '\n' ' ')" = "0.00 0.20 0.40 0.50 0.60 0.80 1.00 " ] \
  && ok "barycenter lambda grid" || bad "barycenter grid" "$(awk -F, '$1 == "barycenter"' "$s" | cut -d, -f2)"
awk -F, 'NR > 1 { s = $4 + $7 + $10; if (s < 0.999 || s > 1.001) exit 1;
                  for (i = 4; i <= 12; i += 3) if ($(i+1) > $i + 1e-9 || $(i+2) < $i - 1e-9 || $i < 0 || $i > 1) exit 1;
                  if ($13 < 0 || $13 > log(10) + 1e-6) exit 1 }' "$s" \
  && ok "fractions sum to 1 inside their intervals; entropy in [0, ln 10]" || bad "fractions" "$(head -3 "$s")"
# the same row for barycenter lambda = 1 and fine-tune 7 (same samples)
r1=$(awk -F, '$1 == "finetune7" {print $4, $7, $10, $13}' "$s"); r2=$(awk -F, '$1 == "barycenter" && $2 == "1.00" {print $4, $7, $10, $13}' "$s")
[ -n "$r1" ] && [ "$r1" = "$r2" ] && ok "barycenter lambda = 1 row == fine-tune 7 row" || bad "lambda 1 row" "$r1 vs $r2"

# sweep: finite, ||dW|| grows with the scale, slopes finite
w=$tmp/a/digits_sweep.csv
awk -F, 'NR > 2 && !($2 > p) {exit 1} NR > 1 {p = $2; for (i = 2; i <= 9; i++) if ($i != $i + 0 || $i < 0) exit 1}' "$w" \
  && ok "sweep: finite, ||dW|| increasing with the scale" || bad "sweep" "$(cat "$w")"
awk -F, 'NR > 1 && ($6 != $6 + 0) {exit 1}' "$tmp/a/digits_slopes.csv" && \
  [ "$(grep -c '^score_gap_sq,' "$tmp/a/digits_slopes.csv")" = 2 ] && ok "slopes: finite, small and all ranges" \
  || bad "slopes" "$(cat "$tmp/a/digits_slopes.csv")"

# a second run: every network from its checkpoint, the same samples
cut -d, -f1-13 "$s" > "$tmp/samples1.csv"
if $bin --family digits --profile smoke --out "$tmp/a" > /dev/null 2> "$tmp/stderr2"; then ok "second run exits 0"
else bad "second run exits 0" "$(tail -3 "$tmp/stderr2")"; fi
grep -qE '(base|lora7|lora9|classifier): [0-9]+ epochs' "$tmp/stderr2" && bad "second run trains nothing" \
  "$(grep -E 'epochs' "$tmp/stderr2" | head -2)" || ok "second run trains nothing"
cut -d, -f1-13 "$s" | cmp -s - "$tmp/samples1.csv" && ok "second run reproduces digits_samples.csv exactly (all but the seconds column)" \
  || bad "second run reproduces the samples" "$(cut -d, -f1-13 "$s" | diff - "$tmp/samples1.csv" | head -4)"

# killed like SIGKILL right after the first in-training checkpoint, then resumed: the same samples as run "a"
DG_TEST_DIE_AFTER_CHECKPOINT=1 $bin --family digits --profile smoke --quiet --out "$tmp/b" > /dev/null 2>&1
rc=$?
ls "$tmp/b"/ckpt/digits_base_*.partial > /dev/null 2>&1 && [ "$rc" = 137 ] && ok "killed inside the base training, partial checkpoint left" \
  || bad "killed run" "rc $rc, $(ls "$tmp/b/ckpt" 2> /dev/null)"
if $bin --family digits --profile smoke --out "$tmp/b" > /dev/null 2> "$tmp/stderr3"; then ok "resumed run exits 0"
else bad "resumed run exits 0" "$(tail -3 "$tmp/stderr3")"; fi
grep -q "base: resuming from" "$tmp/stderr3" && ok "resumed inside the base network" || bad "resume" "$(head -3 "$tmp/stderr3")"
cut -d, -f1-13 "$tmp/b/digits_samples.csv" | cmp -s - "$tmp/samples1.csv" && ok "killed + resumed run gives the same samples" \
  || bad "killed + resumed run gives the same samples" "$(cut -d, -f1-13 "$tmp/b/digits_samples.csv" | diff - "$tmp/samples1.csv" | head -4)"

echo "RESULT passed=$pass failed=$fail"
