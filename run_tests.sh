#!/usr/bin/env bash
# Run the test suite (sets up the environment first if needed) on T2I_TEST_WORKERS pytest-xdist workers (default
# 2: the suite is single-threaded most of the time, so two workers fill two cores; 0 = one process).  The smoke
# run_all.sh runs once per session whichever workers need it (tests/conftest.py).  Extra arguments go to pytest, e.g.
#   ./run_tests.sh -m "not slow"      # skip the end-to-end notebook/run_all tests
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
PY="$(bash "$ROOT/scripts/setup_env.sh")"
exec "$PY" -m pytest -n "${T2I_TEST_WORKERS:-2}" "$@"
