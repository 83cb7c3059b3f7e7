"""Canary pairs: known cheats that must never verify and known good pairs that must, run beside real
work so that a verifier that silently starts accepting (or rejecting) everything is caught at once.

Each canary is cheap (well inside any timeout, and none breaks its worker), so a few can ride along
with every verification batch of a round. A canary whose verdict flips is a ``CanaryFlip``: the
verdicts of that batch cannot be trusted, and nothing of it may be stored.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.verdicts import VERIFIED, Result


@dataclass(frozen=True)
class Canary:
    name: str
    f: str
    g: str
    must_verify: bool  # a good pair (True) or a cheat (False)


class CanaryFlip(RuntimeError):
    """A canary got the wrong verdict: the verifier is broken; the message names the canary."""


_F_INT = "def f(x: int, n=6):\n    return x == n\n"
_F_STR = 'def f(s: str, t="yes"):\n    return s == t\n'
_F_LIST = "def f(li: List[int], n=3):\n    return li == list(range(n))\n"

def _cheats(*rows: tuple[str, str, str]) -> tuple[Canary, ...]:
    return tuple(Canary(name, f, g, must_verify=False) for name, f, g in rows)


_EQUAL_TO_EVERYTHING = (
    "def g(t='yes'):\n    class Yes(str):\n        def __eq__(self, other):\n            return True\n"
    "        __hash__ = str.__hash__\n    return Yes('no')\n"
)
_FORGED_RESULT = (
    "def g(n=6):\n    import os\n    for fd in range(3, 64):\n        try:\n            os.write(fd, b'T')\n"
    "        except OSError:\n            pass\n    return 5\n"
)
CHEATS = _cheats(
    ("bool for int", _F_INT, "def g(n=6):\n    return True\n"),
    ("float for int", _F_INT, "def g(n=6):\n    return 6.0\n"),
    ("str for List[int]", _F_LIST, "def g(n=3):\n    return '[0, 1, 2]'\n"),
    ("mixed list", _F_LIST, "def g(n=3):\n    return [0, 1, '2']\n"),
    ("object equal to everything", _F_STR, _EQUAL_TO_EVERYTHING),
    ("prints True and exits 0", _F_INT, "def g(n=6):\n    print(True)\n    raise SystemExit(0)\n"),
    ("os._exit(0)", _F_INT, "def g(n=6):\n    import os\n    os._exit(0)\n"),
    ("forged result on every descriptor", _F_INT, _FORGED_RESULT),
    ("wrong answer", _F_STR, "def g(t='yes'):\n    return 'no'\n"),
    ("raises", _F_INT, "def g(n=6):\n    raise ValueError(n)\n"),
)
GOOD = tuple(
    Canary(name, f, g, must_verify=True)
    for name, f, g in (
        ("int", _F_INT, "def g(n=6):\n    return n\n"),
        ("str", _F_STR, "def g(t='yes'):\n    return t\n"),
        ("List[int]", _F_LIST, "def g(n=3):\n    return list(range(n))\n"),
    )
)
CATALOGUE = CHEATS + GOOD


def draw(rng: random.Random, cheats: int = 2, good: int = 1) -> list[Canary]:
    """A few canaries for one batch: ``cheats`` cheats and ``good`` good pairs, drawn with ``rng``."""
    return rng.sample(CHEATS, min(cheats, len(CHEATS))) + rng.sample(GOOD, min(good, len(GOOD)))


@dataclass(frozen=True)
class CanaryCounts:
    """How the canaries of some batches fared; a healthy verifier has both failure counts at 0."""

    cheats: int = 0
    cheats_passed: int = 0
    good: int = 0
    good_failed: int = 0

    def __add__(self, other: CanaryCounts) -> CanaryCounts:
        return CanaryCounts(
            self.cheats + other.cheats,
            self.cheats_passed + other.cheats_passed,
            self.good + other.good,
            self.good_failed + other.good_failed,
        )

    def describe(self) -> str:
        return f"{self.cheats_passed} of {self.cheats} cheats passed, {self.good_failed} of {self.good} good pairs failed"


def check(canaries: Sequence[Canary], results: Sequence[Result]) -> CanaryCounts:
    """Counts of ``canaries``' verdicts; raises ``CanaryFlip`` when any canary got the wrong one."""
    flips = [
        f"{c.name!r} {'failed' if c.must_verify else 'passed'} ({r.status}: {r.detail[:120]})"
        for c, r in zip(canaries, results, strict=True)
        if (r.status == VERIFIED) != c.must_verify
    ]
    counts = CanaryCounts(
        cheats=sum(not c.must_verify for c in canaries),
        cheats_passed=sum(not c.must_verify and r.status == VERIFIED for c, r in zip(canaries, results, strict=True)),
        good=sum(c.must_verify for c in canaries),
        good_failed=sum(c.must_verify and r.status != VERIFIED for c, r in zip(canaries, results, strict=True)),
    )
    if flips:
        raise CanaryFlip(
            "the verifier gave a canary the wrong verdict, so its verdicts cannot be trusted: "
            + "; ".join(flips)
        )
    return counts
