#!/usr/bin/env bash
# Run a profile's study on a GPU machine without internet, from a bundle made here with
#   python scripts/offline_bundle.py pack --profile demo --out .carry
# and, where the machine lacks them, wheels in .whl/ (e.g. nltk, torch-fidelity; installed with --no-deps).
#   bash scripts/remote_study.sh [PROFILE] [BUDGET_SECONDS]      (SEEDS=0,1,2 by default; tarball + log to $OUT)
set -o pipefail
PROFILE="${1:-demo}"; BUDGET="${2:-555}"; OUT="${OUT:-/tmp/study-out}"
mkdir -p "$OUT"
t0=$(date +%s)
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 9
  export PYTHONPATH="/tmp/site:$PWD"
fi
args=$(python3 scripts/offline_bundle.py unpack --bundle .carry | tail -1) || exit 8
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader || true
echo "set-up took $(( $(date +%s) - t0 )) s; study flags: $args"
# shellcheck disable=SC2086
python3 scripts/gpu_study.py --profile "$PROFILE" --seeds "${SEEDS:-0,1,2}" --budget-s "$BUDGET" $args --out "$OUT" \
  2>&1 | tee "$OUT/study.log"
rc=$?
echo "total $(( $(date +%s) - t0 )) s, rc=$rc"
exit $rc
