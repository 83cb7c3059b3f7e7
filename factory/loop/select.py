"""The select stage's rule: which verified attempts of a round become training pairs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import groupby

from factory.loop.prompts import fits_every_position
from factory.store import RunStore, StoredAttempt
from sandbox.verdicts import VERIFIED


def select_pairs(store: RunStore, round: int, max_per_puzzle: int) -> int:
    """The select stage: store ``choose_pairs`` of ``round``'s attempts; returns how many were added.
    Running it again adds only what a raised ``max_per_puzzle`` now allows."""
    attempts = store.attempts_of_round(round)
    stored = store.pair_hashes(a.puzzle_id for a in attempts)
    return store.record_pairs(round, choose_pairs(attempts, stored, max_per_puzzle))


def choose_pairs(
    attempts: Sequence[StoredAttempt], stored: Mapping[int, set[str]], max_per_puzzle: int
) -> list[StoredAttempt]:
    """At most ``max_per_puzzle`` distinct shortest verified solutions per puzzle, in puzzle order, of
    those a prompt or training text can show (``fits_every_position``).

    ``stored`` maps a puzzle id to the solution hashes it already has as pairs (earlier rounds, a
    seed's reference solution): they count towards the limit, are never replaced, and an attempt
    with one of those hashes is not distinct. Ties in length go to the earlier attempt.
    """
    if max_per_puzzle < 1:
        raise ValueError(f"max_per_puzzle must be at least 1, got {max_per_puzzle}")
    verified = sorted(
        (a for a in attempts if a.status == VERIFIED and fits_every_position(a.source)),
        key=lambda a: (a.puzzle_id, a.length, a.id),
    )
    chosen: list[StoredAttempt] = []
    for puzzle_id, candidates in groupby(verified, key=lambda a: a.puzzle_id):
        have = set(stored.get(puzzle_id, ()))
        room = max_per_puzzle - len(have)
        for attempt in candidates:
            if room <= 0:
                break
            if attempt.solution_hash not in have:
                have.add(attempt.solution_hash)
                chosen.append(attempt)
                room -= 1
    return chosen
