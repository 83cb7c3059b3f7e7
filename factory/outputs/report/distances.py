"""How far a round's accepted puzzles are from the seeds, on a bounded, seeded sample of them.

Scoring a puzzle costs about a millisecond (its token shingles, then a search of the seeds' index), so
a round is scored on at most ``DISTANCE_SAMPLE`` of its accepted puzzles: all of them, in id order, in
a round that has no more; else a sample drawn with the round number as seed (the same on every report
of the store), in id order. The mean and minimum shown are the sample's.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from factory.loop.weights import PuzzleDistance
from factory.store import RunStore
from factory.store.report_reads import generated_ids, puzzle_sources
from puzzles.canonical import near_duplicate_tokens

# Accepted puzzles scored per round, at most. Distances spread ~0.08 (standard deviation, in the scale
# benchmark), so a sampled mean has a standard error ~0.0025 (measured at 100k: within 0.005 of the
# exact mean in each of 10 rounds), about the two decimals the page shows, for ~1.5 s a round.
DISTANCE_SAMPLE = 1000


class SeedDistance(PuzzleDistance):
    """1 - the highest near-duplicate similarity of a puzzle to any seed (the rule of novelty)."""

    def __init__(self, seed_sources: Sequence[str]):
        super().__init__(near_duplicate_tokens(source) for source in seed_sources)


def sampled_ids(ids: Sequence[int], round: int, cap: int | None = None) -> list[int]:
    """``ids`` whole when there are at most ``cap`` (default ``DISTANCE_SAMPLE``), else ``cap`` of them
    drawn with seed ``round``, in their order."""
    cap = DISTANCE_SAMPLE if cap is None else cap
    if len(ids) <= cap:
        return list(ids)
    chosen = sorted(random.Random(round).sample(range(len(ids)), cap))
    return [ids[i] for i in chosen]


def seed_distances(
    store: RunStore, round: int, distance: SeedDistance, cap: int | None = None
) -> tuple[float, ...]:
    """``distance`` of each sampled accepted puzzle of ``round`` (``sampled_ids``), in id order."""
    ids = sampled_ids(generated_ids(store, round), round, cap)
    sources = puzzle_sources(store, ids)
    return tuple(distance(sources[i]) for i in ids)
