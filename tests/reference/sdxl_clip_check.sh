#!/usr/bin/env bash
# sdxl_clip_check.sh -- the CLIP metric (issue 10 item 2) against the Python reference: regenerates the fixtures of
# tests/reference/clip_metric_ref.py (open_clip v2.23.0, torchvision 0.14, Pillow 9.4, scipy on Debian's
# python3-torch) into a temporary folder, runs test_clip_metric and test_clip_fraction.sh on them, then checks that
# the committed fixtures are what the reference writes today (byte for byte). The real-vocabulary ids of the
# metric's four prompts are checked by test_clip_tokenizer (sdxl_text_check.sh, SF_CLIP_BPE).
# Needs SDXL_REFENV: the folder built by shared/anchors/sdxl_reference_env.sh (diffusers/, hub/, open_clip/, stub/).
# Usage: SDXL_REFENV=DIR tests/reference/sdxl_clip_check.sh [--write]   (--write: regenerate the committed fixtures)
#        SDXL_CLIP_FULL=1 adds the full-size check: a random CLIP of the real ViT-B/32 shapes (~600 MB in a temporary
#        folder, about 2 minutes), both layouts, the real vocabulary.
# Exit status: 0 pass, 1 mismatch, 2 no reference environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
env_dir=${SDXL_REFENV:-}
if [ -z "$env_dir" ] || [ ! -d "$env_dir/open_clip/src/open_clip" ]; then
  echo "sdxl_clip_check: SKIP: set SDXL_REFENV to a folder built by shared/anchors/sdxl_reference_env.sh" >&2
  exit 2
fi
export PYTHONPATH="$env_dir/diffusers/src:$env_dir/hub/src:$env_dir/open_clip/src:$env_dir/stub"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PYTHON:-/usr/bin/python3}
if [ "${1:-}" = "--write" ]; then
  "$PY" tests/reference/clip_metric_ref.py tests/fixtures/clip
  exit 0
fi
make --no-print-directory -s tests/bin/test_clip_metric exp_sdxl/clip_fraction
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
"$PY" tests/reference/clip_metric_ref.py "$D"
rc=0
SF_CLIP_FIXTURES=$D tests/bin/test_clip_metric | grep -E '^(FAIL|SKIP|RESULT)|max' | sed 's|^|[test_clip_metric] |' || true
SF_CLIP_FIXTURES=$D tests/bin/test_clip_metric > /dev/null || rc=1
for f in $(cd "$D" && find . -type f | sort); do
  cmp -s "$D/$f" "tests/fixtures/clip/$f" || { echo "sdxl_clip_check: committed fixture differs: $f"; rc=1; }
done
if [ "${SDXL_CLIP_FULL:-0}" = 1 ]; then
  "$PY" tests/reference/clip_metric_ref.py --full "$D/full"
  SF_CLIP_FULL=$D/full SF_CLIP_BPE=$env_dir/open_clip/src/open_clip/bpe_simple_vocab_16e6.txt.gz SF_CLIP_FIXTURES=$D \
    tests/bin/test_clip_metric | grep -E '^(FAIL|SKIP|RESULT)|full' | sed 's|^|[test_clip_metric full] |' || true
  SF_CLIP_FULL=$D/full SF_CLIP_BPE=$env_dir/open_clip/src/open_clip/bpe_simple_vocab_16e6.txt.gz SF_CLIP_FIXTURES=$D \
    tests/bin/test_clip_metric > /dev/null || rc=1
  rm -rf "$D/full"
fi
bash tests/test_clip_fraction.sh | grep -E '^(FAIL|RESULT)' | sed 's|^|[test_clip_fraction] |' || rc=1
[ $rc = 0 ] && echo "sdxl_clip_check: PASS (fresh reference fixtures, committed fixtures current)"
exit $rc
