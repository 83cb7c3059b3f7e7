#!/usr/bin/env bash
# Installs everything (scripts/install.sh) and runs one self-play round with the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# 1,024 proposals (the default is 2,048) keep the whole quick start under 15 minutes on 2 cores.
exec "${FACTORY_VENV:-.venv}/bin/factory" round --run-dir "${1:-runs/quickstart}" --puzzles 1024
