#!/usr/bin/env bash
# run_all.sh: bad knobs fail with one line; --slurm submits exp_gaussian (aux -> n array -> merge), exp_emnist
# (classifier, aux -> n array -> evaluation -> report), theory, the digits experiment (one job), and with the
# user's weights exp_sdxl (array over seed slices -> report + CLIP metric) with the right dependencies and the n
# lists the binaries print (checked against a stand-in sbatch that records the dependency graph).
set -u
cd "$(dirname "$0")/.."
pass=0; fail=0
ok()  { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

for args in "--profile fast" "--jobs 0" "--jobs x" "--device tpu" "--bogus" "--sdxl-jobs 0"; do
  if ./run_all.sh $args --out "$tmp/x" >/dev/null 2>"$tmp/err"; then
    bad "run_all $args rejected" "exit 0"
  elif [ "$(wc -l < "$tmp/err")" = 1 ] && grep -q 'run_all.sh: error' "$tmp/err"; then
    ok "run_all $args rejected with one line"
  else
    bad "run_all $args rejected with one line" "$(cat "$tmp/err")"
  fi
done

# A stand-in sbatch that records the dependency graph: one line per submission, "id|name|dependencies|array|command"
mkdir -p "$tmp/bin"
cat > "$tmp/bin/sbatch" <<'EOS'
#!/usr/bin/env bash
n=$(( $(cat "$SBATCH_LOG.count" 2>/dev/null || echo 0) + 1 )); echo $n > "$SBATCH_LOG.count"
name="" dep="" arr="" wrap=""
while [ $# -gt 0 ]; do
  case "$1" in
    --job-name) name=$2; shift 2 ;;
    --job-name=*) name=${1#*=}; shift ;;
    --dependency=*) dep=${1#--dependency=afterok:}; shift ;;
    --array=*) arr=${1#--array=}; shift ;;
    --wrap) wrap=$2; shift 2 ;;
    *) shift ;;
  esac
done
printf '%s|%s|%s|%s|%s\n' "$((1000 + n))" "$name" "$dep" "$arr" "$wrap" >> "$SBATCH_LOG"
echo "$((1000 + n))"
EOS
chmod +x "$tmp/bin/sbatch"
if PATH="$tmp/bin:$PATH" SBATCH_LOG="$tmp/sbatch.log" ./run_all.sh --slurm --profile cpu --out "$tmp/r" > "$tmp/out" 2>&1; then
  ok "run_all --slurm exits 0"
else
  bad "run_all --slurm exits 0" "$(cat "$tmp/out")"
fi
log="$tmp/sbatch.log"
id()   { awk -F'|' -v n="$1" '$2 == n {print $1}' "$log"; }
deps() { awk -F'|' -v n="$1" '$2 == n {print $3}' "$log"; }
arr()  { awk -F'|' -v n="$1" '$2 == n {print $4}' "$log"; }
cmd()  { awk -F'|' -v n="$1" '$2 == n {print $5}' "$log"; }
# edge NAME DEPNAME...: NAME's afterok list is exactly the ids of DEPNAME... (none: no dependency)
edge() {
  local name=$1; shift
  local want="" d
  for d in "$@"; do want="$want${want:+:}$(id "$d")"; done
  [ -n "$(id "$name")" ] && [ "$(deps "$name")" = "$want" ] && ok "slurm: $name waits for ${*:-nothing}" ||
    bad "slurm: $name waits for ${*:-nothing}" "$(grep "|$name|" "$log")"
}
[ "$(wc -l < "$log" 2>/dev/null)" = 11 ] && ok "eleven submissions (gaussian 3, emnist 6, theory 1, digits 1)" || bad "eleven submissions" "$(cat "$log")"
edge sf-eg-aux
edge sf-eg-n sf-eg-aux
edge sf-eg-merge sf-eg-n
edge sf-ee-clf
edge sf-ee-aux
edge sf-ee-n sf-ee-aux
edge sf-ee-eval sf-ee-clf sf-ee-n
edge sf-ee-eval-n sf-ee-eval
edge sf-ee-report sf-ee-eval-n
edge sf-theory
edge sf-digits
cmd sf-digits | grep -q -- "--family digits --profile cpu" && ok "slurm: sf-digits runs exp_sdxl --family digits --profile cpu" ||
  bad "slurm: sf-digits runs the digits experiment" "$(grep '|sf-digits|' "$log")"
# the n lists are the binaries' (--print-n-list), in the arrays and in the commands
eg_ns=$(./exp_gaussian/exp_gaussian --profile cpu --print-n-list)
ee_ns=$(./exp_emnist/exp_emnist --profile cpu --print-n-list)
set -- $eg_ns; eg_k=$#
set -- $ee_ns; ee_k=$#; ee_first=$1; shift; ee_rest="$*"
[ "$(arr sf-eg-n)" = "0-$((eg_k - 1))" ] && cmd sf-eg-n | grep -qF "nl=($eg_ns)" && cmd sf-eg-n | grep -q -- '--stage n' &&
  ok "gaussian n array = exp_gaussian --print-n-list ($eg_ns)" || bad "gaussian n array" "$(grep '|sf-eg-n|' "$log")"
