"""Sampling seeds derived from the run seed and a piece of work's coordinates, nothing else."""

from __future__ import annotations

import hashlib


def seed_of(run_seed: int, round: int, stage: str, batch: int) -> int:
    """A sampling seed for one batch that depends on nothing but its coordinates."""
    digest = hashlib.sha256(f"{run_seed}:{round}:{stage}:{batch}".encode()).digest()
    return int.from_bytes(digest[:4], "big")
