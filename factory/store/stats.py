"""The one read model of a round: what the store says happened in it, counted in one snapshot.

``round_stats(store, round)`` gives a :class:`RoundStats`: the filter funnel, the verdict of every
attempt, the seconds per named step and the tokens generated, all read in one read transaction, so
the numbers agree with each other even while another process writes the round. The round summary
(``RUN_DIR/rounds/round-N.json``), the metrics, the report, ``factory status`` and the dataset card
read their per-round numbers from here and nowhere else.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from factory.store.records import (
    ACCEPTED,
    GENERATED,
    PROPOSAL_STATUSES,
    PROPOSE_STAGE,
    SOLVE_STAGE,
    VARIANT,
    RoundInfo,
    TokenUsage,
)
from factory.store.run_store import RunStore
from sandbox.canaries import CanaryCounts
from sandbox.verdicts import ALL_VERDICTS, VERIFIED

__all__ = [
    "add_usage",
    "describe_usage",
    "run_usage",
    "usage_cost",
    "Activity", "IncrementalStats", "RoundStats", "RunTotals", "add_up", "generated_pairs", "last_activity", "round_stats",
    "rounds_stats", "seed_pairs", "variant_counts",
]


def generation_seconds(timings: Mapping[str, float]) -> float:
    """Seconds spent generating (the steps named ``*generate``: propose, solve, eval)."""
    return sum(v for k, v in timings.items() if k.endswith("generate"))


def work_seconds(timings: Mapping[str, float]) -> float:
    """Seconds of the round's own work: every step but the evaluation (``eval.*``)."""
    return sum(v for k, v in timings.items() if not k.startswith("eval."))


@dataclass(frozen=True)
class RoundStats:
    """What round ``round`` produced, as the store holds it.

    ``funnel`` keys, in this order: proposed, every proposal status (``PROPOSAL_STATUSES``), puzzles,
    attempts, ``attempts_<verdict>`` for every verdict, solved_puzzles, pairs. ``verdicts``: attempts by
    verdict, every verdict present. ``timings``: seconds per named step ("propose.generate",
    "solve.verify", ...) summed over the round's batches. ``info`` is None for a round with no row in
    ``rounds`` (round 0: the seeds and the base model).
    """

    round: int
    info: RoundInfo | None
    funnel: dict[str, int]
    verdicts: dict[str, int]
    timings: dict[str, float]
    tokens: int
    canaries: CanaryCounts  # the verifier's canary pairs run with the round's solve batches
    usage: dict[str, TokenUsage] = field(default_factory=dict)  # by stage ("propose", "solve")

    @property
    def model(self) -> str | None:
        return self.info.model if self.info else None

    @property
    def finished(self) -> bool:
        return self.info is not None and self.info.finished_at is not None

    @property
    def proposed(self) -> int:
        return self.funnel["proposed"]

    @property
    def proposals(self) -> dict[str, int]:
        """Proposals by filter outcome, every status present."""
        return {status: self.funnel[status] for status in PROPOSAL_STATUSES}

    @property
    def attempts(self) -> int:
        return self.funnel["attempts"]

    @property
    def pairs(self) -> int:
        return self.funnel["pairs"]

    @property
    def verified_share(self) -> float | None:
        return self.verdicts[VERIFIED] / self.attempts if self.attempts else None

    @property
    def generate_seconds(self) -> float:
        return generation_seconds(self.timings)

    @property
    def tokens_per_second(self) -> float | None:
        """Generated tokens per second of generation; None when nothing was timed generating."""
        seconds = self.generate_seconds
        return self.tokens / seconds if seconds else None


@dataclass(frozen=True)
class RunTotals:
    """Several rounds' stats added up: counters over a whole run."""

    rounds: int
    proposals: dict[str, int]
    verdicts: dict[str, int]
    timings: dict[str, float]
    tokens: int
    pairs: int
    canaries: CanaryCounts

    @property
    def generate_seconds(self) -> float:
        return generation_seconds(self.timings)

    @property
    def work_seconds(self) -> float:
        return work_seconds(self.timings)

    @property
    def tokens_per_second(self) -> float | None:
        seconds = self.generate_seconds
        return self.tokens / seconds if seconds else None

    @property
    def pairs_per_second(self) -> float | None:
        """Kept pairs per second of round work (evaluation excluded)."""
        seconds = self.work_seconds
        return self.pairs / seconds if seconds else None


