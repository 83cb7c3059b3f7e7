"""The proposer's learnability reward and drift report, read from a real round of the scripted model and
checked against the raw rows."""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from dataclasses import replace

from factory.loop.context import prepare_run
from factory.loop.proposer_reward import listing_pool, proposal_rewards, proposer_report
from factory.loop.training_data import sft_texts
from factory.loop.weights import learnability
from factory.store import STORE_FILENAME, RunStore
from tests.factory.played_run import copy_run, expected_rates, played_config, with_settings

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


def test_listings_show_each_generated_puzzle_by_its_reward_and_each_seed_once(run, rows):
    rates = expected_rates(rows)
    last = run.finished[-1]
    solved = {q["puzzle_id"] for q in rows.pairs if q["round"] <= last}
    limit = max(len(q["source"]) for q in rows.puzzles if q["origin"] == "seed")
    expected = Counter()
    for q in rows.puzzles:
        if q["id"] not in solved or q["round"] > last:
            continue
        if q["origin"] == "seed":
            expected[q["source"]] += 1
        elif len(q["source"]) <= limit:
            expected[q["source"]] += math.ceil(4 * learnability(rates[q["id"]]))
    with RunStore.open(run.run_dir, create=False) as store:
        weighted, plain = listing_pool(store, last, "learnability"), listing_pool(store, last, "none")
    assert Counter(weighted) == +expected
    assert len(set(plain)) == len(plain) > len(set(weighted))  # the unweighted pool: every solved puzzle once
    assert any(n > 1 for n in expected.values())  # some puzzle the attempts solved sometimes: shown more


def test_the_recipe_listings_draw_from_the_weighted_pool(run, tmp_path):
    last, config = run.finished[-1], played_config("http://127.0.0.1:9/v1")
    texts = {}
    for weighting in ("none", "learnability"):  # a setting of the run's identity: a store each
        run_dir = with_settings(copy_run(run, tmp_path / weighting), proposer_weighting=weighting)
        with prepare_run(run_dir, replace(config, proposer_weighting=weighting), None, log=lambda m: None,
                         show_progress=False) as ctx:
            texts[weighting] = sft_texts(ctx, last, ctx.config)
    listings = {w: [t for t in ts if t.count("def f") > 1] for w, ts in texts.items()}
    assert len(texts["none"]) == len(texts["learnability"])  # the same solve blocks and number of listings
    assert listings["none"] != listings["learnability"]
