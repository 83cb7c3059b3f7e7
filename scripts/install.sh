#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine (run as root, or with sudo):
#   - Debian packages: docker.io (the engine), debootstrap (offline base image), python3-venv
#   - a running Docker engine (systemd if present, else dockerd in the background)
#   - a virtual environment in .venv with CPU PyTorch (pinned) and this project
#   - the sandbox image (built offline from Debian packages when Docker Hub is unreachable)
# Safe to run again: every step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${FACTORY_VENV:-.venv}
TORCH_SPEC=${FACTORY_TORCH_SPEC:-torch==2.13.0}  # a bare "torch" would pull a multi-GB CUDA build
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
log() { echo "[install] $*" >&2; }

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
python3 -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! $SUDO docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ]; then
    log "starting docker with systemd"
    $SUDO systemctl start docker
  else
    log "starting dockerd in the background (log: /var/log/dockerd.log)"
    $SUDO sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
  fi
  for _ in $(seq 60); do $SUDO docker info >/dev/null 2>&1 && break; sleep 1; done
  $SUDO docker info >/dev/null 2>&1 || { log "the Docker engine did not start: see /var/log/dockerd.log"; exit 1; }
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
if ! "$PY" -c "import torch" 2>/dev/null; then
  log "pip install $TORCH_SPEC"
  "$PY" -m pip install -q "$TORCH_SPEC"
fi
if ! "$PY" -c "import factory, pytest, peft" 2>/dev/null || [ pyproject.toml -nt "$VENV/.factory-installed" ]; then
  log "pip install -e .[dev,ray]"
  "$PY" -m pip install -q -e ".[dev,ray]"
  touch "$VENV/.factory-installed"
fi

log "sandbox image"
status=$("$VENV/bin/factory" sandbox status 2>&1 || true)
case "$status" in
  *" present"*) ;;
  *) "$VENV/bin/factory" sandbox build >/dev/null ;;
esac
log "ready: $VENV/bin/factory"
