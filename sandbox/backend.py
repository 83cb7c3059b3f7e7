"""Choosing and opening a sandbox: Docker containers, or local processes where Docker is missing."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from sandbox.engine import SandboxUnavailable, docker_client, leftover_containers, remove_containers
from sandbox.image import build_image, has_image, image_tag
from sandbox.links import DockerLink, ProcessLink, WorkerLimits
from sandbox.pool import WorkerPool
from sandbox.verdicts import Job, Result

KINDS = ("docker", "process", "auto", "ray")
PROCESS_WARNING = (
    "WARNING: the process sandbox is NOT an isolation boundary: untrusted code runs as your user, "
    "with your files and network. Use the docker sandbox for anything you did not write."
)


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Sandbox:
    """A pool of workers of one kind. Use as a context manager: closing removes every container."""

    def __init__(self, kind: str, pool: WorkerPool, note: str = ""):
        self.kind = kind
        self.pool = pool
        self.note = note  # why this kind was chosen, for summaries

    @property
    def workers(self) -> int:
        return self.pool.size

    def run(
        self, jobs: Sequence[Job], on_result: Callable[[int, Result], None] | None = None
    ) -> list[Result]:
        return self.pool.run(jobs, on_result)

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


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
    if kind == "ray":
        from sandbox.ray_sandbox import open_ray_sandbox  # Ray is optional and slow to import

        return open_ray_sandbox(workers, limits, build_missing_image, log, ray_address)
    workers = workers or default_workers()
    if kind in ("docker", "auto"):
        try:
            return open_docker_sandbox(workers, limits, build_missing_image, log)
        except SandboxUnavailable as e:
            if kind == "docker":
                raise
            log(f"sandbox: Docker unavailable ({e}); falling back to local processes")
    log(PROCESS_WARNING)
    return Sandbox("process", WorkerPool(lambda: ProcessLink(limits), workers, log), note="local processes")


def open_docker_sandbox(
    workers: int, limits: WorkerLimits, build_missing_image: bool, log: Callable[[str], None]
) -> Sandbox:
    client = docker_client()
    swept = remove_containers(leftover_containers(client))
    if swept:
        log(f"sandbox: removed {swept} container(s) left by an earlier run")
    image = image_tag()
    if not has_image(client, image):
        if not build_missing_image:
            raise SandboxUnavailable(f"the sandbox image {image} is missing: run `factory sandbox build`")
        log(f"sandbox: image {image} missing; building it now")
        build_image(client, log=log)

    def start_link() -> DockerLink:
        return DockerLink(docker_client(), image, limits)

    return Sandbox("docker", WorkerPool(start_link, workers, log), note=f"Docker image {image}")
