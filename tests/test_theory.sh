#!/usr/bin/env bash
# Shell test of the theory checks (theory/): runs theory/run_theory.sh --profile smoke into a temp dir, checks that
# every CSV/.meta (and PNG when gnuplot is installed) exists and that the key numbers are sane, and provokes one
# bad-flag error per program (one-line message, non-zero exit). Prints PASS/FAIL lines and
# "RESULT passed=P failed=F" (tests/run.sh sums these).
set -u
cd "$(dirname "$0")/.."
passed=0; failed=0
check() {   # check NAME CONDITION-EXIT-STATUS [DETAIL]
  if [ "$2" = 0 ]; then echo "PASS $1"; passed=$((passed + 1)); else echo "FAIL $1: ${3:-}"; failed=$((failed + 1)); fi
}
# awk-based numeric test: num_ok NAME VALUE EXPR  (EXPR uses v, e.g. "v < 1e-8")
num_ok() {
  local v=$2
  if [ -n "$v" ] && awk -v v="$v" "BEGIN { exit !($3) }"; then check "$1" 0; else check "$1" 1 "value '$v' fails $3"; fi
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for p in gaussian_bary lemma6 convexity rates; do
  [ -x theory/theory_$p ] || { echo "FAIL theory_$p built: theory/theory_$p missing (run make)"; echo "RESULT passed=$passed failed=$((failed + 1))"; exit 1; }
done

OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} theory/run_theory.sh --profile smoke --out "$tmp/out" > "$tmp/stdout" 2> "$tmp/stderr"
rc=$?
check "run_theory.sh smoke exits 0" $rc "$(tail -n 3 "$tmp/stderr")"
for f in gaussian_bary.csv gaussian_bary_fig11.csv lemma6_gauss.csv lemma6_mixture.csv convexity_k2.csv convexity_k3.csv \
         convexity_fw.csv rates_n.csv rates_ttilde.csv; do
  [ -s "$tmp/out/$f" ] && [ -s "$tmp/out/$f.meta" ] && grep -q '^profile: smoke' "$tmp/out/$f.meta"
  check "output $f (+ .meta, profile recorded)" $? "missing or empty"
done
if command -v gnuplot >/dev/null 2>&1; then
  for g in results/theory/*.gp; do
    png="$tmp/out/$(basename "$g" .gp).png"
    [ -s "$png" ]; check "plot $(basename "$png")" $? "not rendered"
  done
else
  echo "SKIP plots: gnuplot not installed"
fi
out="$tmp/stdout"
# Thm 1: closed form vs quadrature
num_ok "gaussian_bary max error < 1e-8" "$(sed -n 's/^gaussian_bary: max error \([^ ]*\).*/\1/p' "$out")" "v < 1e-8"
# Lemma 6 (a): equal variances -> no gap; control endpoints exact; unequal variances -> a real gap; EM samples agree
line=$(grep '^lemma6_gauss: max KL gap' "$out")
num_ok "lemma6 VE equal-variance gap < 1e-10" "$(echo "$line" | sed -n 's/.*VE equal_var \([^,]*\),.*/\1/p')" "v < 1e-10"
num_ok "lemma6 OU equal-variance gap < 1e-10" "$(echo "$line" | sed -n 's/.*OU equal_var \([^,]*\),.*/\1/p')" "v < 1e-10"
num_ok "lemma6 VE unequal-variance gap > 1e-3 (measured, not assumed)" "$(echo "$line" | sed -n 's/.*VE unequal_var \([^,]*\),.*/\1/p')" "v > 1e-3"
num_ok "lemma6 control lambda in {0,1} KL < 1e-10" "$(sed -n 's/.*control.*max KL \([^ ]*\).*/\1/p' "$out")" "v < 1e-10"
num_ok "lemma6 EM samples vs exact EM law |z| < 5" "$(sed -n 's/.*max |z| = \([^ ]*\).*/\1/p' "$out")" "v < 5"
num_ok "lemma6 ODE vs fine EM law KL < 1e-5" "$(sed -n 's/.*ODE vs EM law: max KL [^ ]* at [0-9]* steps, \([^ ]*\) at.*/\1/p' "$out")" "v < 1e-5"
num_ok "lemma6 mixture MC floor W1 < 0.5" "$(sed -n 's/.*Monte-Carlo floor max \([^ ]*\).*/\1/p' "$out")" "v < 0.5"
# Prop. 1: convexity and Frank-Wolfe
grep -q '^convexity_k2: min second difference.*-> convex$' "$out"; check "convexity k=2 second differences >= -tol" $?
grep -q '^convexity_k3: .*-> convex;' "$out"; check "convexity k=3 second differences >= -tol" $?
n=$(grep -c 'bound violated at 0 iterations' "$out"); num_ok "Frank-Wolfe O(1/t) bound never violated (4 runs)" "$n" "v == 4"
# Thm 4: rates slope negative for the planted case at T~ = 0.1
num_ok "rates planted T~=0.1 slope of TV(p_hat,p_inf) < 0" "$(sed -n 's/^rates: planted T~=1e-01.*TV(p_hat, p_inf) \([^ ,]*\),.*/\1/p' "$out")" "v < 0"
num_ok "rates planted lambda_inf = lambda0 at T~=0.1" "$(sed -n 's/^rates: planted T~=1e-01: lambda_inf = (\([^,]*\),.*/\1/p' "$out")" "v > 0.5999 && v < 0.6001"

# one bad-flag case per program: one line on stderr containing "error", non-zero exit
bad() {   # bad NAME CMD...
  local name=$1; shift
  "$@" > "$tmp/bad.out" 2> "$tmp/bad.err"; local rc=$?
  local lines; lines=$(wc -l < "$tmp/bad.err")
  if [ $rc -ne 0 ] && [ "$lines" -eq 1 ] && grep -q 'error' "$tmp/bad.err"; then check "$name" 0
  else check "$name" 1 "rc=$rc, stderr lines=$lines: $(head -c 200 "$tmp/bad.err")"; fi
}
bad "theory_gaussian_bary --profile bogus: one-line error" theory/theory_gaussian_bary --profile bogus --out "$tmp/b"
bad "theory_lemma6 --seed abc: one-line error" theory/theory_lemma6 --seed abc --out "$tmp/b"
bad "theory_convexity --frobnicate: one-line error" theory/theory_convexity --frobnicate
bad "theory_rates --out (missing value): one-line error" theory/theory_rates --out
bad "run_theory.sh --profile bogus: one-line error" theory/run_theory.sh --profile bogus
theory/theory_rates --help > "$tmp/help" 2>&1; [ $? = 0 ] && grep -q -- '--profile' "$tmp/help"; check "theory_rates --help" $?

echo "RESULT passed=$passed failed=$failed"
[ "$failed" = 0 ]
