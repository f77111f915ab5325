#!/usr/bin/env bash
# Run the four theory checks (Thm 1, Thm 2/Lemma 6, Prop. 1, Thm 4) for a profile into an output directory and
# render their PNGs with the committed gnuplot scripts in results/theory/*.gp.
# Usage: theory/run_theory.sh [--profile smoke|cpu|paper] [--out DIR] [--seed N]
# (called by run_all.sh as `theory/run_theory.sh --profile P --out DIR`). Each program's stdout (the numbers)
# goes to DIR/<program>.txt as well as to this script's stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
profile=paper; out="$here/results/theory"; seed=1
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=${2:?--profile needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    --seed) seed=${2:?--seed needs a value}; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_theory.sh: error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$profile" in smoke|cpu|paper) ;; *) echo "run_theory.sh: error: --profile: '$profile' is not one of smoke|cpu|paper" >&2; exit 2 ;; esac
mkdir -p "$out"
cd "$here"
status=0
for p in gaussian_bary lemma6 convexity rates; do
  bin="theory/theory_$p"
  if [ ! -x "$bin" ]; then echo "run_theory.sh: error: $bin is not built (run make)" >&2; exit 1; fi
  echo "== theory_$p --profile $profile --out $out --seed $seed" >&2
  start=$(date +%s)
  if ! "$bin" --profile "$profile" --out "$out" --seed "$seed" | tee "$out/theory_$p.txt"; then
    echo "run_theory.sh: theory_$p failed" >&2; status=1
  fi
  echo "== theory_$p: $(( $(date +%s) - start )) s" >&2
done
if command -v gnuplot >/dev/null 2>&1; then
  for g in results/theory/*.gp; do
    gnuplot -e "dir='$out'" "$g" || { echo "run_theory.sh: gnuplot $g failed" >&2; status=1; }
  done
  echo "run_theory.sh: plots in $out" >&2
else
  echo "run_theory.sh: gnuplot not found: CSVs written, PNGs skipped (install gnuplot-nox)" >&2
fi
exit $status
