#!/usr/bin/env bash
# Open the notebooks in JupyterLab, in the project's Python environment (set up first if needed).
#
#   scripts/lab.sh [jupyter lab options]        (or: ./run_all.sh --lab [options])
#   scripts/lab.sh --ip 0.0.0.0 --port 8888     (reachable from outside a container or remote machine)
#
# - Works as root (the usual container user): adds --allow-root.  Adds --no-browser when there is no display.
# - Lab opens in notebooks/; the URL to open (with its access token) is printed when the server is ready.
# - Notebooks opened here write their products under results/<profile>/ like run_all.sh; run_all.sh stores
#   executed copies separately, so what you run here never changes the committed notebooks unless you save them
#   (strip outputs before committing: tests/test_hygiene.py checks).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$(bash "$ROOT/scripts/setup_env.sh")"
ARGS=()
[[ "$(id -u)" == 0 ]] && ARGS+=(--allow-root)
[[ -z "${DISPLAY:-}" && "$(uname)" != Darwin ]] && ARGS+=(--no-browser)
export PYTHONHASHSEED=0
echo "[lab] JupyterLab with $PY on $ROOT/notebooks; open the http://...?token=... URL below (Ctrl-C stops it)" >&2
cd "$ROOT/notebooks"
exec "$PY" -m jupyter lab --ServerApp.root_dir="$ROOT" --LabApp.default_url=/lab/tree/notebooks "${ARGS[@]}" "$@"
