#!/usr/bin/env bash
# emnist_probe.sh [collect]: the measurement behind exp_emnist's `cpu` profile (issue 12). Trains single
# auxiliaries with `exp_emnist --probe` under several recipes (batch, learning rate and schedule, images) and
# classifies their samples every --probe-every images and, at the end, at several sampler step counts. Probes
# run side by side on one thread each; quality per optimiser step does not depend on the load, and the README
# converts steps to idle-machine time with the engine's measured throughput.
# Writes results/emnist/probe/probe_<recipe>.csv per recipe and results/emnist/probe_summary.csv (all rows,
# recipe in the first column). `emnist_probe.sh collect` only rebuilds the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./exp_emnist/exp_emnist
out=results/emnist/probe
mkdir -p "$out"
probe() { nice -n 5 $bin --profile cpu --out "$out" --threads 1 --quiet --probe-every 100000 \
            --probe-steps 250,100,500,1000 "$@"; }
if [ "${1:-}" != collect ]; then
  $bin --profile cpu --out "$out" --stage classifier --quiet        # the cpu profile's classifier, once
  # round 1 (measured 2026-11-27): today's recipe, batch 200, constant 1e-3, on the 90:10 auxiliary
  probe --probe 4 --aux-images 300000 &
  # not measured yet (the shared machine left no time): smaller batches, warm-up + cosine decay, the 10:90
  # auxiliary, the cpu profile's 1,450 images. For example:
  #   probe --probe 4 --aux-images 250000 --aux-batch 100 &
  #   probe --probe 4 --aux-images 250000 --aux-sched cosine --aux-warmup 10000 &
  #   probe --probe 1 --aux-train 1450 --aux-val 290 --aux-images 250000 &
  wait
fi
tmp=$(mktemp)
first=1
for f in "$out"/probe_*.csv; do
  r=$(basename "$f" .csv); r=${r#probe_}
  if [ $first = 1 ]; then echo "recipe,$(head -1 "$f")" > "$tmp"; first=0; fi
  tail -n +2 "$f" | sed "s/^/$r,/" >> "$tmp"
done
mv "$tmp" results/emnist/probe_summary.csv
echo "results/emnist/probe_summary.csv: $(($(wc -l < results/emnist/probe_summary.csv) - 1)) rows"
