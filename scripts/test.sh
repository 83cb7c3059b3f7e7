#!/usr/bin/env bash
# Installs everything (scripts/install.sh) and runs the whole test suite against the real Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export FACTORY_REQUIRE_DOCKER=1  # a missing engine fails the Docker tests instead of skipping them
exec "${FACTORY_VENV:-.venv}/bin/python" -m pytest -q "$@"
