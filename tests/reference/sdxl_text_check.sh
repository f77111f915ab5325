#!/usr/bin/env bash
# sdxl_text_check.sh -- the SDXL text side against the Python reference (issue 9): regenerates the fixtures of
# tests/reference/sdxl_text_ref.py (open_clip v2.23.0 on Debian's python3-torch) into a temporary folder and runs
# the C tests on them, with the REAL CLIP vocabulary that open_clip ships (SF_CLIP_BPE) and 3,000 random prompts
# (clip_fuzz.json: awkward pieces and random code points, never committed), then checks that the
# committed fixtures are what the reference writes today (byte for byte).
# Needs SDXL_REFENV: the folder built by shared/anchors/sdxl_reference_env.sh (diffusers/, hub/, open_clip/, stub/).
# Usage: SDXL_REFENV=DIR tests/reference/sdxl_text_check.sh [--write]   (--write: regenerate the committed fixtures)
# Exit status: 0 pass, 1 mismatch, 2 no reference environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
env_dir=${SDXL_REFENV:-}
if [ -z "$env_dir" ] || [ ! -d "$env_dir/open_clip/src/open_clip" ]; then
  echo "sdxl_text_check: SKIP: set SDXL_REFENV to a folder built by shared/anchors/sdxl_reference_env.sh" >&2
  exit 2
fi
export PYTHONPATH="$env_dir/diffusers/src:$env_dir/hub/src:$env_dir/open_clip/src:$env_dir/stub"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PYTHON:-/usr/bin/python3}
bpe="$env_dir/open_clip/src/open_clip/bpe_simple_vocab_16e6.txt.gz"
if [ "${1:-}" = "--write" ]; then
  "$PY" tests/reference/sdxl_text_ref.py tests/fixtures/sdxl
  exit 0
fi
make --no-print-directory -s tests/bin/test_clip_tokenizer tests/bin/test_sdxl_text
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
"$PY" tests/reference/sdxl_text_ref.py "$D" --fuzz=3000
rc=0
for t in tests/bin/test_clip_tokenizer tests/bin/test_sdxl_text; do
  SF_SDXL_FIXTURES=$D SF_CLIP_BPE=$bpe "$t" | grep -E '^(FAIL|SKIP|RESULT)' | sed "s|^|[$(basename "$t")] |" || true
  SF_SDXL_FIXTURES=$D SF_CLIP_BPE=$bpe "$t" >/dev/null || rc=1
done
# the committed fixtures must be what the reference writes (a stale fixture would test yesterday's reference)
for f in $(cd "$D" && find . -type f ! -name clip_fuzz.json | sort); do
  cmp -s "$D/$f" "tests/fixtures/sdxl/$f" || { echo "sdxl_text_check: committed fixture differs: $f"; rc=1; }
done
[ $rc = 0 ] && echo "sdxl_text_check: PASS (fresh reference fixtures, real vocabulary, committed fixtures current)"
exit $rc
