"""The read model of a round (``factory.store.stats``) and the round summary, on a store written by a
real run, checked against the store's raw rows counted here."""

from __future__ import annotations

import json

import pytest

from factory.store import (
    PROPOSAL_STATUSES,
    AttemptRow,
    IncrementalStats,
    ProposalRow,
    RunStore,
    add_up,
    generated_pairs,
    last_activity,
    round_stats,
    rounds_stats,
    seed_pairs,
)
from sandbox.verdicts import ALL_VERDICTS, VERIFIED
from tests.factory.played_run import copy_run, without_zeros

# RUN_DIR/rounds/round-N.json: other tools read these keys, in this order.
SUMMARY_KEYS = [
    "round", "model", "funnel", "verdicts", "timings", "seconds", "tokens", "tokens_per_second", "canaries", "eval",
    "information_gain", "grpo", "proposer", "usage", "models", "variants", "held_out_loss",  # new keys come last: tools read the others in order
]
FUNNEL_KEYS = [
    "proposed", "invalid", "trivial", "duplicate", "contaminated", "accepted", "puzzles", "attempts",
    "attempts_verified", "attempts_wrong", "attempts_error", "attempts_timeout", "attempts_memory",
    "attempts_output", "attempts_invalid", "attempts_crashed", "attempts_flaky", "solved_puzzles", "pairs",
]


def test_the_played_run_has_what_these_tests_need(run, rows):
    statuses = {p["status"] for p in rows.proposals}
    assert {"accepted", "invalid", "trivial", "duplicate"} <= statuses
    assert {a["status"] for a in rows.attempts} >= {"verified", "wrong", "error"}
    assert [r["round"] for r in rows.rounds] == [1, 2, 3]
    assert all(rows.of("pairs", r) for r in run.finished) and not rows.of("pairs", run.open_round)


def test_round_stats_are_the_raw_rows_counted(run, rows):
    with RunStore.open(run.run_dir, create=False) as store:
        for r in (0, *run.finished, run.open_round, 9):  # 0: the seeds; 9: never started
            stats = round_stats(store, r)
            assert stats.round == r
            assert list(stats.funnel) == FUNNEL_KEYS
            assert without_zeros(stats.funnel) == without_zeros(rows.funnel(r)), r
            assert list(stats.verdicts) == list(ALL_VERDICTS)
            assert without_zeros(stats.verdicts) == dict(rows.verdict_counts(r))
            assert stats.proposals == {s: rows.proposal_counts(r)[s] for s in PROPOSAL_STATUSES}
            assert stats.timings == pytest.approx(rows.timings(r))
            assert stats.tokens == rows.tokens(r)
            assert stats.pairs == len(rows.of("pairs", r)) and stats.attempts == len(rows.of("attempts", r))
            assert stats.generate_seconds == pytest.approx(rows.generate_seconds(r))
            if rows.generate_seconds(r):
                assert stats.tokens_per_second == pytest.approx(rows.tokens(r) / rows.generate_seconds(r))
            else:
                assert stats.tokens_per_second is None
            if stats.attempts:
                verified = rows.verdict_counts(r)["verified"]
                assert stats.verified_share == pytest.approx(verified / stats.attempts)
            else:
                assert stats.verified_share is None
            started = [row for row in rows.rounds if row["round"] == r]
            assert stats.model == (started[0]["model"] if started else None)
            assert stats.finished == (r in run.finished)
            assert (stats.info is None) == (not started)


