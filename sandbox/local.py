"""The sandboxes of this machine: a pool of hardened Docker containers, or of local processes (no
isolation, said loudly). Each node of ``--sandbox ray`` opens the Docker one for itself."""

from __future__ import annotations

import os
from collections.abc import Callable

from sandbox.engine import SandboxUnavailable, docker_client, leftover_containers, remove_containers
from sandbox.image import build_image, has_image, image_tag
from sandbox.installation import HashSeeds
from sandbox.interface import Sandbox
from sandbox.links import DockerLink, ProcessLink, WorkerLimits
from sandbox.pool import WorkerPool

PROCESS_WARNING = (
    "WARNING: the process sandbox is NOT an isolation boundary: untrusted code runs as your user, "
    "with your files and network. Use the docker sandbox for anything you did not write."
)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def open_docker_sandbox(
    workers: int,
    limits: WorkerLimits,
    hash_seeds: HashSeeds,
    build_missing_image: bool,
    log: Callable[[str], None],
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
        return DockerLink(docker_client(), image, limits, hash_seeds)

    return Sandbox("docker", WorkerPool(start_link, workers, log), note=f"Docker image {image}")


def open_process_sandbox(
    workers: int, limits: WorkerLimits, hash_seeds: HashSeeds, log: Callable[[str], None]
) -> Sandbox:
    log(PROCESS_WARNING)
    pool = WorkerPool(lambda: ProcessLink(limits, hash_seeds), workers, log)
    return Sandbox("process", pool, note="local processes")
