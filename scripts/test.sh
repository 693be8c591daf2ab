#!/usr/bin/env bash
# Install what the tests need, start the database servers, and run the whole test suite.
# Usage: bash scripts/test.sh [pytest args...]
#
# Python dependencies go into a virtual environment of this checkout (.venv), so a test run
# never changes which skylift the machine's own Python imports.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"
