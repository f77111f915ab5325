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
  # round 1 (measured 2026-11-27): batch 200, constant 1e-3, on the 90:10 auxiliary
  probe --probe 4 --aux-batch 200 --aux-images 300000 &
  # round 2 (2026-11-27): the 10:90 auxiliary at batch 200, constant and warm-up + cosine (lr 2e-3)
  probe --probe 1 --aux-batch 200 --aux-images 300000 &
  wait
  probe --probe 1 --aux-batch 200 --aux-lr 2e-3 --aux-sched cosine --aux-warmup 10000 --aux-images 300000 &
  # round 3 (2026-11-27/28): smaller batches (more optimiser steps for the same images), both ends of the
  # mixture, and the shared warm start (400,000 images on the four sets, then each auxiliary fine-tuned)
  probe --probe 1 --aux-batch 64 --aux-images 300000 &
  wait
  probe --probe 1 --aux-batch 32 --aux-images 300000 &
  probe --probe 4 --aux-batch 64 --aux-images 300000 &
  wait
  probe --probe 1 --aux-batch 200 --aux-init pool --pool-images 400000 --aux-images 200000 --probe-every 50000 &
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
