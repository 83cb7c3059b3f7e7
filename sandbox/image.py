"""Building the sandbox image, with an offline fallback for machines that cannot pull a base image."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from sandbox.engine import SandboxUnavailable

WORKER_PATH = Path(__file__).with_name("worker.py")
DOCKERFILE_PATH = Path(__file__).resolve().parents[1] / "Dockerfile.sandbox"
IMAGE_REPOSITORY = "selfplay-factory-sandbox"
DEFAULT_BASE = "python:3.11-slim"
OFFLINE_BASE = "selfplay-factory-base"
DEBIAN_MIRROR = "http://deb.debian.org/debian"


def image_tag() -> str:
    """The image name for this exact worker and Dockerfile: a changed worker means a new image."""
    digest = hashlib.sha256(WORKER_PATH.read_bytes() + b"\0" + dockerfile_text().encode()).hexdigest()
    return f"{IMAGE_REPOSITORY}:{digest[:12]}"


def dockerfile_text() -> str:
    if not DOCKERFILE_PATH.is_file():
        raise SandboxUnavailable(f"{DOCKERFILE_PATH} is missing: run from a checkout of the project")
    return DOCKERFILE_PATH.read_text()


def has_image(client, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def build_image(client, base: str | None = None, log: Callable[[str], None] = print) -> str:
    """Build the sandbox image from Dockerfile.sandbox; return its tag.

    ``base`` defaults to the official slim Python image. When it is neither present nor pullable,
    an equivalent Debian base is built offline with debootstrap and ``docker import``.
    """
    import docker.errors

    tag = image_tag()
    base = base or DEFAULT_BASE
    if not has_image(client, base):
        try:
            log(f"pulling {base} ...")
            client.images.pull(base)
        except docker.errors.DockerException as e:
            log(f"cannot pull {base} ({first_line(e)}); building a Debian base offline instead")
            base = build_offline_base(client, log)
    with tempfile.TemporaryDirectory(prefix="factory-image-") as context:
        shutil.copy(WORKER_PATH, Path(context) / "worker.py")
        (Path(context) / "Dockerfile.sandbox").write_text(dockerfile_text())
        log(f"building {tag} FROM {base} ...")
        try:
            client.images.build(
                path=context,
                dockerfile="Dockerfile.sandbox",
                tag=tag,
                buildargs={"BASE": base},
                rm=True,
                forcerm=True,
                pull=False,
                network_mode="none",
            )
        except docker.errors.BuildError as e:
            tail = " | ".join(
                str(c.get("stream", c.get("error", ""))).strip() for c in list(e.build_log)[-5:]
            )
            raise SandboxUnavailable(f"building the sandbox image failed: {e.msg}: {tail}") from e
    log(f"built {tag}")
    return tag


def build_offline_base(client, log: Callable[[str], None] = print) -> str:
    """A minimal Debian with python3, made with debootstrap from the configured Debian mirror."""
    suite, mirror = debian_suite(), debian_mirror()
    name = f"{OFFLINE_BASE}:{suite}"
    if has_image(client, name):
        log(f"using the offline base {name} built earlier")
        return name
    if shutil.which("debootstrap") is None:
        raise SandboxUnavailable(
            "the base image cannot be pulled and debootstrap is missing: "
            "install it (apt-get install debootstrap) or make the base image pullable"
        )
    if os.geteuid() != 0:
        raise SandboxUnavailable("building the offline base with debootstrap needs root")
    with tempfile.TemporaryDirectory(prefix="factory-rootfs-") as work:
        rootfs = Path(work) / "rootfs"
        log(f"debootstrap {suite} from {mirror} (about a minute) ...")
        cmd = ["debootstrap", "--variant=minbase", "--include=python3", suite, str(rootfs), mirror]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SandboxUnavailable(f"debootstrap failed: {done.stderr.strip().splitlines()[-1:]}")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / cache, ignore_errors=True)
        tarball = Path(work) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        repository, tag = name.split(":")
        client.api.import_image_from_file(str(tarball), repository=repository, tag=tag)
    log(f"imported {name}")
    return name


def debian_suite() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return "bookworm"
    match = re.search(r"^VERSION_CODENAME=(\w+)", text, re.M)
    is_debian = re.search(r"^ID=debian", text, re.M)
    return match.group(1) if match and is_debian else "bookworm"


def debian_mirror() -> str:
    """The mirror apt already uses here (a local mirror or proxy works offline), else Debian's."""
    candidates = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, re.M):
            uri = match.group(1)
            if uri.startswith("http") and "security" not in uri:
                return uri
    return DEBIAN_MIRROR


def first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
