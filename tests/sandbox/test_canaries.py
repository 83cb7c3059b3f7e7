"""The canary catalogue gets its expected verdicts in both backends, and a flip is caught."""

from __future__ import annotations

import random

import pytest

from sandbox.backend import open_sandbox
from sandbox.canaries import CATALOGUE, CHEATS, GOOD, CanaryCounts, CanaryFlip, check, draw
from sandbox.verdicts import VERIFIED, WRONG, Result
from sandbox.verify import SourcePair, verify_pairs


@pytest.fixture(params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def sandbox(request):
    if request.param == "docker":
        request.getfixturevalue("docker_ready")
    with open_sandbox(request.param, workers=2, log=lambda m: None) as box:
        yield box


def test_every_canary_gets_its_verdict(sandbox):
    results = verify_pairs([SourcePair(c.f, c.g) for c in CATALOGUE], sandbox, timeout_s=5.0)
    wrong = [(c.name, r.status, r.detail) for c, r in zip(CATALOGUE, results, strict=True) if (r.status == VERIFIED) != c.must_verify]
    assert wrong == []
    assert check(CATALOGUE, results) == CanaryCounts(len(CHEATS), 0, len(GOOD), 0)


def test_a_flip_either_way_is_caught():
    cheat, good = CHEATS[0], GOOD[0]
    with pytest.raises(CanaryFlip, match="'bool for int' passed"):
        check([cheat, good], [Result(VERIFIED), Result(VERIFIED)])
    with pytest.raises(CanaryFlip, match="'int' failed"):
        check([cheat, good], [Result(WRONG), Result(WRONG)])


def test_draw_is_deterministic_and_mixes_both_kinds():
    first = draw(random.Random("s:1:solve:0"))
    assert first == draw(random.Random("s:1:solve:0"))
    assert sum(not c.must_verify for c in first) == 2 and sum(c.must_verify for c in first) == 1