def test_rounds_stats_totals_and_pairs(run, rows):
    with RunStore.open(run.run_dir, create=False) as store:
        every = rounds_stats(store)
        assert [s.round for s in every] == [r["round"] for r in rows.rounds]
        assert every == tuple(round_stats(store, s.round) for s in every)
        assert generated_pairs(store) == rows.generated_pairs() > 0
        assert seed_pairs(store) == len(rows.of("pairs", 0)) > 0
    totals = add_up(every)
    played = [r["round"] for r in rows.rounds]
    assert totals.rounds == len(played)
    assert totals.pairs == rows.generated_pairs()
    assert totals.tokens == sum(rows.tokens(r) for r in played)
    for status in PROPOSAL_STATUSES:
        assert totals.proposals[status] == sum(rows.proposal_counts(r)[status] for r in played)
    for verdict in ALL_VERDICTS:
        assert totals.verdicts[verdict] == sum(rows.verdict_counts(r)[verdict] for r in played)
    steps = {k for r in played for k in rows.timings(r)}
    assert totals.timings == pytest.approx({k: sum(rows.timings(r).get(k, 0.0) for r in played) for k in steps})
    work = sum(v for k, v in totals.timings.items() if not k.startswith("eval."))
    assert work < sum(totals.timings.values())  # the evaluation's steps are left out
    assert totals.pairs_per_second == pytest.approx(totals.pairs / work)
    assert totals.tokens_per_second == pytest.approx(totals.tokens / sum(rows.generate_seconds(r) for r in played))
    nothing = add_up([])
    assert (nothing.rounds, nothing.proposals, nothing.tokens_per_second, nothing.pairs_per_second) == (0, {}, None, None)


def test_the_round_summary_file_says_what_the_rows_say(run, rows):
    base = rows.pass_at_k(0)
    assert sorted(base) == [1, 2]
    for r in run.finished:
        path = run.run_dir / "rounds" / f"round-{r}.json"
        summary = json.loads(path.read_text())
        (stored,) = [json.loads(row["summary_json"]) for row in rows.rounds if row["round"] == r]
        assert summary == stored
        assert list(summary) == SUMMARY_KEYS
        assert summary["round"] == r and summary["model"] == rows.of("rounds", r)[0]["model"]
        assert list(summary["funnel"]) == FUNNEL_KEYS
        assert without_zeros(summary["funnel"]) == without_zeros(rows.funnel(r))
        assert list(summary["verdicts"]) == list(ALL_VERDICTS)
        assert without_zeros(summary["verdicts"]) == dict(rows.verdict_counts(r))
        solve_batches = [b for b in rows.of("batches", r) if b["stage"] == "solve"]
        assert len(rows.of("canaries", r)) == len(solve_batches) > 0  # canaries rode with every solve batch
        assert summary["canaries"] == rows.canary_counts(r)
        assert summary["canaries"]["cheats"] == 2 * len(solve_batches) and summary["canaries"]["cheats_passed"] == 0
        timings = rows.timings(r)
        assert list(summary["timings"]) == sorted(timings)
        assert summary["timings"] == pytest.approx({k: round(v, 3) for k, v in timings.items()}, abs=1.01e-3)
        assert summary["tokens"] == rows.tokens(r)
        for stage in ("propose", "solve"):  # the scripted server reports completion tokens only
            usage = summary["usage"][stage]
            assert usage["counted_by"] == "estimate" and usage["prompt_tokens"] > 0
            assert usage["completion_tokens"] == sum(b["tokens"] for b in rows.of("batches", r) if b["stage"] == stage)
        assert summary["usage"]["cost"] is None  # no price_per_mtok
        assert summary["models"]["propose"]["backend"] == summary["models"]["student"]["backend"] == "openai"
        assert summary["tokens_per_second"] == pytest.approx(rows.tokens(r) / rows.generate_seconds(r), abs=5.1e-4)
        assert sum(timings.values()) <= summary["seconds"] + 1e-3  # the round's wall time holds every step
        dataset = {e["dataset"] for e in rows.evals}
        intervals = {key: summary["eval"].pop(key) for key in ("pass_at_k_ci", "base_pass_at_k_ci")}
        parts = {key: summary["eval"].pop(key) for key in ("parts", "base_parts")}  # tests/factory/loop/test_parts.py
        assert parts["parts"].keys() == parts["base_parts"].keys()
        assert summary["eval"] == {
            "dataset": dataset.pop(),
            "pass_at_k": {str(k): v for k, v in rows.pass_at_k(r).items()},
            "base_pass_at_k": {str(k): v for k, v in base.items()},
        }
        assert not dataset
        for key, values in (("pass_at_k_ci", rows.pass_at_k(r)), ("base_pass_at_k_ci", base)):
            assert set(intervals[key]) == {str(k) for k in values}  # every k has its 95% interval
            for k, value in values.items():
                low, high = intervals[key][str(k)]
                assert 0.0 <= low <= value + 1e-4 and value - 1e-4 <= high <= 1.0
    assert not (run.run_dir / "rounds" / f"round-{run.open_round}.json").exists()


