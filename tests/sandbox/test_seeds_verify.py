"""Every seed puzzle's reference solution verifies in the real Docker sandbox."""

from __future__ import annotations

import pytest

from puzzles.seeds import load_seeds
from sandbox.backend import open_sandbox
from sandbox.verdicts import VERIFIED
from sandbox.verify import SourcePair, verify_pairs

pytestmark = pytest.mark.docker


def test_every_seed_verifies_in_docker(docker_ready):
    seeds = load_seeds()
    pairs = [SourcePair(s.puzzle.source, solution.source) for s in seeds for solution in s.solutions]
    with open_sandbox("docker", log=lambda m: None) as sandbox:
        results = verify_pairs(pairs, sandbox, timeout_s=5.0)
    failures = {s.key: r for s, r in zip(seeds, results, strict=True) if r.status != VERIFIED}
    assert len(pairs) == len(seeds) == 852  # 78 families of 6-10 instances, 38 one-line ones of 6
    assert failures == {}
