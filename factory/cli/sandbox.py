"""`factory sandbox build|status`, and the sandbox options of every command that runs untrusted code.

Every command defaults to ``--sandbox docker`` (as the daemon does): unisolated local processes only
when asked for (``process``), or chosen by ``auto``, which says on stderr what it chose. ``ray`` runs
the same Docker pools on every node of a Ray cluster (``--ray-address``, else ``RAY_ADDRESS``, else a
local Ray instance).
"""

from __future__ import annotations

import argparse
import sys

from factory.config import SandboxSettings
from factory.errors import SANDBOX_EXIT
from factory.settings import add_options, record_from_args
from sandbox.backend import Sandbox, log_to_stderr
from sandbox.engine import SandboxUnavailable


def add_sandbox_options(parser: argparse.ArgumentParser, generation: bool = True) -> None:
    """SandboxSettings' options: ``--sandbox``, ``--workers``, ``--ray-address`` and (commands that
    generate) ``--generation-replicas``."""
    add_options(parser, SandboxSettings, None if generation else ("sandbox", "workers", "ray_address"))


def sandbox_settings_from(args: argparse.Namespace) -> SandboxSettings:
    return record_from_args(SandboxSettings, args)


def generation_options(args: argparse.Namespace) -> dict[str, object]:
    """``load_backend``'s options for where generation runs (``--generation-replicas``)."""
    from factory.models import replica_options

    placement = sandbox_settings_from(args)
    return replica_options(placement.generation_replicas, placement.ray_address)


def open_sandbox_from(args: argparse.Namespace) -> Sandbox:
    """The sandbox the options ask for. ``auto`` says what it chose: the fall-back to processes is
    announced by ``open_sandbox`` itself (why, then the no-isolation warning), docker here."""
    from sandbox.backend import open_sandbox

    placement = sandbox_settings_from(args)
    sandbox = open_sandbox(placement.sandbox, workers=placement.workers, log=log_to_stderr, ray_address=placement.ray_address)
    if placement.sandbox == "auto" and sandbox.kind == "docker":
        log_to_stderr(f"sandbox: auto chose docker ({sandbox.note}, {sandbox.workers} workers)")
    elif sandbox.kind == "ray":  # how many nodes took part is not obvious from the command line
        log_to_stderr(f"sandbox: ray, {sandbox.note}")
    return sandbox


def cmd_sandbox_build(args: argparse.Namespace) -> int:
    from sandbox.engine import docker_client
    from sandbox.image import build_image

    tag = build_image(docker_client(timeout_s=600), base=args.base, log=log_to_stderr)
    print(tag)
    return 0


def cmd_sandbox_status(args: argparse.Namespace) -> int:
    from sandbox.engine import docker_client, leftover_containers, sandbox_containers
    from sandbox.image import has_image, image_tag

    tag = image_tag()
    try:
        client = docker_client()
    except SandboxUnavailable as e:
        print(f"engine:     unreachable ({e})")
        print(f"image:      {tag} (unknown)")
        print(f"factory: sandbox unavailable: {e}", file=sys.stderr)
        return SANDBOX_EXIT
    version = client.version().get("Version", "?")
    print(f"engine:     reachable (Docker {version})")
    print(
        f"image:      {tag} {'present' if has_image(client, tag) else 'MISSING: run `factory sandbox build`'}"
    )
    live = sandbox_containers(client)
    leftovers = leftover_containers(client)
    print(
        f"containers: {len(live) - len(leftovers)} in use, {len(leftovers)} left over by dead runs"
        + (" (removed at the next start)" if leftovers else "")
    )
    return 0


def add_sandbox_commands(subparsers) -> None:
    p = subparsers.add_parser("sandbox", help="build or inspect the Docker sandbox")
    sub = p.add_subparsers(dest="sandbox_command", required=True)
    build = sub.add_parser("build", help="build the sandbox image (offline base image when it cannot pull)")
    build.add_argument("--base", default=None, help="base image (default python:3.11-slim)")
    build.set_defaults(handler=cmd_sandbox_build)
    status = sub.add_parser("status", help="engine reachable? image present? leftover containers?")
    status.set_defaults(handler=cmd_sandbox_status)
