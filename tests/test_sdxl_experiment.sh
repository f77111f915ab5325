#!/usr/bin/env bash
# exp_sdxl --family sdxl --experiment (the barycenter-vs-merging runner, paper §5.2, App. H) end to end on the tiny
# model of exp_sdxl/sdxl_tiny: --help names every option; bad flags and a missing LoRA fail with one line naming
# the flag or file; the barycenter at lambda 1 / 0 with both UNets run (--bary-endpoints) is aux_AF / aux_WM bit
# for bit; aux_AF is the plain command's image with LoRA A at run time from the same seed (k = 1 = plain
# sampling, and the same initial latent); images.csv has one row per image with the method names clip_fraction
# --compare matches against results/paper/sdxl_clip.csv; the grids have rows seeds and columns lambda / w; a
# second run makes nothing, a damaged PNG is remade (the same bytes), other settings remake everything, and a
# report over seeds that were never made is refused.
set -u
cd "$(dirname "$0")/.."
pass=0; fail=0
ok()  { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
bin=./exp_sdxl/exp_sdxl
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

one_line_error() {   # $1 name, $2 pattern, rest: command
  local name=$1 pat=$2; shift 2
  if "$@" > /dev/null 2> "$tmp/err"; then bad "$name" "exit 0"; return; fi
  if [ "$(wc -l < "$tmp/err")" = 1 ] && grep -q -- "$pat" "$tmp/err"; then ok "$name"
  else bad "$name" "$(head -3 "$tmp/err")"; fi
}

help=$($bin --family sdxl --experiment --help)
missing=""
for o in family experiment model config variant lora names lambdas weights seeds bary-endpoints prompt \
         negative-prompt steps cfg width height stage grid-rows grid-cell out help part device; do
  grep -q -- "--$o" <<< "$help" || missing="$missing --$o"
  grep -q "\"$o\"" exp_sdxl/experiment.c || missing="$missing (not parsed: $o)"
done
[ -z "$missing" ] && ok "--experiment --help names every option" || bad "--experiment --help" "$missing"
n_parsed=$(grep -o '{"[a-z-]*", [a-z_]*_argument' exp_sdxl/experiment.c | wc -l)
[ "$n_parsed" = 24 ] && ok "24 options parsed, 24 documented" || bad "option count" "$n_parsed parsed"

./exp_sdxl/sdxl_tiny --out "$tmp/m" > /dev/null || { bad "sdxl_tiny" "failed"; echo "RESULT passed=$pass failed=$fail"; exit 1; }
M=$tmp/m/diffusers A=$tmp/m/lora_a_diffusers.safetensors B=$tmp/m/lora_b_kohya.safetensors
X=($bin --family sdxl --experiment --model "$M" --steps 2 --width 32 --height 32)
one_line_error "unknown flag rejected" "bogus" "${X[@]}" --lora "$A" --lora "$B" --bogus
one_line_error "one LoRA refused" "--lora" "${X[@]}" --lora "$A" --out "$tmp/x"
one_line_error "three LoRAs refused" "--lora" "${X[@]}" --lora "$A" --lora "$B" --lora "$A" --out "$tmp/x"
one_line_error "missing LoRA file named" "$tmp/none.safetensors" "${X[@]}" --lora "$A" --lora "$tmp/none.safetensors" --out "$tmp/x"
one_line_error "lambda outside [0, 1] refused" "--lambdas" "${X[@]}" --lora "$A" --lora "$B" --lambdas 0.5,1.5 --out "$tmp/x"
one_line_error "repeated w refused" "--weights" "${X[@]}" --lora "$A" --lora "$B" --weights 0.5,0.5 --out "$tmp/x"
one_line_error "empty seed range refused" "--seeds" "${X[@]}" --lora "$A" --lora "$B" --seeds 3-1 --out "$tmp/x"
one_line_error "repeated seed refused" "--seeds" "${X[@]}" --lora "$A" --lora "$B" --seeds 0-3,2 --out "$tmp/x"
one_line_error "bad --names refused" "--names" "${X[@]}" --lora "$A" --lora "$B" --names AF --out "$tmp/x"
one_line_error "bad --stage refused" "--stage" "${X[@]}" --lora "$A" --lora "$B" --stage fit --out "$tmp/x"
printf 'not a safetensors file' > "$tmp/junk.safetensors"
one_line_error "corrupt LoRA file named" "junk.safetensors" "${X[@]}" --lora "$A" --lora "$tmp/junk.safetensors" --seeds 0 --out "$tmp/x"
[ ! -e "$tmp/x/images.csv" ] && [ -z "$(ls "$tmp/x/images" 2>/dev/null)" ] && ok "failed runs left no image" ||
  bad "failed runs left no image" "$(ls -R "$tmp/x")"

O=$tmp/o
R=("${X[@]}" --lora "$A" --lora "$B" --seeds 0-1 --lambdas 0,0.5,1 --weights 0.5,1 --bary-endpoints --out "$O")
"${R[@]}" > /dev/null 2> "$tmp/log" && ok "the runner completes" || bad "the runner completes" "$(tail -3 "$tmp/log")"
I=$O/images
cmp -s "$I/barycenter_l1_s0.png" "$I/aux_AF_s0.png" && cmp -s "$I/barycenter_l1_s1.png" "$I/aux_AF_s1.png" &&
  ok "barycenter lambda = 1 (both UNets run) = aux_AF, bit for bit" || bad "lambda 1 = aux_AF" "differ"
cmp -s "$I/barycenter_l0_s0.png" "$I/aux_WM_s0.png" && ok "barycenter lambda = 0 = aux_WM, bit for bit" ||
  bad "lambda 0 = aux_WM" "differ"
! cmp -s "$I/barycenter_l0.5_s0.png" "$I/merged_w0.5_s0.png" && ! cmp -s "$I/aux_AF_s0.png" "$I/aux_WM_s0.png" &&
  ok "barycenter 0.5, merged 0.5 and the two fine-tunes differ" || bad "methods differ" "same images"
$bin --family sdxl --model "$M" --steps 2 --width 32 --height 32 --lora "$A" --lora-mode runtime --seed 1 \
  --out "$tmp/plain" > /dev/null 2>&1
cmp -s "$tmp/plain/sdxl_s1_0.png" "$I/aux_AF_s1.png" &&
  ok "aux_AF = the plain command with LoRA A (k = 1 = plain sampling; the same seeded latent)" ||
  bad "aux_AF = plain command" "differ"
rows=$(tail -n +2 "$O/images.csv" | wc -l)
[ "$rows" = 14 ] && ok "images.csv: 14 rows (2 seeds x (2 aux + 3 barycenter + 2 merged))" || bad "images.csv rows" "$rows"
head -1 "$O/images.csv" | grep -q '^method,lambda,seed,file,' && [ -f "$O/images.csv.meta" ] &&
  ok "images.csv: method,lambda,seed,file header and a .meta" || bad "images.csv header" "$(head -1 "$O/images.csv")"
grep -q '^aux_AF,,1,images/aux_AF_s1.png,1,' "$O/images.csv" && grep -q '^merged,0.5,0,images/merged_w0.5_s0.png,0.5,' "$O/images.csv" &&
  grep -q '^barycenter,0.5,1,images/barycenter_l0.5_s1.png,0.5,' "$O/images.csv" &&
  ok "rows: method, lambda (empty for the fine-tunes), seed, file" || bad "row contents" "$(head -4 "$O/images.csv")"
# the grids: rows seeds, columns lambda / w; 32 px cells and 4 px gaps
size() { od -An -tu1 -j 16 -N 8 "$1" | awk '{print $3*256+$4 "x" $7*256+$8}'; }
[ "$(size "$O/grid_barycenter.png")" = "112x76" ] && [ "$(size "$O/grid_merged.png")" = "76x76" ] &&
  [ "$(size "$O/grid_aux.png")" = "76x76" ] && [ -f "$O/grid_bary_vs_merged.png" ] &&
  ok "grids: 2 seeds x 3 lambdas, x 2 w, x 2 fine-tunes, barycenter vs merged" ||
  bad "grid sizes" "$(size "$O/grid_barycenter.png") $(size "$O/grid_merged.png")"
# clip_fraction reads the CSV and finds every method of the paper's table
exp_sdxl/clip_fraction --model tests/fixtures/clip/hf --tokenizer tests/fixtures/sdxl/clip_bpe_reduced.txt.gz \
  --text-heads 3 --vision-heads 4 --images "$O/images.csv" --out "$tmp/c" --compare results/paper/sdxl_clip.csv 2> /dev/null
matched=$(tail -n +2 "$tmp/c/clip_compare.csv" 2>/dev/null | awk -F, '$7 == 2' | wc -l)
[ "$matched" = 8 ] && ok "clip_fraction --compare matches all 8 paper rows (aux_AF, aux_WM, barycenter 0.5, merged 0.5)" ||
  bad "clip_fraction --compare" "$matched of 8 matched"

# resume: nothing to do; a damaged PNG is remade with the same bytes; other settings remake everything
"${R[@]}" > /dev/null 2> "$tmp/log"
grep -q ' 0 of 14 images to make' "$tmp/log" && ok "second run makes nothing" || bad "second run" "$(grep 'to make' "$tmp/log")"
cp "$I/merged_w1_s1.png" "$tmp/keep.png"; printf 'x' >> "$I/merged_w1_s1.png"
"${R[@]}" > /dev/null 2> "$tmp/log"
grep -q ' 1 of 14 images to make' "$tmp/log" && cmp -s "$I/merged_w1_s1.png" "$tmp/keep.png" &&
  ok "a damaged PNG is remade, the same bytes" || bad "damaged PNG" "$(grep 'to make' "$tmp/log")"
"${R[@]}" --seeds 1 --steps 3 --stage images > /dev/null 2> "$tmp/log"
grep -q ' 7 of 7 images to make' "$tmp/log" && ok "other settings (--steps) remake every image" ||
  bad "other settings" "$(grep 'to make' "$tmp/log")"
one_line_error "report over seeds never made refused" "missing" "${R[@]}" --seeds 0-5 --stage report
one_line_error "bad --part refused" "--part" "${R[@]}" --part 3/3
# array tasks: --part I/N slices the seeds; the report over all of them then needs nothing more
"${R[@]}" --seeds 0-4 --part 1/2 --stage images > /dev/null 2> "$tmp/log"
grep -q ' 21 of 21 images to make (3 seeds' "$tmp/log" && [ -f "$I/aux_AF_s4.png" ] && [ ! -f "$I/aux_AF_s5.png" ] &&
  ok "--part 1/2 of seeds 0-4 is seeds 2-4" ||
  bad "--part" "$(grep 'to make' "$tmp/log")"
echo "RESULT passed=$pass failed=$fail"
[ "$fail" = 0 ]
