#!/usr/bin/env bash
# The test command of the README: start the services the tests need, set up, check the layering
# and the types, run every module's doctests and the whole test suite (2 workers).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
scripts/setup.sh
.venv/bin/lint-imports
.venv/bin/mypy
.venv/bin/pytest -n 2 "$@"
