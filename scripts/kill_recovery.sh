#!/usr/bin/env bash
# The long kill -9 recovery run: a real `tradingd run --broker alpaca --feed alpaca` against the local
# Alpaca server, killed at N random moments (default 300; CI runs 50), then one last session; asserts
# no order sent twice, no fill lost, positions equal to the broker's, peak equity intact.
#   scripts/kill_recovery.sh [N] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
TRADINGD_KILL_POINTS="${1:-300}" TRADINGD_KILL_SEED="${2:-$RANDOM}" \
  .venv/bin/pytest -p no:xdist tests/daemon/alpaca/test_run_alpaca.py -k kill_9
