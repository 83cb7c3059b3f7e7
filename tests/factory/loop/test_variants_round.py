"""Seed variants in a real round: which items they are, where they are stored, and what they add."""

from __future__ import annotations

import ast
import json

import pytest

from factory.config import RunConfig
from factory.loop.context import prepare_run
from factory.loop.propose import is_variant
from factory.loop.rounds import RoundEvents, rounds_finished, run_rounds
from factory.store import VARIANT, RunStore, round_stats, variant_counts
from puzzles.parse import parse_puzzle
from sandbox.backend import open_sandbox
from tests.factory.scripted_model import ScriptedModelServer

QUIET = {"log": lambda message: None, "show_progress": False}


class Quiet(RoundEvents):
    def base_evaluated(self, pass_at_k: dict[int, float]) -> None:
        pass

    def round_finished(self, summary: dict) -> None:
        pass


@pytest.mark.parametrize(("share", "expected"), [(0.5, [1, 3, 5, 7, 9]), (0.25, [3, 7]), (0.0, []),
                                               (1.0, list(range(10))), (0.3, [3, 6, 9])])
def test_the_share_of_variant_items_is_spread_over_the_round(share, expected):
    assert [i for i in range(10) if is_variant(i, share)] == expected


def play(run_dir, share: float, rounds: int = 1, from_round: int = 1) -> RunStore:
    server = ScriptedModelServer()
    config = RunConfig(model="scripted", backend="openai", base_url=server.base_url, seed=2, train=False,
                       puzzles=8, variant_share=share, variants_from_round=from_round, attempts=3, batch_size=4,
                       propose_examples=2, timeout_s=5.0, eval_samples=2, eval_ks=(1,), eval_limit=3)
    try:
        with open_sandbox("process", workers=2, log=lambda message: None) as sandbox:
            with prepare_run(run_dir, config, sandbox, **QUIET) as ctx:
                run_rounds(ctx, rounds_finished(rounds), Quiet())
    finally:
        server.close()
    return RunStore.open(run_dir, create=False)


def test_a_round_proposes_seed_variants_stores_their_parent_and_counts_them(tmp_path):
    with play(tmp_path / "run", 0.5) as store:
        proposals = store.proposals_of_round(1)
        seeds = {p.key: p.source for p in store.pool_puzzles(up_to_round=0)}
        counts = variant_counts(store, 1)
        stats = round_stats(store, 1)
    variants = [p for p in proposals if p.origin == VARIANT]
    assert [p.idx for p in variants] == [1, 3, 5, 7]
    for p in variants:
        puzzle, parent = parse_puzzle(p.raw), parse_puzzle(seeds[p.parent])
        assert ast.dump(ast.parse(p.raw).body[0].body[-1]) == ast.dump(ast.parse(seeds[p.parent]).body[0].body[-1])
        assert puzzle.defaults != parent.defaults
    assert counts["proposed"] == 4 and counts["accepted"] == sum(p.status == "accepted" for p in variants)
    assert counts["pairs"] <= stats.pairs and counts["solved_puzzles"] <= stats.funnel["solved_puzzles"]
    summary = json.loads((tmp_path / "run" / "rounds" / "round-1.json").read_text())
    assert summary["variants"] == counts


def test_no_variants_when_the_share_is_zero(tmp_path):
    with play(tmp_path / "run", 0.0) as store:
        assert all(p.origin == "model" and p.parent is None for p in store.proposals_of_round(1))
        assert variant_counts(store, 1) == {"proposed": 0, "accepted": 0, "solved_puzzles": 0, "pairs": 0}


def test_variants_from_round_2_spare_round_1(tmp_path):
    with play(tmp_path / "run", 0.5, rounds=2, from_round=2) as store:
        assert variant_counts(store, 1)["proposed"] == 0
        assert [p.idx for p in store.proposals_of_round(2) if p.origin == VARIANT] == [1, 3, 5, 7]
