#!/usr/bin/env bash
# run_all.sh: bad knobs fail with one line; --slurm submits aux -> n-array -> merge (+ theory) with the right
# dependencies (checked against a stand-in sbatch that records its arguments).
set -u
cd "$(dirname "$0")/.."
pass=0; fail=0
ok()  { echo "PASS $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

for args in "--profile fast" "--jobs 0" "--jobs x" "--device tpu" "--bogus"; do
  if ./run_all.sh $args --out "$tmp/x" >/dev/null 2>"$tmp/err"; then
    bad "run_all $args rejected" "exit 0"
  elif [ "$(wc -l < "$tmp/err")" = 1 ] && grep -q 'run_all.sh: error' "$tmp/err"; then
    ok "run_all $args rejected with one line"
  else
    bad "run_all $args rejected with one line" "$(cat "$tmp/err")"
  fi
done

mkdir -p "$tmp/bin"
cat > "$tmp/bin/sbatch" <<'EOS'
#!/usr/bin/env bash
n=$(( $(cat "$SBATCH_LOG.count" 2>/dev/null || echo 0) + 1 )); echo $n > "$SBATCH_LOG.count"
printf '%s\n' "$*" >> "$SBATCH_LOG"
echo "100$n"
EOS
chmod +x "$tmp/bin/sbatch"
if PATH="$tmp/bin:$PATH" SBATCH_LOG="$tmp/sbatch.log" ./run_all.sh --slurm --profile cpu --out "$tmp/r" > "$tmp/out" 2>&1; then
  ok "run_all --slurm exits 0"
else
  bad "run_all --slurm exits 0" "$(cat "$tmp/out")"
fi
log="$tmp/sbatch.log"
[ "$(wc -l < "$log" 2>/dev/null)" = 4 ] && ok "four submissions (aux, n array, merge, theory)" || bad "four submissions" "$(cat "$log")"
sed -n 1p "$log" | grep -q -- '--stage aux' && ok "first job trains the auxiliaries" || bad "aux job" "$(sed -n 1p "$log")"
sed -n 2p "$log" | grep -q -- '--dependency=afterok:1001 --array=0-5' && ok "n array (6 sizes) waits for aux" || bad "array job" "$(sed -n 2p "$log")"
sed -n 3p "$log" | grep -q -- '--dependency=afterok:1002' && sed -n 3p "$log" | grep -q -- '--stage merge' && ok "merge waits for the array" || bad "merge job" "$(sed -n 3p "$log")"
echo "RESULT passed=$pass failed=$fail"
