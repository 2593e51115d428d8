#!/usr/bin/env bash
# Run the test suite (sets up the environment first if needed).  Extra arguments go to pytest, e.g.
#   ./run_tests.sh -m "not slow"      # skip the end-to-end notebook/run_all tests
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
PY="$(bash "$ROOT/scripts/setup_env.sh")"
exec "$PY" -m pytest "$@"
