"""Preference pairs and learnability weights read from the store of a real round (the scripted model,
the process sandbox)."""

from __future__ import annotations

import math
from collections import Counter

from factory.loop.preferences import (
    REJECTED_VERDICTS,
    preference_rows,
    spin_rows,
)
from factory.loop.seeds import seed_of
from factory.loop.weights import learnability, weighted_pairs
from factory.store import RunStore
from sandbox.verdicts import CRASHED, FLAKY, VERIFIED
from tests.factory.played_run import played_config
from tests.factory.scripted_model import scripted_completion


def test_rows_pair_a_stored_pair_with_a_failed_attempt_at_the_same_puzzle(run_dir, rows):
    with RunStore.open(run_dir, create=False) as store:
        preferences = preference_rows(store)
    attempts = {a["id"]: a for a in rows.attempts}
    paired = {p["attempt_id"] for p in rows.pairs}
    assert preferences
    for row in preferences:
        good, bad = attempts[row.chosen_attempt_id], attempts[row.rejected_attempt_id]
        assert good["id"] in paired and good["status"] == VERIFIED
        assert bad["status"] == row.rejected_verdict and bad["status"] in REJECTED_VERDICTS
        assert good["puzzle_id"] == bad["puzzle_id"] == row.puzzle_id
        assert good["round"] == bad["round"] == row.round
        assert row.chosen_solution == good["source"] and row.rejected_solution == bad["source"]
        tried = [a for a in rows.attempts if a["puzzle_id"] == row.puzzle_id and a["round"] == row.round]
        assert row.solve_rate == sum(a["status"] == VERIFIED for a in tried) / len(tried)
    # every distinct failed solution of a puzzle with a pair is used exactly once
    failed = {
        (a["puzzle_id"], a["solution_hash"])
        for a in rows.attempts
        if a["status"] in REJECTED_VERDICTS
        and any(attempts[p]["puzzle_id"] == a["puzzle_id"] for p in paired if p is not None)
    }
    used = [(r.puzzle_id, attempts[r.rejected_attempt_id]["solution_hash"]) for r in preferences]
    assert sorted(used) == sorted(failed)


def test_a_flaky_attempt_is_never_rejected_it_is_not_a_wrong_answer():
    assert FLAKY not in REJECTED_VERDICTS and CRASHED not in REJECTED_VERDICTS


def test_the_prompt_is_the_one_the_model_saw(run_dir, rows):
    """The scripted model's answer is a function of the prompt and the sampling seed: given the rebuilt
    prompt it writes again exactly what the round stored, for both sides."""
    config = played_config("http://unused")
    attempts = {a["id"]: a for a in rows.attempts}
    with RunStore.open(run_dir, create=False) as store:
        preferences = preference_rows(store)
    for row in preferences:
        assert row.chosen_solution == row.prompt.rsplit("\n", 1)[-1] + row.chosen
        for attempt_id, completion in ((row.chosen_attempt_id, row.chosen), (row.rejected_attempt_id, row.rejected)):
            a = attempts[attempt_id]
            seed = seed_of(config.seed, a["round"], "solve", a["batch"])
            assert scripted_completion(row.prompt, seed, a["idx"]).rstrip("\n") == completion


def test_spin_takes_any_own_sample_but_never_a_crash(run_dir, rows):
    with RunStore.open(run_dir, create=False) as store:
        spin = spin_rows(store, 1)
        dpo = preference_rows(store, [1])
    assert spin and {r.round for r in spin} == {1}
    assert {r.rejected_attempt_id for r in dpo} <= {r.rejected_attempt_id for r in spin}
    assert all(r.rejected_verdict not in (VERIFIED, CRASHED) for r in spin)


def test_learnability_resamples_pairs_by_solve_rate_and_drops_fully_solved_puzzles(run_dir, rows):
    assert [learnability(r) for r in (0.0, 0.25, 1.0)] == [0.0, 0.75, 0.0]
    with RunStore.open(run_dir, create=False) as store:
        weighted = Counter(weighted_pairs(store, 2, "learnability"))
    source = {p["id"]: p["source"] for p in rows.puzzles}
    expected: Counter = Counter()
    for pair in rows.pairs:
        if pair["round"] > 2:
            continue
        if pair["round"] == 0:
            copies = 1
        else:
            tried = [a for a in rows.attempts if a["puzzle_id"] == pair["puzzle_id"] and a["round"] == pair["round"]]
            rate = sum(a["status"] == VERIFIED for a in tried) / len(tried)
            copies = 0 if rate == 1.0 else math.ceil(4 * (1 - rate))
        expected[(source[pair["puzzle_id"]], pair["solution_source"])] += copies
    assert weighted == +expected
    assert any(n > 1 for n in weighted.values())
