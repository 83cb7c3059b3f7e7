#!/usr/bin/env bash
# Installs everything (scripts/install.sh) and runs the whole test suite against the real Docker engine:
# the tests over FACTORY_TEST_WORKERS parallel workers (pytest-xdist; default 2), then those marked
# `alone` (they reach what the others share: the Docker engine, every process on the host) by themselves. With arguments: pytest with those, serially.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export FACTORY_REQUIRE_DOCKER=1  # a missing engine fails the Docker tests instead of skipping them
PY="${FACTORY_VENV:-.venv}/bin/python"
if [ $# -gt 0 ]; then
  exec "$PY" -m pytest -q "$@"
fi
status=0
"$PY" -m pytest -q -n "${FACTORY_TEST_WORKERS:-2}" -m "not alone" || status=$?
"$PY" -m pytest -q -m alone || status=$?
exit "$status"
