#!/usr/bin/env bash
# Installs everything (scripts/install.sh) and runs one self-play round with the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec "${FACTORY_VENV:-.venv}/bin/factory" round --run-dir "${1:-runs/quickstart}"
