#!/usr/bin/env bash
# Run the whole study end to end: every notebook through papermill, then HTML reports.
#
#   ./run_all.sh [--profile smoke|demo|paper] [--results-dir DIR] [--only NOTEBOOK_PREFIX] [--force]
#                [--seeds 0,1,2]   (the study: every GAN run once per seed; 06_study aggregates them)
#                [--experiments a,b,...]   (GAN experiments; default the 8 of SSA-GAN and AttnGAN + style blocks;
#                                           add attngan_baseline for the study's style-blocks claim)
#                [--nproc N]   (train each GAN on N processes of this machine: DDP via torch's elastic launcher)
#                [--dry-run [--dataset cub|coco]]   (validate data, print the plan and GPU-hour estimate, exit)
#
# - Sets up (or reuses) the Python environment first (scripts/setup_env.sh).
# - Writes results/<profile>/env/ (packages, git commit, device) before anything else.
# - Executes notebooks in numeric order into results/<profile>/executed/ (never back into notebooks/) and renders
#   HTML into results/<profile>/reports/; stops at the first failure and names the failed notebook.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

PROFILE="smoke"; RESULTS_DIR=""; ONLY=""; FORCE="False"; DRY_RUN=0; DATASET="cub"; SEEDS="0"; EXPERIMENTS=""; NPROC=1
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --profile) PROFILE="$2"; shift 2 ;;
    --profile=*) PROFILE="${1#*=}"; shift ;;
    --results-dir) RESULTS_DIR="$2"; shift 2 ;;
    --results-dir=*) RESULTS_DIR="${1#*=}"; shift ;;
    --only) ONLY="$2"; shift 2 ;;
    --force) FORCE="True"; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --seeds) SEEDS="$2"; shift 2 ;;
    --experiments) EXPERIMENTS="$2"; shift 2 ;;
    --dataset) DATASET="$2"; shift 2 ;;
    --nproc) NPROC="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run_all.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
case "$PROFILE" in smoke|demo|paper) ;; *) echo "run_all.sh: unknown profile '$PROFILE' (smoke|demo|paper)" >&2; exit 2 ;; esac

PY="$(bash "$ROOT/scripts/setup_env.sh")"
if [[ "$DRY_RUN" == 1 ]]; then
  [[ -n "$RESULTS_DIR" ]] && export T2I_RESULTS_DIR="$RESULTS_DIR"
  [[ "$PROFILE" == paper ]] || { echo "run_all.sh: --dry-run plans the paper profile (use --profile paper)" >&2; exit 2; }
  exec "$PY" -m t2i_lib plan --profile paper --dataset "$DATASET"
fi
OUT="${RESULTS_DIR:-$ROOT/results/$PROFILE}"
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
mkdir -p "$OUT/env" "$OUT/executed" "$OUT/reports"
export T2I_PROGRESS="${T2I_PROGRESS:-off}"   # library bars off inside papermill; papermill shows cell progress
export PYTHONHASHSEED=0
START=$(date +%s)

# 1. Environment record.
"$PY" -m pip freeze --disable-pip-version-check > "$OUT/env/pip-freeze.txt" 2>/dev/null || true
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "profile: $PROFILE"
  echo "python: $("$PY" --version 2>&1) ($PY)"
  echo "git_commit: $(git rev-parse HEAD 2>/dev/null || echo none)"
  echo "git_dirty: $([[ -n "$(git status --porcelain 2>/dev/null)" ]] && echo yes || echo no)"
  "$PY" -c "import torch, platform; print('torch:', torch.__version__); print('cuda:', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''); print('cpu:', platform.processor() or platform.machine())"
} > "$OUT/env/run.txt"

# 2. Notebooks, in order.  02_train_gan runs once per model family x loss variant.
NOTEBOOKS=(00_prepare_data 01_pretrain_damsm 02_train_gan 03_evaluate 04_paper_tables 05_semantic_consistency
           06_study)
GAN_EXPERIMENTS=(ssagan_baseline ssagan_f2r ssagan_f2f ssagan_both
                 style_attngan_baseline style_attngan_f2r style_attngan_f2f style_attngan_both)
if [[ -n "$EXPERIMENTS" ]]; then
  [[ "$EXPERIMENTS" =~ ^[a-z0-9_]+(,[a-z0-9_]+)*$ ]] || { echo "run_all.sh: --experiments must look like a,b,c" >&2; exit 2; }
  IFS=, read -r -a GAN_EXPERIMENTS <<< "$EXPERIMENTS"
fi
[[ "$NPROC" =~ ^[1-9][0-9]*$ ]] || { echo "run_all.sh: --nproc must be a positive integer" >&2; exit 2; }
[[ "$SEEDS" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "run_all.sh: --seeds must look like 0,1,2" >&2; exit 2; }
IFS=, read -r -a SEED_LIST <<< "$SEEDS"
EXP_YAML="EXPERIMENTS: [$(IFS=,; echo "${GAN_EXPERIMENTS[*]}")]
SEEDS: [$SEEDS]"
run_nb() {  # name output-stem [extra papermill args...]
  local nb="$1" stem="$2"; shift 2
  echo "[run_all] ${stem}" >&2
  if ! "$PY" -m papermill "notebooks/${nb}.ipynb" "$OUT/executed/${stem}.ipynb" -k python3 --cwd notebooks \
       -p PROFILE "$PROFILE" -p RESULTS_DIR "$OUT" -p FORCE "$FORCE" "$@"; then
    echo "[run_all] FAILED: notebooks/${nb}.ipynb (executed copy with the error: $OUT/executed/${stem}.ipynb)" >&2
    exit 1
  fi
  "$PY" -m jupyter nbconvert --to html --log-level WARN "$OUT/executed/${stem}.ipynb" --output-dir "$OUT/reports" \
    --HTMLExporter.mathjax_url='mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe' \
    --HTMLExporter.require_js_url='' \
    || { echo "[run_all] FAILED: HTML rendering of ${stem}" >&2; exit 1; }
}
for nb in "${NOTEBOOKS[@]}"; do
  [[ -n "$ONLY" && "$nb" != "$ONLY"* ]] && continue
  if [[ "$nb" == 02_train_gan ]]; then
    for seed in "${SEED_LIST[@]}"; do
      for exp in "${GAN_EXPERIMENTS[@]}"; do
        stem="${nb}-${exp}"; [[ "$SEEDS" != "0" ]] && stem="${stem}-s${seed}"
        run_nb "$nb" "$stem" -p EXPERIMENT "$exp" -p SEED "$seed" -p NPROC "$NPROC"
      done
    done
  elif [[ "$nb" == 03_evaluate || "$nb" == 05_semantic_consistency || "$nb" == 04_paper_tables \
          || "$nb" == 06_study ]]; then
    run_nb "$nb" "$nb" -y "$EXP_YAML"
  else
    run_nb "$nb" "$nb"
  fi
done

echo "[run_all] profile '$PROFILE' done in $(( $(date +%s) - START )) s; reports: $OUT/reports/" >&2
ls "$OUT/reports" >&2
