"""95% confidence intervals of pass@k: a seeded percentile bootstrap over the evaluation puzzles.

The unit of resampling is the puzzle: each of ``samples`` resamples draws as many puzzles as there are,
with replacement (``random.Random(seed).choices``), and takes the mean of their per-puzzle pass@k; the
interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of those means, linearly
interpolated between order statistics (numpy's default ``percentile``). The same seed gives the same
interval. ``paired_difference_interval`` resamples puzzles once for two models evaluated on the same
puzzles (the arms of an experiment), so their difference keeps the pairing.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from factory.loop.passk import pass_at_k
from factory.store import EvalRecord

BOOTSTRAP_SAMPLES = 2000
LEVEL = 0.95
SEED = 0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values``, linear between the order statistics."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def bootstrap_means(
    values: Sequence[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = SEED
) -> list[float]:
    """The means of ``samples`` resamples of ``values`` (with replacement, as many as there are)."""
    if not values:
        raise ValueError("cannot bootstrap no values")
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    rng = random.Random(seed)
    m = len(values)
    return [sum(rng.choices(values, k=m)) / m for _ in range(samples)]


def bootstrap_interval(
    values: Sequence[float], level: float = LEVEL, samples: int = BOOTSTRAP_SAMPLES, seed: int = SEED
) -> tuple[float, float]:
    """The percentile-bootstrap ``level`` interval of the mean of ``values``."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    means = bootstrap_means(values, samples, seed)
    return percentile(means, (1 - level) / 2), percentile(means, (1 + level) / 2)


def paired_difference_interval(
    a: Sequence[float],
    b: Sequence[float],
    level: float = LEVEL,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = SEED,
) -> tuple[float, float]:
    """The interval of mean(a) - mean(b) where ``a[i]`` and ``b[i]`` belong to the same puzzle."""
    if len(a) != len(b):
        raise ValueError(f"paired values differ in length: {len(a)} and {len(b)}")
    return bootstrap_interval([x - y for x, y in zip(a, b, strict=True)], level, samples, seed)


def per_puzzle_pass_at_k(solved: Mapping[str, int], n: int, k: int) -> dict[str, float]:
    """Puzzle key -> pass@k, from the verified samples ``c`` of each puzzle (of ``n`` drawn)."""
    return {key: pass_at_k(n, int(c), k) for key, c in solved.items()}


def pass_at_k_interval(
    solved: Mapping[str, int],
    n: int,
    k: int,
    level: float = LEVEL,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = SEED,
) -> tuple[float, float]:
    """The bootstrap interval of mean pass@k over the puzzles of one evaluation."""
    return bootstrap_interval(list(per_puzzle_pass_at_k(solved, n, k).values()), level, samples, seed)


def puzzle_counts(e: EvalRecord) -> dict[str, int]:
    """Puzzle key -> verified samples, as an evaluation keeps them (``details["solved"]``); empty for
    a record that kept none."""
    solved = e.details.get("solved") if isinstance(e.details, Mapping) else None
    return {str(key): int(c) for key, c in solved.items()} if isinstance(solved, Mapping) else {}


def eval_intervals(records: Sequence[EvalRecord], dataset: str) -> dict[str, list[float]]:
    """"k" -> [low, high] for the evaluations of ``dataset`` among ``records`` (one round's), from
    the per-puzzle counts they keep (``puzzle_counts``); records without them are left out."""
    intervals: dict[str, list[float]] = {}
    for e in records:
        solved = puzzle_counts(e)
        if e.dataset == dataset and solved:
            intervals[str(e.k)] = rounded(pass_at_k_interval(solved, e.n, e.k))
    return intervals


def rounded(interval: tuple[float, float], digits: int = 4) -> list[float]:
    return [round(interval[0], digits), round(interval[1], digits)]