[ "$(arr sf-ee-n)" = "0-$((ee_k - 1))" ] && cmd sf-ee-n | grep -qF "nl=($ee_ns)" && cmd sf-ee-n | grep -q -- '--stage n' &&
  ok "emnist n array = exp_emnist --print-n-list ($ee_ns)" || bad "emnist n array" "$(grep '|sf-ee-n|' "$log")"
cmd sf-ee-eval | grep -q -- "--stage eval --n $ee_first\$" && [ "$(arr sf-ee-eval-n)" = "0-$((ee_k - 2))" ] &&
  cmd sf-ee-eval-n | grep -qF "nl=($ee_rest)" && ok "emnist evaluation: first n with the auxiliaries, then the other n" ||
  bad "emnist evaluation split" "$(grep '|sf-ee-eval' "$log")"
for j in sf-eg-aux:'--stage aux' sf-eg-merge:'--stage merge' sf-ee-clf:'--stage classifier' sf-ee-aux:'--stage aux' \
         sf-ee-report:'--stage report'; do
  cmd "${j%%:*}" | grep -q -- "${j#*:}" && cmd "${j%%:*}" | grep -q -- "--profile cpu" && ok "slurm: ${j%%:*} runs ${j#*:}" ||
    bad "slurm: ${j%%:*} runs ${j#*:}" "$(grep "|${j%%:*}|" "$log")"
done
# --only restricts the submissions; smoke picks exp_emnist's smoke profile and its single n
rm -f "$log" "$log.count"
PATH="$tmp/bin:$PATH" SBATCH_LOG="$log" ./run_all.sh --slurm --profile smoke --only emnist --out "$tmp/s" > "$tmp/out" 2>&1
names=$(cut -d'|' -f2 "$log" | tr '\n' ' ')
if [ "$names" = "sf-ee-clf sf-ee-aux sf-ee-n sf-ee-eval sf-ee-report " ] && cmd sf-ee-n | grep -q -- '--profile smoke' &&
   [ "$(arr sf-ee-n)" = "0-$(( $(./exp_emnist/exp_emnist --profile smoke --print-n-list | wc -w) - 1 ))" ] &&
   [ "$(deps sf-ee-report)" = "$(id sf-ee-eval)" ]; then
  ok "--only emnist --profile smoke: emnist jobs only, smoke profile, report after the single evaluation"
else
  bad "--only emnist --profile smoke" "$(cat "$log")"
fi
# the SDXL experiment: without the weights one line says what to give; with them an array over seed slices, then
# the report and the CLIP metric against the paper's table
rm -f "$log" "$log.count"
env -u SDXL_MODEL -u SDXL_LORAS -u CLIP_MODEL PATH="$tmp/bin:$PATH" SBATCH_LOG="$log" ./run_all.sh --slurm --only sdxl \
  --out "$tmp/s" > "$tmp/out" 2>&1
[ "$(grep -ci sdxl "$tmp/out")" = 1 ] && grep -q 'SDXL experiment skipped: give SDXL_MODEL=.*SDXL_LORAS=.*CLIP_MODEL=' "$tmp/out" &&
  [ ! -s "$log" ] && ok "no SDXL weights: one line says what to give, nothing submitted" ||
  bad "SDXL skip line" "$(cat "$tmp/out")"
rm -f "$log" "$log.count"
PATH="$tmp/bin:$PATH" SBATCH_LOG="$log" SDXL_MODEL=/m/sdxl SDXL_LORAS="/l/af.safetensors /l/wm.safetensors" \
  CLIP_MODEL=/m/clip ./run_all.sh --slurm --only sdxl --sdxl-jobs 8 --out "$tmp/s" > "$tmp/out" 2>&1
names=$(cut -d'|' -f2 "$log" | tr '\n' ' ')
if [ "$names" = "sf-sdxl-images sf-sdxl-report " ] && [ "$(arr sf-sdxl-images)" = "0-7" ] &&
   [ "$(deps sf-sdxl-report)" = "$(id sf-sdxl-images)" ] &&
   cmd sf-sdxl-images | grep -q -- '--experiment --model /m/sdxl --lora /l/af.safetensors --lora /l/wm.safetensors --seeds 0-511' &&
   cmd sf-sdxl-images | grep -q -- '--stage images --part $SLURM_ARRAY_TASK_ID/8' &&
   cmd sf-sdxl-report | grep -q -- '--stage report && ./exp_sdxl/clip_fraction --model /m/clip --images' &&
   cmd sf-sdxl-report | grep -q -- '--compare results/paper/sdxl_clip.csv'; then
  ok "sdxl --slurm: an array of 8 seed slices, then report + clip_fraction --compare after it"
else
  bad "sdxl --slurm" "$(cat "$log" "$tmp/out")"
fi
# --print-n-list is a query: it prints one line and creates nothing
for b in exp_gaussian/exp_gaussian exp_emnist/exp_emnist; do
  o=$("./$b" --n 96,32 --out "$tmp/none/x" --print-n-list 2>&1)
  [ "$o" = "96 32" ] && [ ! -e "$tmp/none" ] && ok "$b --print-n-list prints --n and creates nothing" ||
    bad "$b --print-n-list" "'$o'"
done
echo "RESULT passed=$pass failed=$fail"
