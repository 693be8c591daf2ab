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
# A run killed part-way (a session cut off, a CI timeout) leaves lab namespaces and nftables
# tables in the kernel, where the next run's hosts would hang cut off. The run that holds the
# test lock (kept through pytest by fd 9) sweeps them first; one started beside it does not.
lock_dir=/run/lock
[ -d "$lock_dir" ] || lock_dir=/tmp
exec 9>"$lock_dir/skylift-tests.lock"
if command -v flock >/dev/null && flock -n 9; then
  .venv/bin/python -m skylift.lab.sweep | sed 's/^/tests: swept what killed lab runs left: /' \
    || echo "tests: the sweep of lab leftovers failed (above); the tests run all the same"
fi
exec .venv/bin/python -m pytest "$@"
