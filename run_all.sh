#!/usr/bin/env bash
# Run the whole study end to end: every notebook through papermill, then HTML reports.  See usage below.
#
# - Sets up (or reuses) the Python environment first (scripts/setup_env.sh).
# - Every argument is checked before anything is written: a bad one prints the usage and exits 2.
# - Executes notebooks in numeric order into <results>/executed/ (never back into notebooks/) and renders offline
#   HTML into <results>/reports/ (the machine's paths written relative: t2i_lib/report/render.py); one line per
#   notebook with its time; stops at the first failure and names the notebook (its log: <results>/logs/).
# - --jobs N (default 2 on a CPU profile, 1 for paper): the GAN runs of notebook 02 execute N at a time, each
#   kernel with cores/N threads (independent runs: same dataset and encoders, own run folders), notebook 03
#   evaluates N runs at a time (worker processes), and notebooks 04-07 (readers of 03's metrics) run N at a time;
#   a failure in one lets the others finish, then stops.
# - Skips a notebook whose executed copy and report exist and whose key is unchanged: a hash of the notebook, its
#   parameters, the library source (t2i_lib/), requirements.txt/pyproject.toml, the T2I_* environment variables
#   and the keys of the notebooks before it (their products are its inputs).  --rerun/--force run it again.
# - Writes <results>/env/ (packages, git commit, device) before the first notebook that runs.
set -euo pipefail
{  # one block, read whole before it runs: editing this file during a run cannot break that run
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

usage() {
  cat <<'EOF'
usage: ./run_all.sh [options]

  --profile smoke|demo|paper   which study to run (default smoke: minutes on a CPU)
  --results-dir DIR            where results go (default results/<profile>)
  --only NB[,NB...]            run only the notebooks whose names start with these prefixes, e.g. --only 03,04
  --seeds 0,1,2                the study: every GAN run once per seed; 06_study aggregates them (default 0)
  --experiments a,b,...        GAN experiments (default: the 4 arms of SSA-GAN and of AttnGAN + style blocks
                               in smoke; with plain AttnGAN's 4 arms too in demo and paper, the 3 x 4 study)
  --nproc N                    train each GAN on N processes of this machine (DDP via torch's elastic launcher)
  --jobs N                     run N GAN runs (02), evaluations (03) and report notebooks (04-07) at a time,
                               each with cores/N threads (default 2 for smoke and demo, 1 for paper or --nproc > 1)
  --dataset cub|coco|flowers|flickr30k   dataset of the paper profile's plan (with --dry-run)
  --dry-run                    print the plan (which notebooks would run or are up to date; for the paper profile
                               the runs and GPU hours) and list what is missing (exit 3 when something is)
  --rerun                      execute every selected notebook again (finished runs and metrics are reused)
  --force                      execute again and recompute every product (retrain, re-evaluate)
  --lab [LAB ARGS...]          start JupyterLab on the notebooks instead (scripts/lab.sh; works as root)
  -h, --help                   this help

Examples:  ./run_all.sh                        # smoke study, about 5 minutes on 2 CPU cores
           ./run_all.sh --profile paper --dry-run
           ./run_all.sh --only 03,04 --rerun
EOF
}
die() { echo "run_all.sh: $*" >&2; echo >&2; usage >&2; exit 2; }
say() { echo "[run_all] $*" >&2; }

NOTEBOOKS=(00_prepare_data 01_pretrain_damsm 02_train_gan 03_evaluate 04_paper_tables 05_semantic_consistency
           06_study 07_human_eval)
GAN_EXPERIMENTS=(ssagan_baseline ssagan_f2r ssagan_f2f ssagan_both
                 style_attngan_baseline style_attngan_f2r style_attngan_f2f style_attngan_both)
PROFILE="smoke"; RESULTS_DIR=""; ONLY=""; FORCE="False"; RERUN=0; DRY_RUN=0; DATASET="cub"; SEEDS="0"
EXPERIMENTS=""; NPROC=1; JOBS=""
need() { [[ $# -ge 2 && -n "$2" && "$2" != -* ]] || die "option $1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --lab) shift; exec bash "$ROOT/scripts/lab.sh" "$@" ;;
    --*=*) opt="${1%%=*}"; val="${1#*=}"; shift; set -- "$opt" "$val" "$@"; continue ;;
    --profile) need "$@"; PROFILE="$2"; shift 2 ;;
    --results-dir) need "$@"; RESULTS_DIR="$2"; shift 2 ;;
    --only) need "$@"; ONLY="$2"; shift 2 ;;
    --seeds) need "$@"; SEEDS="$2"; shift 2 ;;
    --experiments) need "$@"; EXPERIMENTS="$2"; shift 2 ;;
    --dataset) need "$@"; DATASET="$2"; shift 2 ;;
    --nproc) need "$@"; NPROC="$2"; shift 2 ;;
    --jobs) need "$@"; JOBS="$2"; shift 2 ;;
    --force) FORCE="True"; RERUN=1; shift ;;
    --rerun) RERUN=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1'" ;;
  esac
