"""Training weights (factory.loop.weights) read from the store of a real round (the scripted model, the
process sandbox), against novelty and solve rates computed here from the raw rows by a plain scan."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from factory.loop.context import prepare_run
from factory.loop.preferences import preference_rows, weighted_rows
from factory.loop.training_data import preference_data
from factory.loop.weights import (
    MAX_COPIES,
    PuzzleDistance,
    learnability,
    novelties,
    pair_weights,
    puzzle_weights,
    weighted_pairs,
)
from factory.store import ACCEPTED, ProposalRow, RunStore
from puzzles.canonical import canonical_hash
from puzzles.parse import parse_puzzle
from puzzles.seeds import load_task_seeds
from tests.factory.played_run import copy_run, expected_novelty, expected_rates, played_config, with_settings

UNRELATED = (
    "def f(n: int) -> bool:\n"
    "    try:\n"
    "        import math\n"
    "        return math.gcd(n, 1_000_003) == 1 and n > 10 ** 9 and n & 0xFF == 0x3A\n"
    "    except Exception:\n"
    "        return False\n"
)


def test_novelty_is_zero_for_a_copy_of_a_seed_and_near_one_for_an_unrelated_puzzle(run, tmp_path):
    seeds = [s.puzzle.source for s in load_task_seeds("train")]
    distance = PuzzleDistance.of_sources(seeds)
    assert distance(seeds[7]) == 0.0 and distance(UNRELATED) > 0.9
    assert PuzzleDistance()(seeds[0]) == 1.0
    # in a store: a seed with other constants (a new canonical form, the same shingles) proposed in a round
    run_dir = copy_run(run, tmp_path / "run")
    copy = seeds[7].replace("pairs=10, depth=5", "pairs=17, depth=9")  # another instance
    assert canonical_hash(copy) != canonical_hash(seeds[7])
    with RunStore.open(run_dir, create=False) as store:
        store.start_round(4, "scripted")
        proposals = [
            ProposalRow(i, raw, ACCEPTED, puzzle=parse_puzzle(raw), canonical_hash=canonical_hash(raw))
            for i, raw in enumerate((copy, UNRELATED))
        ]
        store.record_proposals(4, 0, proposals)
        ids = {p.source: p.id for p in store.puzzles_of_round(4)}
        found = novelties(store)
    assert len(ids) == 2
    assert [found[i] for i in ids.values()] == [0.0, pytest.approx(distance(UNRELATED))]
    assert found[ids[parse_puzzle(UNRELATED).source]] > 0.9


def test_novelty_counts_the_seeds_and_earlier_rounds_only(run_dir, rows):
    with RunStore.open(run_dir, create=False) as store:
        found = novelties(store)
    expected = expected_novelty(rows)
    assert found == pytest.approx(expected)
    assert 0.0 in found.values() and any(0.5 < v < 1.0 for v in found.values())  # copies and new ones


def test_each_weighting_and_both_is_the_product(run_dir, rows):
    novelty, rates = expected_novelty(rows), expected_rates(rows)
    with RunStore.open(run_dir, create=False) as store:
        weights = {w: puzzle_weights(store, None, w) for w in ("none", "learnability", "novelty", "both")}
        by_pair = pair_weights(store, None, "both")
    assert set(weights["none"]) == set(novelty) and set(weights["none"].values()) == {1.0}
    for puzzle, value in novelty.items():
        learn = learnability(rates.get(puzzle, 1.0))
        assert weights["learnability"][puzzle] == pytest.approx(learn)
        assert weights["novelty"][puzzle] == pytest.approx(value)
        assert weights["both"][puzzle] == pytest.approx(learn * value)
    assert any(0 < w < 1 for w in weights["both"].values())
    for pair in rows.pairs:
        assert by_pair[pair["id"]] == (1.0 if pair["round"] == 0 else weights["both"][pair["puzzle_id"]])


@pytest.mark.parametrize("weighting", ["learnability", "novelty", "both"])
def test_pairs_are_resampled_by_weight_and_weight_zero_drops_them(run_dir, rows, weighting):
    novelty, rates = expected_novelty(rows), expected_rates(rows)
    source = {p["id"]: p["source"] for p in rows.puzzles}
    with RunStore.open(run_dir, create=False) as store:
        weighted = Counter(weighted_pairs(store, 2, weighting))
        unweighted = weighted_pairs(store, 2, "none")
        assert unweighted == store.training_pairs(up_to_round=2)
    expected: Counter = Counter()
    solved_by_all = set()
    for pair in rows.pairs:
        if pair["round"] > 2:
            continue
        key = (source[pair["puzzle_id"]], pair["solution_source"])
        if pair["round"] == 0:
            expected[key] += 1
            continue
        learn, novel = learnability(rates[pair["puzzle_id"]]), novelty[pair["puzzle_id"]]
        weight = {"learnability": learn, "novelty": novel, "both": learn * novel}[weighting]
        expected[key] += math.ceil(MAX_COPIES * weight)
        if rates[pair["puzzle_id"]] == 1.0:
            solved_by_all.add(key)
    assert weighted == +expected
    assert any(n > 1 for n in weighted.values())
    assert solved_by_all  # the played store has puzzles every attempt solved: dropped by learnability, both
    if weighting in ("learnability", "both"):
        assert not solved_by_all & set(weighted)


def test_dpo_rows_carry_their_puzzle_weight_and_are_resampled_in_training(run, tmp_path):
    run_dir = with_settings(copy_run(run, tmp_path / "run"), weighting="both", objective="dpo")
    with RunStore.open(run_dir, create=False) as store:
        weights = puzzle_weights(store, None, "both")
        rows = preference_rows(store, [1])
    assert rows and all(r.weight == pytest.approx(weights[r.puzzle_id]) for r in rows)
    assert len({r.weight for r in rows}) > 1
    resampled = Counter(r.rejected_attempt_id for r in weighted_rows(rows, "both"))
    assert resampled == +Counter({r.rejected_attempt_id: math.ceil(MAX_COPIES * r.weight) for r in rows})
    assert weighted_rows(rows, "none") == rows
    config = played_config("http://127.0.0.1:9/v1")
    config = type(config).from_json({**config.to_json(), "weighting": "both", "objective": "dpo"})
    with prepare_run(run_dir, config, None, log=lambda m: None, show_progress=False) as ctx:  # type: ignore[arg-type]
        trained = preference_data(ctx, 1, ctx.config)
    assert [r["rejected_attempt_id"] for r in trained] == [r.rejected_attempt_id for r in weighted_rows(rows, "both")]
    assert len(trained) != len(rows)
