#!/usr/bin/env bash
# kill -9 the upgrade (and its resumes) at seeded random moments inside steps, on a fresh lab
# cloud per seed; prints one line per seed and how many converged. Exit 0 only if all did.
# Usage: bash scripts/soak-kill.sh [--seeds 50] [--first 1000]
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python tests/upgrade/kill_soak.py "$@"
