"""Choosing and opening a sandbox: Docker containers, or local processes where Docker is missing, or the
Docker pools of a Ray cluster. Every kind is a ``Sandbox`` (``sandbox.interface``)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from sandbox.engine import SandboxUnavailable
from sandbox.installation import installation_hash_seeds
from sandbox.interface import Sandbox
from sandbox.links import WorkerLimits
from sandbox.local import default_workers, open_docker_sandbox, open_process_sandbox

KINDS = ("docker", "process", "auto", "ray")


def log_to_stderr(message: str) -> None:
    """One line on stderr in one write: print's two writes (text, then newline) let a line from another
    thread, or a signal handler's, land between them (measured: "replacing itfactory: stopped by SIGTERM")."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def open_sandbox(
    kind: str = "docker",
    workers: int | None = None,
    limits: WorkerLimits | None = None,
    build_missing_image: bool = True,
    log: Callable[[str], None] = log_to_stderr,
    ray_address: str | None = None,
) -> Sandbox:
    """Open a sandbox of ``kind`` (docker, process, auto, ray). ``auto`` falls back to processes, saying
    why. ``ray`` spreads the work over a Ray cluster (``ray_address``, else ``RAY_ADDRESS``, else a local
    Ray), one Docker pool of ``workers`` containers per node (default: the node's CPU count)."""
    if kind not in KINDS:
        raise ValueError(f"unknown sandbox {kind!r}: choose one of {', '.join(KINDS)}")
    limits = limits or WorkerLimits()
    try:  # read here, on the host: every node of a cluster gets the same
        hash_seeds = installation_hash_seeds()
    except (OSError, ValueError) as e:
        raise SandboxUnavailable(
            f"cannot read or make this installation's hash secret ({e}): set XDG_CACHE_HOME to a writable directory"
        ) from e
    if kind == "ray":
        from sandbox.ray_sandbox import open_ray_sandbox  # Ray is optional and slow to import

        return open_ray_sandbox(workers, limits, hash_seeds, build_missing_image, log, ray_address)
    workers = workers or default_workers()
    if kind in ("docker", "auto"):
        try:
            return open_docker_sandbox(workers, limits, hash_seeds, build_missing_image, log)
        except SandboxUnavailable as e:
            if kind == "docker":
                raise
            log(f"sandbox: Docker unavailable ({e}); falling back to local processes")
    return open_process_sandbox(workers, limits, hash_seeds, log)
