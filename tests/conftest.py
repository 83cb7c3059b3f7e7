"""Shared fixtures: real sandboxes (Docker when reachable) and the P3 data beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
P3_DIR = REPO.parent / "shared" / "p3"


def docker_required() -> bool:
    """In CI the Docker engine is part of the environment: its absence is a failure, not a skip."""
    return os.environ.get("CI") == "true" or os.environ.get("FACTORY_REQUIRE_DOCKER") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first (stable otherwise): spread over parallel workers, the long ones then overlap
    instead of one of them running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def docker_ready() -> None:
    from sandbox.engine import SandboxUnavailable, docker_client
    from sandbox.image import build_image, has_image, image_tag

    try:
        client = docker_client()
        if not has_image(client, image_tag()):
            build_image(client, log=lambda m: None)
    except SandboxUnavailable as e:
        if docker_required():
            pytest.fail(f"Docker is required here: {e}")
        pytest.skip(f"no Docker engine: {e}")


@pytest.fixture(scope="session")
def p3_path() -> Path:
    path = P3_DIR / "puzzles.json"
    if not path.is_file():
        pytest.skip("P3 data (../shared/p3) is not beside this checkout")
    return path