@dataclass(frozen=True)
class Activity:
    at: float  # Unix time
    what: str


# ---------------------------------------------------------------------------------------------------
# reading


def round_stats(store: RunStore, round: int) -> RoundStats:
    """The stats of ``round`` (zeros for a round that never ran), read in one snapshot."""
    with store.snapshot() as db:
        return _round_stats(db, round, store.round_info(round))


def rounds_stats(store: RunStore) -> tuple[RoundStats, ...]:
    """The stats of every started round (the ``rounds`` table, in round order), in one snapshot."""
    with store.snapshot() as db:
        return tuple(_round_stats(db, info.round, info) for info in store.rounds())


# The tables a round's stats count; their rows are only ever inserted (never updated or deleted), and
# SQLite gives a new row a rowid above every existing one, so rows added since a mark have rowid > mark.
_ROUND_TABLES = ("proposals", "puzzles", "attempts", "pairs", "batches", "canaries")
_RECOUNT_ALL_ROWS = 200_000  # more new rows than this since the last call: recount every round


class IncrementalStats:
    """``rounds_stats`` for a reader that asks again and again (the metrics endpoint, every scrape):
    each call recounts only the rounds that gained a row since the last one, and reuses the others'
    counts, so a call costs O(new rows + rounds) instead of O(store). The answer is the same as
    ``rounds_stats(store)``'s; rounds' info (finished, summary) is read afresh every time."""

    def __init__(self) -> None:
        self._store: tuple[str, int, str] | None = None  # which store file the counts below belong to
        self._marks: dict[str, int] = {}  # table -> its largest rowid when last counted
        self._stats: dict[int, RoundStats] = {}
        self._lock = threading.Lock()

    def rounds_stats(self, store: RunStore) -> tuple[RoundStats, ...]:
        with self._lock, store.snapshot() as db:
            created = db.execute("SELECT value FROM meta WHERE key = 'created_at'").fetchone()
            # A file put in its place (a copy, a backup) has another inode or creation time.
            identity = (str(store.path.resolve()), os.stat(store.path).st_ino, created[0] if created else "")
            if identity != self._store:  # another store, or the file was replaced: count afresh
                self._store, self._marks, self._stats = identity, {}, {}
            marks = {t: db.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {t}").fetchone()[0] for t in _ROUND_TABLES}
            dirty: set[int] = set()
            if sum(marks[t] - self._marks.get(t, 0) for t in _ROUND_TABLES) > _RECOUNT_ALL_ROWS:
                self._stats = {}  # so many new rows that recounting from the indexes is cheaper than reading them
            else:
                for table, mark in self._marks.items():
                    if marks[table] > mark:
                        # NOT INDEXED: a range of the rowid b-tree, where an index would be scanned whole.
                        rows = db.execute(f"SELECT DISTINCT round FROM {table} NOT INDEXED WHERE rowid > ?", (mark,))
                        dirty.update(r for (r,) in rows)
            result = []
            for info in store.rounds():
                cached = self._stats.get(info.round)
                if cached is None or info.round in dirty:
                    stats = _round_stats(db, info.round, info)
                else:
                    stats = replace(cached, info=info)
                self._stats[info.round] = stats
                result.append(stats)
            self._marks = marks
            return tuple(result)


def add_up(stats: Iterable[RoundStats]) -> RunTotals:
    """``stats`` added up: proposals by status, attempts by verdict, seconds by step, tokens, pairs.

    Every status and verdict is a key once a round is added; no rounds give empty dicts."""
    proposals: dict[str, int] = {}
    verdicts: dict[str, int] = {}
    timings: dict[str, float] = {}
    tokens = pairs = rounds = 0
    canaries = CanaryCounts()
    for s in stats:
        rounds += 1
        canaries += s.canaries
        for status, n in s.proposals.items():
            proposals[status] = proposals.get(status, 0) + n
        for verdict, n in s.verdicts.items():
            verdicts[verdict] = verdicts.get(verdict, 0) + n
        for step, seconds in s.timings.items():
            timings[step] = timings.get(step, 0.0) + seconds
        tokens += s.tokens
        pairs += s.pairs
    return RunTotals(rounds, proposals, verdicts, timings, tokens, pairs, canaries)


def generated_pairs(store: RunStore) -> int:
    """Pairs the run generated and kept: those of rounds > 0 (round 0 holds the seeds' references)."""
    with store.snapshot() as db:
        return db.execute("SELECT COUNT(*) FROM pairs WHERE round > 0").fetchone()[0]


def seed_pairs(store: RunStore) -> int:
    """Pairs of round 0: the seed puzzles' reference solutions."""
    with store.snapshot() as db:
        return db.execute("SELECT COUNT(*) FROM pairs WHERE round = 0").fetchone()[0]


def last_activity(store: RunStore) -> Activity | None:
    """The store's latest recorded step: a batch stored, a round started or finished, an evaluation."""
    with store.snapshot() as db:
        candidates: list[Activity] = []
        row = db.execute(
            "SELECT round, stage, batch, finished_at FROM batches ORDER BY finished_at DESC LIMIT 1"
        ).fetchone()
        if row:
            candidates.append(Activity(row[3], f"round {row[0]} {row[1]} batch {row[2]} stored"))
        for number, started, finished in db.execute("SELECT round, started_at, finished_at FROM rounds"):
            candidates.append(Activity(started, f"round {number} started"))
            if finished is not None:
                candidates.append(Activity(finished, f"round {number} finished"))
        row = db.execute("SELECT round, k, created_at FROM evals ORDER BY created_at DESC LIMIT 1").fetchone()
        if row:
            candidates.append(Activity(row[2], f"round {row[0]} pass@{row[1]} recorded"))
    return max(candidates, key=lambda a: a.at, default=None)


# ---------------------------------------------------------------------------------------------------
# the aggregates, on a connection inside a snapshot


def _round_stats(db: sqlite3.Connection, round: int, info: RoundInfo | None) -> RoundStats:
    verdicts = _verdict_counts(db, round)
    return RoundStats(
        round=round,
        info=info,
        funnel=_funnel(db, round, verdicts),
        verdicts=verdicts,
        timings=_stage_timings(db, round),
        tokens=_generated_tokens(db, round),
        canaries=_canary_counts(db, round),
        usage=_token_usage(db, round),
    )


def _canary_counts(db: sqlite3.Connection, round: int) -> CanaryCounts:
    row = db.execute(
        "SELECT COALESCE(SUM(cheats), 0), COALESCE(SUM(cheats_passed), 0), COALESCE(SUM(good), 0), "
        "COALESCE(SUM(good_failed), 0) FROM canaries WHERE round = ?",
        (round,),
    ).fetchone()
    return CanaryCounts(*row)


def _funnel(db: sqlite3.Connection, round: int, verdicts: Mapping[str, int]) -> dict[str, int]:
    counts: dict[str, int] = {"proposed": 0, **dict.fromkeys(PROPOSAL_STATUSES, 0)}
    for status, n in db.execute(
        "SELECT status, COUNT(*) FROM proposals WHERE round = ? GROUP BY status", (round,)
    ):
        counts[status] = n
        counts["proposed"] += n
    counts["puzzles"] = db.execute(
        "SELECT COUNT(*) FROM puzzles WHERE origin = ? AND round = ?", (GENERATED, round)
    ).fetchone()[0]
    counts["attempts"] = sum(verdicts.values())
    counts.update({f"attempts_{verdict}": n for verdict, n in verdicts.items()})
    counts["solved_puzzles"] = db.execute(
        "SELECT COUNT(DISTINCT puzzle_id) FROM attempts WHERE round = ? AND status = ?", (round, VERIFIED)
    ).fetchone()[0]
    counts["pairs"] = db.execute("SELECT COUNT(*) FROM pairs WHERE round = ?", (round,)).fetchone()[0]
    return counts


def variant_counts(store: RunStore, round: int) -> dict[str, int]:
    """The seed variants among ``round``'s proposals (``RunConfig.variant_share``): proposed, accepted,
    the puzzles an attempt verified, and the pairs kept from them."""
    with store.snapshot() as db:
        by_status = dict(db.execute(
            "SELECT status, COUNT(*) FROM proposals WHERE round = ? AND origin = ? GROUP BY status", (round, VARIANT)
        ).fetchall())
        solved = db.execute(
            "SELECT COUNT(DISTINCT a.puzzle_id) FROM attempts a JOIN proposals o ON o.puzzle_id = a.puzzle_id "
            "WHERE a.round = ? AND a.status = ? AND o.origin = ?", (round, VERIFIED, VARIANT)
        ).fetchone()[0]
        pairs = db.execute(
            "SELECT COUNT(*) FROM pairs p JOIN proposals o ON o.puzzle_id = p.puzzle_id "
            "WHERE p.round = ? AND o.origin = ?", (round, VARIANT)
        ).fetchone()[0]
    return {"proposed": sum(by_status.values()), ACCEPTED: by_status.get(ACCEPTED, 0), "solved_puzzles": solved,
            "pairs": pairs}


def _verdict_counts(db: sqlite3.Connection, round: int) -> dict[str, int]:
    counts = dict.fromkeys(ALL_VERDICTS, 0)
    rows = db.execute("SELECT status, COUNT(*) FROM attempts WHERE round = ? GROUP BY status", (round,))
    counts.update({status: n for status, n in rows})
    return counts


def _stage_timings(db: sqlite3.Connection, round: int) -> dict[str, float]:
    totals: dict[str, float] = {}
    for (text,) in db.execute("SELECT timings_json FROM batches WHERE round = ?", (round,)):
        for key, seconds in json.loads(text).items():
            totals[key] = totals.get(key, 0.0) + float(seconds)
    return totals


def _token_usage(db: sqlite3.Connection, round: int) -> dict[str, TokenUsage]:
    rows = db.execute(
        "SELECT stage, COALESCE(SUM(prompt_tokens), 0), SUM(tokens), "
        "GROUP_CONCAT(DISTINCT COALESCE(tokens_counted_by, 'unrecorded')) FROM batches "
        "WHERE round = ? AND stage IN (?, ?) GROUP BY stage ORDER BY stage",
        (round, PROPOSE_STAGE, SOLVE_STAGE),
    )
    return {
        stage: TokenUsage(prompt, completion, "+".join(sorted(set(counted.split(",")))))
        for stage, prompt, completion, counted in rows
    }


def _generated_tokens(db: sqlite3.Connection, round: int) -> int:
    row = db.execute("SELECT COALESCE(SUM(tokens), 0) FROM batches WHERE round = ?", (round,)).fetchone()
    return int(row[0])


def add_usage(usages: Iterable[Mapping[str, TokenUsage]]) -> dict[str, TokenUsage]:
    """Token usage by stage, summed over rounds (who counted: every way any round was counted)."""
    total: dict[str, TokenUsage] = {}
    for usage in usages:
        for stage, u in usage.items():
            before = total.get(stage, TokenUsage(counted_by=u.counted_by))
            counted = "+".join(sorted(set(before.counted_by.split("+")) | set(u.counted_by.split("+"))))
            total[stage] = TokenUsage(
                before.prompt_tokens + u.prompt_tokens, before.completion_tokens + u.completion_tokens, counted
            )
    return total


def run_usage(store: RunStore) -> dict[str, TokenUsage]:
    """The token usage of every round of the run in ``store``, by stage."""
    return add_usage(s.usage for s in rounds_stats(store))


def usage_cost(usage: Mapping[str, TokenUsage], prices: tuple[float, float]) -> float:
    """What the tokens of every stage of ``usage`` cost at ``prices`` (of a million prompt, completion tokens)."""
    return sum(u.cost(prices) for u in usage.values())


def describe_usage(usage: Mapping[str, TokenUsage], prices: tuple[float, float] | None) -> str:
    """One line: prompt and completion tokens per stage, who counted them, and their cost at ``prices``."""
    parts = [
        f"{stage} {u.prompt_tokens} prompt + {u.completion_tokens} completion tokens ({u.counted_by})"
        for stage, u in usage.items()
    ]
    if prices is not None:
        parts.append(f"cost {usage_cost(usage, prices):.4f} at {prices[0]:g},{prices[1]:g} per million")
    return "; ".join(parts) or "no tokens recorded"
