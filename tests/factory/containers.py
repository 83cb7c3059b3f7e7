"""The sandbox containers a process owns, listed without a race against other processes' containers."""

from __future__ import annotations


def owned_containers(pid: int) -> list[str]:
    """Ids of the sandbox containers (running or not) whose owner label names process ``pid``. One
    list call, no inspection per container: another process may remove its containers meanwhile."""
    from sandbox.engine import OWNER_LABEL, SANDBOX_LABEL, docker_client

    listed = docker_client().api.containers(all=True, filters={"label": SANDBOX_LABEL})
    return [c["Id"] for c in listed if f":{pid}:" in (c.get("Labels") or {}).get(OWNER_LABEL, "")]
