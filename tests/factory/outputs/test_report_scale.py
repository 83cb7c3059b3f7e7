"""`factory report` at scale: the report reads the store a chunk or a round at a time and scores the
distance from the seeds on a bounded sample, yet its counts equal a plain whole-store computation (the
one the report did before it streamed) however the rows are chunked."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from factory.loop.weights import LEARNABILITY, pair_weights
from factory.outputs.report import SeedDistance, collect, collect_report, distances
from factory.store import INVALID, SEED, AttemptRow, ProposalRow, RunStore
from factory.store.report_reads import pair_chunks_by_round, proposal_chunks
from puzzles.canonical import canonical_hash
from puzzles.parse import parse_puzzle
from puzzles.records import InvalidProgram
from puzzles.seeds import load_seeds
from sandbox.verdicts import VERIFIED

ROUNDS = 3
ACCEPTED = 60  # per round: above the sample cap the tests set
CAP = 25


SHAPES = (
    "x % a == {m} and x > {k}",
    "str(x).count('{m}') == a and x < {k}",
    "x * x - a * x == {k} or x == {m}",
    "sum(int(d) for d in str(x)) == {m} and x // a > {k} and x % 2 == 1",
)


def source(n: int) -> str:
    body = SHAPES[n % len(SHAPES)].format(m=n % 5, k=n * 7)
    return f"def f(x: int, a={n + 3}) -> bool:\n    return {body}\n"


def trivial(n: int) -> str:
    return f"def f(x: int) -> bool:\n    return x != {n}\n"


def proposal(idx: int, raw: str, status: str) -> ProposalRow:
    if status != "accepted":
        return ProposalRow(idx, raw, status, "test")
    puzzle = parse_puzzle(raw)
    return ProposalRow(idx, raw, status, puzzle=puzzle, canonical_hash=canonical_hash(puzzle.source))


def round_rows(round: int) -> list[ProposalRow]:
    """Accepted puzzles, rejected copies (same text, and the same form written differently), trivial
    forms seen again in later rounds, a trivial form a later round accepts, a seed copy and junk."""
    rows: list[ProposalRow] = []
    for i in range(ACCEPTED):
        n = round * 1000 + i
        rows.append(proposal(len(rows), source(n), "accepted"))
        if i % 4 == 0:
            rows.append(proposal(len(rows), source(n), "duplicate"))  # the same text
        if i % 6 == 0:
            spaced = source(n).replace(" and ", "  and ")  # another text, the same canonical form
            rows.append(proposal(len(rows), spaced, "duplicate"))
    for k in range(round + 2):  # trivial forms 0, 1, ... reappear in every later round
        rows.append(proposal(len(rows), trivial(k), "trivial"))
    if round == 1:  # a form rejected now that round 3 accepts: new in round 1 only
        rows.append(proposal(len(rows), source(9999), "trivial"))
    if round == 3:
        rows.append(proposal(len(rows), source(9999), "accepted"))
    rows.append(proposal(len(rows), load_seeds("train")[round].puzzle.source, "duplicate"))
    rows.append(proposal(len(rows), "def f(x: int) -> bool\n    return", INVALID))
    rows.append(proposal(len(rows), "not python at all", "trivial"))  # unparsable: no form
    return rows


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("scale") / "run"
    with RunStore.open(run_dir) as store:
        store.record_config({"weighting": LEARNABILITY})
        store.add_seed_puzzles((s, canonical_hash(s.puzzle.source)) for s in load_seeds("train"))
        for round in range(1, ROUNDS + 1):
            store.start_round(round, f"m{round}")
            rows = round_rows(round)
            for batch, start in enumerate(range(0, len(rows), 32)):
                store.record_proposals(round, batch, rows[start : start + 32])
            for j, puzzle in enumerate(store.puzzles_of_round(round)):
                statuses = [VERIFIED, "wrong", "wrong"][: 1 + j % 3] if j % 5 else ["wrong"]
                attempts = [
                    AttemptRow(puzzle.id, k, f"def g():\n    return {k}\n", s) for k, s in enumerate(statuses)
                ]
                store.record_attempts(round, j, attempts)
            store.record_pairs(round, [a for a in store.attempts_of_round(round) if a.status == VERIFIED])
            store.finish_round(round, {"seconds": 10.0 * round})
    return run_dir


def exact(store: RunStore) -> dict[int, tuple[int, int, list[float], float | None]]:
    """Round -> (distinct, new, every accepted puzzle's distance, mean pair weight), by a whole-store
    scan that keeps every hash: the report's computation before it streamed."""
    seeds = [p for p in store.pool_puzzles(0, solved_only=False) if p.origin == SEED]
    distance = SeedDistance([p.source for p in seeds])
    known = {p.canonical_hash for p in seeds}
    weights = pair_weights(store, None, LEARNABILITY)
    found = {}
    for round in range(1, ROUNDS + 1):
        puzzles = {p.id: p for p in store.puzzles_of_round(round)}
        produced = set()
        for p in store.proposals_of_round(round):
            if p.status == INVALID:
                continue
            if p.puzzle_id in puzzles:
                produced.add(puzzles[p.puzzle_id].canonical_hash)
                continue
            try:
                produced.add(canonical_hash(parse_puzzle(p.raw).source))
            except InvalidProgram:
                pass
        new = produced - known
        known |= produced
        pair_weight = [weights[q.id] for q in store.stored_pairs() if q.round == round]
        mean = sum(pair_weight) / len(pair_weight) if pair_weight else None
        found[round] = (len(produced), len(new), [distance(p.source) for p in puzzles.values()], mean)
    return found


def test_counts_equal_the_whole_store_scan_and_distances_are_a_bounded_sample(run_dir, monkeypatch):
    monkeypatch.setattr(distances, "DISTANCE_SAMPLE", CAP)
    with RunStore.open(run_dir, create=False) as store:
        expected = exact(store)
        report = collect_report(store, run_dir)
    assert [r.round for r in report.rounds] == list(range(1, ROUNDS + 1))
    for r in report.rounds:
        distinct, new, every, mean = expected[r.round]
        assert (r.distinct, r.new) == (distinct, new)
        assert r.weight_mean == pytest.approx(mean)
        assert len(every) > CAP and len(r.seed_distances) == CAP
        assert set(r.seed_distances) <= set(every)  # a sample of the real distances, not estimates
        assert r.distance_mean == pytest.approx(statistics.mean(every), abs=0.05)
        assert r.distance_min >= min(every)
    # round 1: its 60 puzzles, 3 trivial forms and the form round 3 accepts are new, the seed copy is not
    assert (report.rounds[0].distinct, report.rounds[0].new) == (ACCEPTED + 5, ACCEPTED + 4)
    # round 3: trivial form 4 is new; its puzzle 9999 is not (round 1 produced it)
    assert report.rounds[2].new == ACCEPTED + 1
    assert len({round(d, 6) for r in report.rounds for d in r.seed_distances}) > 3  # varied puzzles


def test_a_round_within_the_cap_is_scored_whole_in_id_order(run_dir):
    with RunStore.open(run_dir, create=False) as store:
        expected = exact(store)
        report = collect_report(store, run_dir)
    for r in report.rounds:
        assert list(r.seed_distances) == pytest.approx(expected[r.round][2])  # ACCEPTED < DISTANCE_SAMPLE


def test_the_sample_is_seeded_by_round_and_kept_in_order():
    ids = list(range(100, 400))
    sample = distances.sampled_ids(ids, 2, cap=30)
    assert len(sample) == 30 and sample == sorted(sample) and set(sample) <= set(ids)
    assert sample == distances.sampled_ids(ids, 2, cap=30)
    assert sample != distances.sampled_ids(ids, 3, cap=30)
    assert distances.sampled_ids(ids[:30], 2, cap=30) == ids[:30]


@pytest.mark.parametrize("chunk_rows", [1, 3, 17])
def test_the_report_is_the_same_however_the_rows_are_chunked(run_dir, monkeypatch, chunk_rows):
    with RunStore.open(run_dir, create=False) as store:
        whole = collect_report(store, run_dir)
        monkeypatch.setattr(collect, "CHUNK_ROWS", chunk_rows)
        chunked = collect_report(store, run_dir)
    assert chunked == whole


def test_chunk_readers_hold_at_most_a_chunk_and_miss_nothing(run_dir):
    with RunStore.open(run_dir, create=False) as store:
        for accepted in (True, False):
            (whole,) = proposal_chunks(store, 2, 10**6, accepted=accepted)
            chunks = list(proposal_chunks(store, 2, 7, accepted=accepted))
            assert all(1 <= len(c) <= 7 for c in chunks)
            assert [tuple(r) for c in chunks for r in c] == [tuple(r) for r in whole]
            assert all((r["puzzle_hash"] is not None) == accepted for r in whole)
        pairs = list(pair_chunks_by_round(store, 5))
        assert all(1 <= len(c) <= 5 for c in pairs)
        assert [tuple(p) for c in pairs for p in c] == [
            (q.id, q.round, q.puzzle_id) for q in store.stored_pairs()
        ]
        with pytest.raises(ValueError):
            next(proposal_chunks(store, 1, 0, accepted=True))
