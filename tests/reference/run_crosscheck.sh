#!/usr/bin/env bash
# run_crosscheck.sh -- one command for the PyTorch cross-check of the C ScoreNet (common/nn/scorenet.c), the
# paper's image score network (src/model_EMNIST.py; paper §5.1, App. G):
#   1. builds bench/bin/bench_scorenet (the C side),
#   2. bench_scorenet --dump DIR: our checkpoint (safetensors, state_dict names) + inputs + our outputs,
#   3. scorenet_ref.py DIR: PyTorch (fp32 and fp64) loads OUR checkpoint and computes the same quantities,
#   4. bench_scorenet --compare DIR: max abs / rel errors of forward, DSM loss, parameter grads, input grad.
# Exit status: 0 pass, 1 mismatch, 2 no PyTorch available (apt-get install python3-torch).
# Usage: tests/reference/run_crosscheck.sh [--keep DIR]    (OMP_NUM_THREADS defaults to 1)
set -euo pipefail
cd "$(dirname "$0")/../.."
keep=""
if [ "${1:-}" = "--keep" ]; then keep=${2:?--keep needs a directory}; fi
PY=""
for c in "${PYTHON:-}" /usr/bin/python3 python3; do
  [ -n "$c" ] || continue
  if "$c" -c "import torch" >/dev/null 2>&1; then PY=$c; break; fi
done
if [ -z "$PY" ]; then
  echo "run_crosscheck: SKIP: no Python with torch found (Debian: apt-get install python3-torch)" >&2
  exit 2
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
make --no-print-directory -s bench/bin/bench_scorenet
if [ -n "$keep" ]; then mkdir -p "$keep"; D=$keep; else D=$(mktemp -d); trap 'rm -rf "$D"' EXIT; fi
bench/bin/bench_scorenet --dump "$D"
"$PY" tests/reference/scorenet_ref.py "$D"
bench/bin/bench_scorenet --compare "$D"
