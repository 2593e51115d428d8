#!/usr/bin/env bash
# Train a profile's DAMSM and GAN experiments on a GPU machine with the CLI (no notebooks), e.g. a rented box:
#   bash scripts/run_profile_gpu.sh demo ssagan_baseline ssagan_f2r ssagan_f2f ssagan_both
# Uses `python3` as found (set PY=... to override); results go to results/<profile>/ as with run_all.sh.
# If $OUT is set, a tarball of the small products (configs, stats, summaries, samples, metrics, the DAMSM
# best.pt) is written there after each run, so partial work survives a time limit.
set -euo pipefail
PROFILE="${1:?profile}"; shift
PY="${PY:-python3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PYTHONUNBUFFERED=1 T2I_PROGRESS=off
WORKERS="${WORKERS:-6}"; DEVICE="${DEVICE:-cuda}"
pack() {
  [[ -n "${OUT:-}" ]] || return 0
  (cd results && find "$PROFILE" \( -path "*/data/*" -o -path "*/checkpoints/*" \) -prune -o -type f -print \
     | grep -v '/data$' | tar -czf "$OUT/results-$PROFILE.tar.gz" -T -) || true
}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
t0=$(date +%s)
"$PY" -m t2i_lib pretrain-damsm --profile "$PROFILE" --device "$DEVICE" --set data.num_workers="$WORKERS"
echo "[gpu] DAMSM done at $(( $(date +%s) - t0 )) s"; pack
for exp in "$@"; do
  "$PY" -m t2i_lib train-gan "$exp" --profile "$PROFILE" --device "$DEVICE" --set data.num_workers="$WORKERS"
  echo "[gpu] $exp done at $(( $(date +%s) - t0 )) s"; pack
done
