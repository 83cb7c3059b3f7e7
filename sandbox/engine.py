"""Reaching the Docker engine, and finding the containers that earlier runs left behind."""

from __future__ import annotations

import os
import socket
from pathlib import Path

SANDBOX_LABEL = "selfplay-factory.sandbox"
OWNER_LABEL = "selfplay-factory.owner"


class SandboxUnavailable(RuntimeError):
    """The requested sandbox cannot be used here; the message says what to install or run."""


def docker_client(timeout_s: float = 30.0):
    """A docker SDK client for the engine in the environment (DOCKER_HOST or the default socket)."""
    try:
        import docker
        import docker.errors
    except ImportError as e:  # pragma: no cover - docker is a core dependency
        raise SandboxUnavailable("the docker Python package is missing: pip install docker") from e
    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
        return client
    except docker.errors.DockerException as e:
        text = str(e)
        if "Permission denied" in text:
            hint = "no permission on the Docker socket: add your user to the docker group or run as root"
        elif "No such file" in text or "Connection refused" in text or "FileNotFoundError" in text:
            hint = (
                "no Docker engine is running: install it (apt-get install docker.io) and start it "
                "(systemctl start docker, or dockerd &)"
            )
        else:
            hint = f"cannot reach the Docker engine: {text.splitlines()[0][:200]}"
        raise SandboxUnavailable(hint) from e


def owner_id() -> str:
    """Who owns the containers this process makes: host, pid and the pid's start time (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{process_start_time(os.getpid())}"


def process_start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return ""
    return stat[stat.rfind(b")") + 2 :].split()[19].decode()


def owner_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname():
        return True  # not ours to judge
    return pid.isdigit() and process_start_time(int(pid)) == started and started != ""


def sandbox_containers(client) -> list:
    return client.containers.list(all=True, filters={"label": SANDBOX_LABEL})


def leftover_containers(client) -> list:
    """Sandbox containers whose owning process is gone (a killed earlier run)."""
    return [c for c in sandbox_containers(client) if not owner_alive(c.labels.get(OWNER_LABEL, ""))]


def remove_containers(containers: list) -> int:
    import docker.errors

    removed = 0
    for container in containers:
        try:
            container.remove(force=True)
            removed += 1
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if "already in progress" not in str(e):
                raise
    return removed
