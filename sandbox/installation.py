"""What belongs to this installation: its cache dir, and a secret made there once, from which f's hash
seeds are derived, so that a verdict is the same in every run and worker here while g, which never
sees the secret, cannot derive f's hash seed."""

from __future__ import annotations

import hmac
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sandbox.worker import MAX_HASH_SEED

SECRET_NAME = "hash-secret"
SECRET_BYTES = 32


def cache_root() -> Path:
    """The factory's cache dir (the embedded model is cached there too): ``$XDG_CACHE_HOME/selfplay-factory``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "selfplay-factory"


@dataclass(frozen=True)
class HashSeeds:
    """f's PYTHONHASHSEED in a pair's first run and in its recheck: two values, so that an f whose verdict
    hangs on the order of a set of strings is often caught as ``flaky``."""

    first: int
    recheck: int


def installation_secret(root: Path | None = None) -> bytes:
    """This installation's secret: random bytes in a file of mode 0600 in the cache dir (``root``),
    made by the first call and read by every later one. It is made whole in a temporary file and
    linked into place, so that two processes starting at once read the same one."""
    root = cache_root() if root is None else root
    path = root / SECRET_NAME
    if not path.exists():
        root.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=root, prefix=SECRET_NAME)  # mode 0600
        try:
            os.write(fd, os.urandom(SECRET_BYTES))
            os.close(fd)
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made it meanwhile: theirs is the secret
        finally:
            os.unlink(temporary)
    secret = path.read_bytes()
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"{path} is not a secret this factory made: remove it and a new one is made")
    return secret


def derived_hash_seeds(secret: bytes) -> HashSeeds:
    def seed(use: bytes) -> int:
        return 1 + int.from_bytes(hmac.digest(secret, use, "sha256")[:8], "big") % MAX_HASH_SEED

    return HashSeeds(first=seed(b"f's first run"), recheck=seed(b"f's recheck"))


def installation_hash_seeds() -> HashSeeds:
    return derived_hash_seeds(installation_secret())
