"""The proposer's learnability reward and drift report, read from a real round of the scripted model and
checked against the raw rows."""

from __future__ import annotations

import sqlite3

from factory.loop.proposer_reward import proposal_rewards, proposer_report
from factory.loop.weights import learnability
from factory.store import STORE_FILENAME, RunStore
from tests.factory.played_run import copy_run, expected_rates

ROUND = 1


def test_accepted_proposals_get_their_learnability_and_the_rest_zero(run, rows):
    rates = expected_rates(rows)  # the played run has no crashed attempt: every attempt has a verdict
    statuses = set()
    for round in sorted({p["round"] for p in rows.proposals}):
        with RunStore.open(run.run_dir, create=False) as store:
            rewards = proposal_rewards(store, round, max_chars=10**6)
            report = proposer_report(store, round)
        proposals = [p for p in rows.proposals if p["round"] == round]
        assert len(rewards) == len(proposals) == report.proposals
        for p in proposals:
            if p["status"] != "accepted":
                assert rewards[p["id"]] == 0.0
            elif p["puzzle_id"] in rates:
                assert rewards[p["id"]] == learnability(rates[p["puzzle_id"]])
            else:  # the open round's puzzles are not solved yet: no verdict, no reward
                assert rewards[p["id"]] is None
            statuses.add(p["status"])
        assert report.rewarded == sum(r is not None and r > 0 for r in rewards.values())
        assert report.masked == sum(r is None for r in rewards.values())
        accepted = [q["source"] for q in rows.puzzles if q["round"] == round and q["origin"] == "generated"]
        if accepted:
            assert report.mean_length == sum(map(len, accepted)) / len(accepted)
            assert 0.0 <= report.distance_to_seeds <= 1.0
        assert report.distinct_forms == sum(p["status"] in ("accepted", "trivial", "contaminated") for p in proposals)
    assert {"accepted", "invalid", "trivial", "duplicate"} <= statuses


def test_the_length_guard_and_crashed_attempts(run, rows, tmp_path):
    run_dir = copy_run(run, tmp_path / "run")
    with RunStore.open(run_dir, create=False) as store:
        assert all(r == 0.0 for r in proposal_rewards(store, ROUND, max_chars=10).values())  # every puzzle too long
        puzzle_id = store.puzzles_of_round(ROUND)[0].id
    db = sqlite3.connect(run_dir / STORE_FILENAME)
    with db:  # the sandbox lost every attempt at one puzzle: no verdict, no reward, never a 0
        db.execute("UPDATE attempts SET status = 'crashed' WHERE puzzle_id = ?", (puzzle_id,))
    db.close()
    with RunStore.open(run_dir, create=False) as store:
        rewards = proposal_rewards(store, ROUND, max_chars=10**6)
        report = proposer_report(store, ROUND)
    proposal = next(p for p in rows.proposals if p["puzzle_id"] == puzzle_id)
    assert rewards[proposal["id"]] is None and report.masked == 1