done
case "$PROFILE" in smoke|demo|paper) ;; *) die "unknown profile '$PROFILE' (smoke|demo|paper)" ;; esac
case "$DATASET" in cub|coco|flowers|flickr30k) ;; *) die "unknown dataset '$DATASET' (cub|coco|flowers|flickr30k)" ;; esac
[[ "$NPROC" =~ ^[1-9][0-9]*$ ]] || die "--nproc must be a positive integer"
[[ -z "$JOBS" || "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "--jobs must be a positive integer"
if [[ -z "$JOBS" ]]; then
  if [[ "$PROFILE" == paper || "$NPROC" != 1 ]]; then JOBS=1; else JOBS=2; fi
fi
CORES="$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)"
THREADS_PER_JOB=$(( CORES / JOBS )); (( THREADS_PER_JOB >= 1 )) || THREADS_PER_JOB=1
[[ "$SEEDS" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--seeds must look like 0,1,2"
IFS=, read -r -a SEED_LIST <<< "$SEEDS"
if [[ -n "$EXPERIMENTS" ]]; then
  [[ "$EXPERIMENTS" =~ ^[a-z0-9_]+(,[a-z0-9_]+)*$ ]] || die "--experiments must look like a,b,c"
  IFS=, read -r -a GAN_EXPERIMENTS <<< "$EXPERIMENTS"
elif [[ "$PROFILE" != "smoke" ]]; then  # the study: plain AttnGAN's four arms separate the losses from the style blocks
  GAN_EXPERIMENTS+=(attngan_baseline attngan_f2r attngan_f2f attngan_both)
fi
SELECTED=()
if [[ -n "$ONLY" ]]; then
  [[ "$ONLY" =~ ^[A-Za-z0-9_]+(,[A-Za-z0-9_]+)*$ ]] || die "--only must look like 03 or 03,04 or 03_evaluate"
  IFS=, read -r -a only_list <<< "$ONLY"
  for pre in "${only_list[@]}"; do
    hit=0
    for nb in "${NOTEBOOKS[@]}"; do [[ "$nb" == "$pre"* ]] && hit=1; done
    [[ "$hit" == 1 ]] || die "--only '$pre' matches no notebook (notebooks: ${NOTEBOOKS[*]})"
  done
  for nb in "${NOTEBOOKS[@]}"; do
    for pre in "${only_list[@]}"; do [[ "$nb" == "$pre"* ]] && { SELECTED+=("$nb"); break; }; done
  done
else
  SELECTED=("${NOTEBOOKS[@]}")
fi

PY="$(bash "$ROOT/scripts/setup_env.sh")"
bad_exp="$("$PY" -c 'import sys
from t2i_lib.config import EXPERIMENTS
print(" ".join(e for e in sys.argv[1:] if e not in EXPERIMENTS))' "${GAN_EXPERIMENTS[@]}")"
[[ -z "$bad_exp" ]] || die "unknown experiment(s) for --experiments: $bad_exp (all: t2i_lib.config.EXPERIMENTS)"
# Notebook 01 trains the profile's encoders.  A family whose profile delta changes a DAMSM setting trains with its
# own pair (t2i_lib.plan.encoder_groups); notebook 01 runs once more for each such group: "experiment families".
EXTRA_ENCODERS="$("$PY" -c 'import sys
from t2i_lib.plan import encoder_groups
for g in encoder_groups(sys.argv[1], sys.argv[2:]):
    if not g["default"]:
        print(g["experiments"][0], "-".join(g["families"]))' "$PROFILE" "${GAN_EXPERIMENTS[@]}")"

OUT="${RESULTS_DIR:-$ROOT/results/$PROFILE}"
[[ "$OUT" == /* ]] || OUT="$ROOT/$OUT"
export T2I_PROGRESS="${T2I_PROGRESS:-off}"   # library progress bars off inside papermill
export PYTHONHASHSEED=0

# Keys: what a notebook's products depend on (see the header).  UPSTREAM grows with the keys of earlier notebooks.
LIB_KEY="$( { find t2i_lib -type f \( -name '*.py' -o -name '*.json' -o -name '*.yaml' \) -not -path '*/__pycache__/*' \
             -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; cat requirements.txt pyproject.toml;
             env | LC_ALL=C grep '^T2I_' | LC_ALL=C grep -v '^T2I_PROGRESS=' | LC_ALL=C sort || true; } | sha256sum | cut -c1-16)"
EXP_YAML="EXPERIMENTS: [$(IFS=,; echo "${GAN_EXPERIMENTS[*]}")]
SEEDS: [$SEEDS]"
UPSTREAM=""
key_of() {  # notebook stem papermill-args... -> key on stdout
  local nb="$1" stem="$2"; shift 2
  { sha256sum "notebooks/${nb}.ipynb"; echo "$stem $PROFILE $OUT $*"; echo "$LIB_KEY"; echo "$UPSTREAM"; } \
    | sha256sum | cut -c1-16
}
up_to_date() {  # stem key
  [[ "$RERUN" == 0 && -f "$OUT/executed/$1.key" && "$(cat "$OUT/executed/$1.key")" == "$2" \
     && -f "$OUT/executed/$1.ipynb" && -f "$OUT/reports/$1.html" ]]
}

# Jupyter configuration for this run only: the kernels log errors, not the "Kernel is running over TCP without
# encryption" notice (the kernel listens on localhost only), and keep no IPython history.
IPY_DIR="$(mktemp -d "${TMPDIR:-/tmp}/t2i-ipython-XXXXXX")"
trap 'rm -rf "$IPY_DIR"' EXIT
mkdir -p "$IPY_DIR/profile_default"
printf 'c.IPKernelApp.log_level = "ERROR"\nc.HistoryManager.enabled = False\n' \
  > "$IPY_DIR/profile_default/ipython_kernel_config.py"
export IPYTHONDIR="$IPY_DIR"

ENV_WRITTEN=0
write_env() {  # the environment record, once, before the first notebook that runs
  [[ "$ENV_WRITTEN" == 1 ]] && return
  mkdir -p "$OUT/env" "$OUT/executed" "$OUT/reports" "$OUT/logs"
  "$PY" -m pip freeze --disable-pip-version-check > "$OUT/env/pip-freeze.txt" 2>/dev/null || true
  {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "profile: $PROFILE"
    echo "python: $("$PY" --version 2>&1)"
    echo "git_commit: $(git rev-parse HEAD 2>/dev/null || echo none)"
    echo "git_dirty: $([[ -n "$(git status --porcelain 2>/dev/null)" ]] && echo yes || echo no)"
    "$PY" -c "import torch, platform; print('torch:', torch.__version__); print('cuda:', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else ''); print('cpu:', platform.processor() or platform.machine())"
  } > "$OUT/env/run.txt"
  ENV_WRITTEN=1
}

N_RUN=0; N_SKIP=0; PLAN_RUN=(); START=$(date +%s); PARALLEL=0; PIDS=()
visit() {  # notebook stem [extra papermill args...]: run it when selected and not up to date; record its key
  local nb="$1" stem="$2"; shift 2
  local key; key="$(key_of "$nb" "$stem" "$@")"
  STEMS_KEYS+="$stem=$key;"
  [[ "$SELECTED_NOW" == 1 ]] || return 0
  if up_to_date "$stem" "$key"; then
    N_SKIP=$((N_SKIP + 1))
    if [[ "$DRY_RUN" == 1 ]]; then printf '[run_all] %-44s up to date (would skip)\n' "$stem" >&2
    else printf '[run_all] %-44s skipped: unchanged (key %s)\n' "$stem" "$key" >&2; fi
    return 0
  fi
  if [[ "$DRY_RUN" == 1 ]]; then
    local args="$*"; printf '[run_all] %-44s would run  %s\n' "$stem" "${args//$'\n'/; }" >&2; PLAN_RUN+=("$stem"); return 0
  fi
  write_env
  N_RUN=$((N_RUN + 1))
  if [[ "$PARALLEL" == 1 && "$JOBS" -gt 1 ]]; then
    while (( $(jobs -rp | wc -l) >= JOBS )); do sleep 0.5; done
    run_one "$nb" "$stem" "$key" "$@" &
    PIDS+=("$!")
  else
    run_one "$nb" "$stem" "$key" "$@" || exit 1
  fi
}

run_one() {  # notebook stem key [papermill args...]: execute and render; one line with the time; 1 on failure
  local nb="$1" stem="$2" key="$3"; shift 3
  local t0; t0=$(date +%s)
  local threads=() name=""  # in parallel: fewer threads, and the line is printed whole at the end
  if [[ "$PARALLEL" == 1 && "$JOBS" -gt 1 ]]; then
    threads=(env "OMP_NUM_THREADS=$THREADS_PER_JOB" "MKL_NUM_THREADS=$THREADS_PER_JOB")
    name="$(printf '[run_all] %-44s ' "$stem")"
  else
    printf '[run_all] %-44s ' "$stem" >&2
  fi
  rm -f "$OUT/executed/$stem.key"
  if ! "${threads[@]}" "$PY" -m papermill "notebooks/${nb}.ipynb" "$OUT/executed/${stem}.ipynb" -k python3 \
       --cwd notebooks --no-progress-bar --log-level WARNING \
       -p PROFILE "$PROFILE" -p RESULTS_DIR "$OUT" -p FORCE "$FORCE" "$@" > "$OUT/logs/${stem}.log" 2>&1; then
    { echo "${name}FAILED after $(( $(date +%s) - t0 )) s"; tail -n 25 "$OUT/logs/${stem}.log"
      echo "[run_all] FAILED: notebooks/${nb}.ipynb (executed copy with the error: $OUT/executed/${stem}.ipynb;" \
           "log: $OUT/logs/${stem}.log)"; } >&2
    return 1
  fi
  # Offline HTML with the machine's paths written relative (t2i_lib/report/render.py).
  if ! "$PY" -m t2i_lib.report.render "$OUT/executed/${stem}.ipynb" "$OUT/reports" --results-dir "$OUT" \
       >> "$OUT/logs/${stem}.log" 2>&1; then
    { echo "${name}FAILED (HTML rendering)"; tail -n 25 "$OUT/logs/${stem}.log"; } >&2
    return 1
  fi
  echo "$key" > "$OUT/executed/$stem.key"
  echo "${name}$(( $(date +%s) - t0 )) s" >&2
}

drain() {  # wait for the parallel runs; stop when any failed (each has printed its own error)
  local pid failed=0
  for pid in "${PIDS[@]}"; do wait "$pid" || failed=1; done
  PIDS=()
  [[ "$failed" == 0 ]] || exit 1
}

[[ "$DRY_RUN" == 1 ]] && say "plan for profile '$PROFILE' (results: $OUT)"
for nb in "${NOTEBOOKS[@]}"; do
  STEMS_KEYS=""
  SELECTED_NOW=0; for s in "${SELECTED[@]}"; do [[ "$s" == "$nb" ]] && SELECTED_NOW=1; done
  case "$nb" in
    02_train_gan)
      PARALLEL=1
      for seed in "${SEED_LIST[@]}"; do
        for exp in "${GAN_EXPERIMENTS[@]}"; do
          stem="${nb}-${exp}"; [[ "$SEEDS" != "0" ]] && stem="${stem}-s${seed}"
          visit "$nb" "$stem" -p EXPERIMENT "$exp" -p SEED "$seed" -p NPROC "$NPROC"
        done
      done
      PARALLEL=0; drain ;;
    01_pretrain_damsm)
      visit "$nb" "$nb"
      while read -r exp fams; do
        [[ -n "$exp" ]] && visit "$nb" "${nb}-${fams}" -p EXPERIMENT "$exp" -p TAG "-${fams}" -p COMPARE_KINDS False
      done <<< "$EXTRA_ENCODERS" ;;
    03_evaluate)
      visit "$nb" "$nb" -y "$EXP_YAML" -p JOBS "$JOBS" ;;
    04_paper_tables|05_semantic_consistency|06_study|07_human_eval)  # independent readers of 03's products
      PARALLEL=1; visit "$nb" "$nb" -y "$EXP_YAML"; PARALLEL=0 ;;
    *)
      visit "$nb" "$nb" ;;
  esac
  UPSTREAM+="$STEMS_KEYS;"
done
drain

if [[ "$DRY_RUN" == 1 ]]; then
  MISSING=()
  if [[ "$PROFILE" == paper ]]; then
    "$PY" -m t2i_lib plan --profile paper --dataset "$DATASET" --no-check >&2 || MISSING+=("the paper plan failed")
    if ! err="$("$PY" -m t2i_lib plan --profile paper --dataset "$DATASET" 2>&1 >/dev/null)"; then
      MISSING+=("${err#error: }")
    fi
  fi
  say "${#PLAN_RUN[@]} notebook(s) would run, $N_SKIP up to date"
  if [[ ${#MISSING[@]} -gt 0 ]]; then
    say "missing:"; for m in "${MISSING[@]}"; do echo "  - $m" >&2; done
    exit 3
  fi
  say "nothing missing"
  exit 0
fi
say "profile '$PROFILE': $N_RUN notebook(s) run, $N_SKIP skipped (unchanged) in $(( $(date +%s) - START )) s;" \
    "reports: $OUT/reports/"
exit
}
