#!/usr/bin/env bash
# Shell test of exp_sdxl/clip_fraction (the CLIP metric command, issue 10 item 2) on the tiny model of
# tests/fixtures/clip: both model layouts give the counts, fractions and intervals that clip_metric_ref.py computed
# with open_clip + scipy (fractions.csv); --ci wilson; --pair; and bad input (flag, CSV, image, model) fails with
# one line and leaves no output. Prints PASS/FAIL lines and "RESULT passed=P failed=F".
set -u
cd "$(dirname "$0")/.."
passed=0; failed=0
check() {   # check NAME STATUS [DETAIL]
  if [ "$2" = 0 ]; then echo "PASS $1"; passed=$((passed + 1)); else echo "FAIL $1: ${3:-}"; failed=$((failed + 1)); fi
}
bin=exp_sdxl/clip_fraction
fx=tests/fixtures/clip
tok=tests/fixtures/sdxl/clip_bpe_reduced.txt.gz
[ -x $bin ] || { echo "FAIL $bin built: missing (run make)"; echo "RESULT passed=0 failed=1"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
heads="--text-heads 3 --vision-heads 4"

# expected: method,lambda,pair -> n,k,fraction,lo,hi (cp columns 7,8; wilson 9,10)
compare() {   # compare OURS COLLO COLHI -> 0 when every row matches to 1e-6
  awk -F, -v lo="$2" -v hi="$3" 'NR == FNR { if (FNR > 1) e[$1 "," $2 "," $3] = $4 "," $5 "," $6 "," $lo "," $hi; next }
    FNR > 1 { split(e[$1 "," $2 "," $3], x, ",");
              if (!($1 "," $2 "," $3 in e) || $6 != x[1] || $7 != x[2] || ($8 - x[3])^2 > 1e-12 ||
                  ($9 - x[4])^2 > 1e-12 || ($10 - x[5])^2 > 1e-12) bad++; n++ }
    END { exit !(n == 4 && bad == 0) }' $fx/fractions.csv "$1"
}
for layout in hf openclip.safetensors; do
  $bin --model $fx/$layout --tokenizer $tok --images $fx/images.csv --out "$tmp/$layout" $heads 2> "$tmp/err"
  check "clip_fraction on the $layout layout exits 0" $? "$(tail -n 2 "$tmp/err")"
  for f in clip_scores.csv clip_fractions.csv; do
    [ -s "$tmp/$layout/$f" ] && [ -s "$tmp/$layout/$f.meta" ]; check "$layout: $f and its .meta" $? "missing"
  done
  [ "$(wc -l < "$tmp/$layout/clip_scores.csv")" = 21 ]; check "$layout: 10 images x 2 pairs scored" $? "line count"
  compare "$tmp/$layout/clip_fractions.csv" 7 8
  check "$layout: counts, fractions and Clopper-Pearson intervals equal open_clip + scipy's" $? \
    "$(cat "$tmp/$layout/clip_fractions.csv")"
done
$bin --model $fx/hf --tokenizer $tok --images $fx/images.csv --out "$tmp/w" --ci wilson $heads 2> /dev/null
compare "$tmp/w/clip_fractions.csv" 9 10; check "--ci wilson equals scipy's Wilson interval" $?
# a custom pair named, in the paper's order; same numbers for the gender pair alone
$bin --model $fx/hf --tokenizer $tok --images $fx/images.csv --out "$tmp/p" $heads \
  --pair "gender=a photo of a female scientist|a photo of a male scientist" 2> /dev/null
[ "$(grep -c ,gender, "$tmp/p/clip_fractions.csv")" = 2 ] && [ "$(wc -l < "$tmp/p/clip_fractions.csv")" = 3 ] &&
  diff <(grep ,gender, "$tmp/p/clip_fractions.csv") <(grep ,gender, "$tmp/hf/clip_fractions.csv") > /dev/null
check "--pair gives one pair, with the same numbers" $?

# --compare: paper rows beside ours by (pair, method = model, lambda = weight numerically)
printf 'pair,model,weight,fraction_first,n\ngender,A,.50,0.3,512\ngender,B,1.0,0.9,512\nethnicity,merged,0.5,0.316,512\n' \
  > "$tmp/paper.csv"
$bin --model $fx/hf --tokenizer $tok --images $fx/images.csv --out "$tmp/c" $heads --compare "$tmp/paper.csv" 2> /dev/null
awk -F, 'NR == 2 && $6 == "0.200000" && $7 == 5 && $10 == 1 { a = 1 } NR == 3 && $6 == "0.000000" && $10 == 0 { b = 1 }
         NR == 4 && $6 == "" { c = 1 } END { exit !(a && b && c && NR == 4) }' "$tmp/c/clip_compare.csv"
check "--compare: matched rows with ours and whether the paper's value is inside our interval; unmatched left empty" $? \
  "$(cat "$tmp/c/clip_compare.csv" 2>&1)"
$bin --model $fx/hf --tokenizer $tok --images $fx/images.csv --out "$tmp/c2" $heads --compare results/paper/sdxl_clip.csv \
  2> /dev/null && [ "$(wc -l < "$tmp/c2/clip_compare.csv")" = 9 ]
check "--compare reads the committed results/paper/sdxl_clip.csv (8 rows)" $?

# bad input: one line, non-zero exit, no output files
bad() {   # bad NAME EXPECTED-SUBSTRING ARGS...
  local name=$1 want=$2; shift 2
  rm -rf "$tmp/bad"
  $bin "$@" --out "$tmp/bad" > "$tmp/out" 2> "$tmp/err"
  local rc=$?
  # progress lines ("clip_fraction: scoring ...") may precede it; the error is one line
  [ $rc != 0 ] && [ "$(grep -c ': error: ' "$tmp/err")" = 1 ] && grep ': error: ' "$tmp/err" | grep -q -- "$want" &&
    [ -z "$(ls "$tmp/bad" 2>/dev/null | grep -v '^$')" ]
  check "$name" $? "rc $rc: $(cat "$tmp/err")"
}
bad "unknown flag named" "--nope" --model $fx/hf --images $fx/images.csv --nope
bad "--ci with a bad value named" "--ci" --model $fx/hf --images $fx/images.csv --ci exact
bad "--pair without a bar named" "--pair" --model $fx/hf --images $fx/images.csv --pair "x=only one"
bad "missing --model" "--model" --images $fx/images.csv
printf 'method,lambda,path\nA,1,img/rgb_40x56.png\n' > "$tmp/nofile.csv"
bad "CSV without a file column: file named" "nofile.csv:1" --model $fx/hf --tokenizer $tok --images "$tmp/nofile.csv" $heads
printf 'method,file\nA,%s/img/rgb_40x56.png,extra\n' "$PWD/$fx" > "$tmp/fields.csv"
bad "CSV row with too many fields: file and line named" "fields.csv:2" --model $fx/hf --tokenizer $tok --images "$tmp/fields.csv" $heads
{ echo method,file; echo "A,$PWD/$fx/img/rgb_40x56.png"; echo "B,$PWD/$fx/img/bad_transparent.png"; } > "$tmp/img.csv"
bad "a refused image: file named, nothing written" "bad_transparent.png" --model $fx/hf --tokenizer $tok --images "$tmp/img.csv" $heads
{ echo method,file; echo "A,$tmp/missing.png"; } > "$tmp/miss.csv"
bad "a missing image: file named" "missing.png" --model $fx/hf --tokenizer $tok --images "$tmp/miss.csv" $heads
bad "a model that is not CLIP: file named" "text_single.safetensors" --model tests/fixtures/sdxl/text_single.safetensors \
  --tokenizer $tok --images $fx/images.csv $heads
bad "open_clip file without head counts: says what to give" "head count" --model $fx/openclip.safetensors \
  --tokenizer $tok --images $fx/images.csv
printf 'pair,model,weight,fraction_first,n\ngender,A,0.5,1.7,512\n' > "$tmp/badpaper.csv"
bad "--compare file with a fraction out of range: file and line named" "badpaper.csv:2" --model $fx/hf --tokenizer $tok \
  --images $fx/images.csv $heads --compare "$tmp/badpaper.csv"
echo "RESULT passed=$passed failed=$failed"
[ $failed = 0 ]
