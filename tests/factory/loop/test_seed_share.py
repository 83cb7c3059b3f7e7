"""A few seeds among many generated pairs: the recipe repeats them up to a share of the training pairs."""

from __future__ import annotations

import pytest

from factory.config import RunConfig
from factory.errors import SettingError
from factory.loop.weights import with_seed_share

SEEDS = [(f"def f(x: int, n={i}):\n    return x == n\n", f"def g(n={i}):\n    return n\n") for i in range(3)]
GENERATED = [(f"def f(s: str, t='{i}'):\n    return s == t\n", f"def g(t='{i}'):\n    return t\n") for i in range(10)]


def test_the_seeds_repeat_in_place_until_they_are_the_share():
    pairs = SEEDS + GENERATED
    shared = with_seed_share(pairs, SEEDS, 0.5)
    assert [p for p in shared if p not in SEEDS] == GENERATED  # the generated pairs once, in order
    assert all(shared.count(seed) == 4 for seed in SEEDS)  # ceil(0.5 * 10 / (0.5 * 3)) = 4 each
    assert sum(p in SEEDS for p in shared) / len(shared) >= 0.5
    assert shared[:4] == [SEEDS[0]] * 4


def test_seeds_already_the_share_or_none_at_all_change_nothing():
    assert with_seed_share(SEEDS + GENERATED[:2], SEEDS, 0.5) == SEEDS + GENERATED[:2]
    assert with_seed_share(GENERATED, SEEDS, 0.5) == GENERATED  # an arm without the seeds
    assert with_seed_share(SEEDS + GENERATED, SEEDS, 0.0) == SEEDS + GENERATED
    assert with_seed_share(SEEDS, SEEDS, 0.9) == SEEDS  # seeds alone: already all of it


@pytest.mark.parametrize("share", [-0.1, 1.0, 2.0])
def test_a_share_outside_0_to_1_is_refused(share):
    with pytest.raises(SettingError, match="seed_share"):
        RunConfig(seed_share=share)
