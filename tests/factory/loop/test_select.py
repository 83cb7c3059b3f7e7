"""The m-shortest-distinct selection rule, on plain records."""

from __future__ import annotations

import pytest

from factory.loop.select import choose_pairs
from factory.store import StoredAttempt
from sandbox.verdicts import ERROR, VERIFIED, WRONG


def attempt(id: int, puzzle: int, length: int, hash: str, status: str = VERIFIED, source: str = "") -> StoredAttempt:
    source = source or f"def g():\n    return {id}\n"
    return StoredAttempt(id, puzzle, 1, 0, id, source, hash, length, status, 0.0, "", "m", id)


def test_shortest_distinct_per_puzzle_and_stored_pairs_count():
    attempts = [
        attempt(1, 7, 26, "x30"),
        attempt(2, 7, 21, "ten"),
        attempt(3, 7, 24, "five+five"),
        attempt(4, 7, 21, "ten"),  # the same code again: not distinct
        attempt(5, 7, 10, "one", WRONG),  # shortest, but wrong
        attempt(6, 8, 30, "eleven"),
        attempt(7, 1, 5, "seed"),  # the seed's own solution: already a pair
        attempt(8, 1, 3, "a"),
        attempt(9, 1, 4, "ab"),
        attempt(10, 9, 2, "twelve", ERROR),
    ]
    chosen = choose_pairs(attempts, {1: {"seed"}}, max_per_puzzle=2)
    assert [a.id for a in chosen] == [8, 2, 3, 6]  # puzzle order, then shortest first
    assert [a.id for a in choose_pairs(attempts, {1: {"seed"}, 7: {"ten", "five+five"}}, 2)] == [8, 6]
    assert [a.id for a in choose_pairs(attempts, {1: {"seed"}}, 3)] == [8, 9, 2, 3, 1, 6]


def test_ties_go_to_the_earlier_attempt_and_the_limit_is_checked():
    tied = [attempt(5, 1, 4, "b"), attempt(3, 1, 4, "a")]
    assert [a.id for a in choose_pairs(tied, {}, 1)] == [3]
    with pytest.raises(ValueError):
        choose_pairs(tied, {}, 0)


@pytest.mark.parametrize("source", [
    "def g2():\n    return g1()\n",  # calls a name training texts give another function
    "def g2():\n    def g1():\n        return 3\n    return g1()\n",  # verifies, yet cannot be renamed g1
    "def g2(f1=3):\n    return f1\n",
    "def g():\n    return 1\n\ndef h():\n    return 2\n",  # two top-level functions
])
def test_a_solution_no_prompt_can_show_is_never_a_pair(source):
    """Every pair is written as g1, g2, ... in training texts and prompts: one that cannot be
    renamed so would stop a round's training (it stopped an experiment's unverified arm)."""
    attempts = [attempt(1, 7, 5, "a", source=source), attempt(2, 7, 30, "b", source="def g2(n=3):\n    return n * 2\n")]
    assert [a.id for a in choose_pairs(attempts, {}, max_per_puzzle=2)] == [2]