def test_stats_read_one_snapshot_while_another_connection_writes(run, tmp_path):
    run_dir = copy_run(run, tmp_path / "run")
    rows = [ProposalRow(i, f"def f(x: int) -> bool\n    return x == {i}\n", "invalid", "syntax") for i in range(3)]
    with RunStore.open(run_dir, create=False) as reader, RunStore.open(run_dir, create=False) as writer:
        with reader.snapshot():
            before = round_stats(reader, run.open_round)
            writer.record_proposals(run.open_round, 99, rows, timings={"propose.generate": 2.0}, tokens=50)
            assert round_stats(reader, run.open_round) == before  # the snapshot holds
            assert rounds_stats(reader)[-1] == before
        after = round_stats(reader, run.open_round)
    assert after.proposed == before.proposed + 3 and after.funnel["invalid"] == before.funnel["invalid"] + 3
    assert after.tokens == before.tokens + 50
    assert after.timings["propose.generate"] == pytest.approx(before.timings["propose.generate"] + 2.0)


def test_incremental_stats_recount_only_the_rounds_that_changed(run, tmp_path):
    run_dir = copy_run(run, tmp_path / "run")
    first, last = run.finished[0], run.open_round
    incremental = IncrementalStats()
    with RunStore.open(run_dir, create=False) as store:
        before = incremental.rounds_stats(store)
        assert before == rounds_stats(store)
        puzzle = store.puzzles_of_round(first)[0]
        # A finished round gains an attempt, the open one proposals and its end: both are recounted.
        store.record_attempts(first, 99, [AttemptRow(puzzle.id, 999, "def g():\n    return 1\n", VERIFIED)])
        store.record_proposals(last, 99, [ProposalRow(0, "def f(:", "invalid", "syntax")], tokens=7)
        store.finish_round(last, {"round": last})
        after = incremental.rounds_stats(store)
        assert after == rounds_stats(store) != before
        by_round = {s.round: (b, s) for b, s in zip(before, after, strict=True)}
        assert by_round[first][1].attempts == by_round[first][0].attempts + 1
        assert by_round[last][1].proposed == by_round[last][0].proposed + 1 and by_round[last][1].finished
        for r, (old, new) in by_round.items():  # the others' counts are reused, not recounted
            assert (new.funnel is old.funnel) == (r not in (first, last)), r
        assert incremental.rounds_stats(store) == after
    with RunStore.open(tmp_path / "other") as other:  # another store: counted afresh
        assert incremental.rounds_stats(other) == ()


def test_last_activity_is_the_latest_timestamp_of_the_store(run, rows):
    stamps = [b["finished_at"] for b in rows.batches] + [e["created_at"] for e in rows.evals]
    stamps += [r["started_at"] for r in rows.rounds] + [r["finished_at"] for r in rows.rounds if r["finished_at"]]
    with RunStore.open(run.run_dir, create=False) as store:
        activity = last_activity(store)
    assert activity is not None and activity.at == max(stamps)
    assert activity.what.startswith(f"round {run.open_round} propose batch")  # it died after proposing


def test_last_activity_of_an_empty_store_is_none(tmp_path):
    with RunStore.open(tmp_path / "run") as store:
        assert last_activity(store) is None
        assert rounds_stats(store) == ()
        assert generated_pairs(store) == 0
