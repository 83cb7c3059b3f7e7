"""The run store: one SQLite file per run directory, the single source of truth of a self-play run.

Every stage reads its input from here and writes its output here, one transaction per batch. A batch's
rows and its completion marker (a row of ``batches``) commit together, so after a crash, ``kill -9`` or
SIGTERM a batch is either entirely stored or entirely absent, and a resumed round redoes exactly the
batches without a marker (``is_batch_done``).

Durability (WAL, ``synchronous=NORMAL``) and the transactions: ``factory.store.connection``.

Integrity rules the store enforces itself rather than trusting callers:
- a puzzle's canonical hash is unique across the whole run (seeds and every round);
- hashes on the blocklist (the evaluation puzzles) never enter as puzzles and never reach
  ``pool_puzzles`` or ``training_pairs``; a seed with ``split == "test"`` is refused;
- proposals, attempts and markers need a started round; attempts and pairs need a stored puzzle.

Use one ``RunStore`` per thread; other threads and processes open their own.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence

from factory.errors import StoreError
from factory.store.connection import StoreFile
from factory.store.hashes import StoredHashes
from factory.store.records import (
    ACCEPTED,
    CONTAMINATED,
    DUPLICATE,
    GENERATED,
    PROPOSAL_STATUSES,
    PROPOSE_STAGE,
    SEED,
    SELECT_STAGE,
    SOLVE_STAGE,
    AttemptRow,
    CheckpointInfo,
    EvalRecord,
    ProposalRow,
    RoundInfo,
    StoredAttempt,
    StoredPair,
    StoredProposal,
    StoredPuzzle,
    TokenUsage,
    solution_hash,
    solution_length,
)
from puzzles.records import NamedPuzzle, Puzzle
from sandbox.canaries import CanaryCounts
from sandbox.verdicts import ALL_VERDICTS, VERIFIED

_PUZZLE_COLUMNS = (
    "id, canonical_hash, source, name, answer_arg, answer_type, defaults_json, origin, key, round, "
    "model, prompt_seed"
)
# The rule that keeps blocked (evaluation) puzzles out of every read; {alias}: the puzzles table's alias
NOT_BLOCKED = "NOT EXISTS (SELECT 1 FROM blocked_hashes b WHERE b.canonical_hash = {alias}.canonical_hash)"


def _round_settings_key(round: int) -> str:
    return f"round-{round}-settings"


def _check_int(name: str, value: object, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


# ---------------------------------------------------------------------------------------------------
# the store


class RunStore(StoreFile):
    """All state of one self-play run in one SQLite file (``StoreFile``). Every write method is one
    transaction."""

    def _require_round(self, db: sqlite3.Connection, round: int) -> RoundInfo:
        row = db.execute("SELECT * FROM rounds WHERE round = ?", (round,)).fetchone()
        if row is None:
            raise StoreError(f"round {round} was never started; call start_round({round}, model) first")
        return RoundInfo.from_row(row)

    def _mark(
        self,
        db: sqlite3.Connection,
        round: int,
        stage: str,
        batch: int,
        items: int,
        timings: Mapping[str, float] | None = None,
        tokens: int = 0,
        usage: TokenUsage | None = None,
    ) -> None:
        """``usage``, when given, holds the batch's tokens (``tokens`` is then ignored)."""
        prompt_tokens = counted_by = None
        if usage is not None:
            tokens, prompt_tokens, counted_by = usage.completion_tokens, usage.prompt_tokens, usage.counted_by
        db.execute(
            "INSERT OR IGNORE INTO batches(round, stage, batch, items, finished_at, timings_json, tokens, "
            "prompt_tokens, tokens_counted_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (round, stage, batch, items, time.time(), json.dumps(dict(timings or {})), tokens, prompt_tokens,
             counted_by),
        )

    def _batch_done(self, db: sqlite3.Connection, round: int, stage: str, batch: int) -> bool:
        row = db.execute(
            "SELECT 1 FROM batches WHERE round = ? AND stage = ? AND batch = ?", (round, stage, batch)
        ).fetchone()
        return row is not None

    # -- run metadata --------------------------------------------------------------------------------

    def record_config(self, config: Mapping[str, object]) -> dict:
        """Store the run's configuration if none is stored yet; return the stored one to compare."""
        text = json.dumps(dict(config), sort_keys=True)
        with self._write("recording the run config") as db:
            db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('config', ?)", (text,))
            stored = db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0]
        return json.loads(stored)

    def config(self) -> dict | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        return json.loads(row[0]) if row else None

    def record_puzzle_sets(self, records: Mapping[str, Mapping[str, object]]) -> dict[str, dict]:
        """Store what each of the run's puzzle sets (``seed_set``, ``eval_set``: source, hash, count) was
        when first recorded; return the stored records to compare."""
        with self._write("recording the run's puzzle sets") as db:
            for key, record in records.items():
                db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)",
                           (key, json.dumps(dict(record), sort_keys=True)))
        return self.puzzle_sets()

    def puzzle_sets(self) -> dict[str, dict]:
        """The recorded ``seed_set`` and ``eval_set`` (absent in a store that predates them)."""
        rows = self._db.execute("SELECT key, value FROM meta WHERE key IN ('seed_set', 'eval_set')")
        return {key: json.loads(value) for key, value in rows}

    # -- rounds and batch markers --------------------------------------------------------------------

    def start_round(self, round: int, model: str, settings: Mapping[str, object] | None = None) -> RoundInfo:
        """Record that ``round`` runs with ``model`` and ``settings`` (the run's settings as JSON, which
        ``round_settings`` gives back). Idempotent: a started round keeps its first record."""
        _check_int("round", round)
        with self._write(f"starting round {round}") as db:
            db.execute(
                "INSERT OR IGNORE INTO rounds(round, model, started_at) VALUES (?, ?, ?)",
                (round, model, time.time()),
            )
            if settings is not None:
                db.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)",
                    (_round_settings_key(round), json.dumps(dict(settings), sort_keys=True)),
                )
            return self._require_round(db, round)

    def round_settings(self, round: int) -> dict | None:
        """The settings ``round`` was started with; None for a round started without them."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (_round_settings_key(round),)).fetchone()
        return json.loads(row[0]) if row else None

    def finish_round(self, round: int, summary: Mapping[str, object]) -> RoundInfo:
        """Mark ``round`` finished with a JSON summary (kept from the first call's time, latest summary)."""
        text = json.dumps(dict(summary), sort_keys=True)
        with self._write(f"finishing round {round}") as db:
            self._require_round(db, round)
            db.execute(
                "UPDATE rounds SET finished_at = COALESCE(finished_at, ?), summary_json = ? WHERE round = ?",
                (time.time(), text, round),
            )
            return self._require_round(db, round)

    def round_info(self, round: int) -> RoundInfo | None:
        row = self._db.execute("SELECT * FROM rounds WHERE round = ?", (round,)).fetchone()
        return RoundInfo.from_row(row) if row else None

    def rounds(self) -> list[RoundInfo]:
        return [RoundInfo.from_row(row) for row in self._db.execute("SELECT * FROM rounds ORDER BY round")]

    def is_batch_done(self, round: int, stage: str, batch: int) -> bool:
        return self._batch_done(self._db, round, stage, batch)

    def mark_batch_done(
        self,
        round: int,
        stage: str,
        batch: int,
        items: int = 0,
        *,
        timings: Mapping[str, float] | None = None,
        tokens: int = 0,
    ) -> None:
        """A marker for a stage whose work lives outside the store (training, say). Idempotent."""
        with self._write(f"marking round {round} {stage} batch {batch} done") as db:
            self._require_round(db, round)
            self._mark(db, round, stage, batch, items, timings, tokens)

    # -- puzzles -------------------------------------------------------------------------------------

    def block_hashes(self, hashes: Iterable[str], reason: str) -> int:
        """Put canonical hashes (the evaluation puzzles') on the blocklist; returns how many were new.

        Blocked puzzles never enter the store, and never reach ``pool_puzzles`` or ``training_pairs``.
        """
        rows = [(h, reason) for h in set(hashes)]
        with self._write("blocking hashes") as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO blocked_hashes(canonical_hash, reason) VALUES (?, ?)", rows)
            return db.total_changes - before

    def add_seed_puzzles(self, items: Iterable[tuple[NamedPuzzle, str]]) -> int:
        """Store seed puzzles (each with its canonical hash) and their reference solutions as round-0 pairs.

        Idempotent by hash: a puzzle already stored is not stored again, but its reference solutions
        are added when missing. Refuses (and stores nothing) if any item is an evaluation puzzle
        (``split == "test"``) or has a blocked hash. Returns the number of new puzzles.
        """
        items = list(items)
        for named, _ in items:
            if named.split == "test":
                raise StoreError(
                    f"seed {named.key!r} belongs to the test split: evaluation puzzles must never be seeds"
                )
        new = 0
        with self._write("adding seed puzzles") as db:
            now = time.time()
            for named, canonical_hash in items:
                reason = self._blocked(db, canonical_hash)
                if reason is not None:
                    raise StoreError(
                        f"seed {named.key!r} has a blocked canonical hash ({reason}): it is an evaluation "
                        "puzzle and must not be a seed"
                    )
                puzzle_id = self._puzzle_id(db, canonical_hash)
                if puzzle_id is None:
                    puzzle_id = self._insert_puzzle(
                        db, named.puzzle, canonical_hash, SEED, named.key, 0, None, None, now
                    )
                    new += 1
                for solution in named.solutions:
                    db.execute(
                        "INSERT OR IGNORE INTO pairs(puzzle_id, attempt_id, round, solution_source, "
                        "solution_hash, length, created_at) VALUES (?, NULL, 0, ?, ?, ?, ?)",
                        (
                            puzzle_id,
                            solution.source,
                            solution_hash(solution.source),
                            solution_length(solution.source),
                            now,
                        ),
                    )
        return new

    def _blocked(self, db: sqlite3.Connection, canonical_hash: str) -> str | None:
        row = db.execute(
            "SELECT reason FROM blocked_hashes WHERE canonical_hash = ?", (canonical_hash,)
        ).fetchone()
        return row[0] if row else None

    def _puzzle_id(self, db: sqlite3.Connection, canonical_hash: str) -> int | None:
        row = db.execute("SELECT id FROM puzzles WHERE canonical_hash = ?", (canonical_hash,)).fetchone()
        return row[0] if row else None

    def _insert_puzzle(
        self,
        db: sqlite3.Connection,
        puzzle: Puzzle,
        canonical_hash: str,
        origin: str,
        key: str | None,
        round: int,
        model: str | None,
        prompt_seed: int | None,
        now: float,
    ) -> int:
        cursor = db.execute(
            "INSERT INTO puzzles(canonical_hash, source, name, answer_arg, answer_type, defaults_json, "
            "origin, key, round, model, prompt_seed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                canonical_hash,
                puzzle.source,
                puzzle.name,
                puzzle.answer_arg,
                puzzle.answer_type,
                json.dumps([list(d) for d in puzzle.defaults]),
                origin,
                key,
                round,
                model,
                prompt_seed,
                now,
            ),
        )
        return int(cursor.lastrowid)

    def known_hashes(self) -> StoredHashes:
        """Canonical hashes of every stored puzzle (seeds and all rounds), for deduplication: a live,
        read-only set whose ``in`` is one lookup in the hash's unique index."""
        return StoredHashes(self._db)

    def puzzle(self, puzzle_id: int) -> StoredPuzzle | None:
        row = self._db.execute(f"SELECT {_PUZZLE_COLUMNS} FROM puzzles WHERE id = ?", (puzzle_id,)).fetchone()
        return StoredPuzzle.from_row(row) if row else None

    def puzzles_of_round(self, round: int) -> list[StoredPuzzle]:
        """Puzzles generated (accepted) in ``round``, in id order: the solve stage's input."""
        rows = self._db.execute(
            f"SELECT {_PUZZLE_COLUMNS} FROM puzzles WHERE origin = 'generated' AND round = ? ORDER BY id",
            (round,),
        )
        return [StoredPuzzle.from_row(row) for row in rows]

    def pool_puzzles(self, up_to_round: int | None = None, *, solved_only: bool = True) -> list[StoredPuzzle]:
        """Puzzles for propose prompts: seeds and generated puzzles of rounds ``<= up_to_round``.

        With ``solved_only`` (the default) only puzzles with a stored pair of such a round count.
        Blocked hashes are never returned.
        """
        limit = -1 if up_to_round is None else up_to_round
        solved = (
            "AND EXISTS (SELECT 1 FROM pairs q WHERE q.puzzle_id = p.id AND (? < 0 OR q.round <= ?))"
            if solved_only
            else ""
        )
        params: tuple = (limit, limit, limit, limit) if solved_only else (limit, limit)
        rows = self._db.execute(
            f"SELECT {_PUZZLE_COLUMNS} FROM puzzles p WHERE (? < 0 OR p.round <= ?) {solved} "
            f"AND {NOT_BLOCKED.format(alias='p')} ORDER BY p.id",
            params,
        )
        return [StoredPuzzle.from_row(row) for row in rows]

    # -- proposals -----------------------------------------------------------------------------------

    def record_proposals(
        self,
        round: int,
        batch: int,
        rows: Sequence[ProposalRow],
        *,
        model: str | None = None,
        timings: Mapping[str, float] | None = None,
        tokens: int = 0,
        usage: TokenUsage | None = None,
    ) -> tuple[int, ...]:
        """Store one propose batch: every raw proposal, the newly accepted puzzles and the marker.

        One transaction. An accepted row whose hash is already stored becomes "duplicate", one whose
        hash is blocked becomes "contaminated". ``model`` defaults to the round's model. Returns the
        ids of the new puzzles; a batch already done stores nothing and returns ``()``.
        """
        _check_int("batch", batch)
        seen_idx: set[int] = set()
        for row in rows:
            if row.status not in PROPOSAL_STATUSES:
                raise ValueError(
                    f"proposal {row.idx}: status {row.status!r} is not one of {PROPOSAL_STATUSES}"
                )
            if row.status == ACCEPTED and (row.puzzle is None or not row.canonical_hash):
                raise ValueError(
                    f"proposal {row.idx}: an accepted proposal needs its puzzle and canonical_hash"
                )
            if row.idx in seen_idx:
                raise ValueError(f"proposal index {row.idx} appears twice in round {round} batch {batch}")
            seen_idx.add(row.idx)
        new_ids: list[int] = []
        with self._write(f"storing round {round} propose batch {batch}") as db:
            info = self._require_round(db, round)
            if self._batch_done(db, round, PROPOSE_STAGE, batch):
                return ()
            now = time.time()
            for row in rows:
                status, reason, puzzle_id = row.status, row.reason, None
                if status == ACCEPTED:
                    assert row.puzzle is not None and row.canonical_hash is not None
                    blocked = self._blocked(db, row.canonical_hash)
                    existing = self._puzzle_id(db, row.canonical_hash)
                    if blocked is not None:
                        status, reason = CONTAMINATED, f"canonical hash is blocked ({blocked})"
                    elif existing is not None:
                        status, reason = DUPLICATE, f"same canonical hash as stored puzzle {existing}"
                    else:
                        puzzle_id = self._insert_puzzle(
                            db,
                            row.puzzle,
                            row.canonical_hash,
                            GENERATED,
                            None,
                            round,
                            model or info.model,
                            row.prompt_seed,
                            now,
                        )
                        new_ids.append(puzzle_id)
                db.execute(
                    "INSERT INTO proposals(round, batch, idx, prompt_seed, raw, status, reason, puzzle_id, "
                    "created_at, origin, parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (round, batch, row.idx, row.prompt_seed, row.raw, status, reason, puzzle_id, now, row.origin,
                     row.parent),
                )
            self._mark(db, round, PROPOSE_STAGE, batch, len(rows), timings, tokens, usage)
        return tuple(new_ids)

    def proposals_of_round(self, round: int) -> list[StoredProposal]:
        rows = self._db.execute(
            "SELECT id, round, batch, idx, prompt_seed, raw, status, reason, puzzle_id, origin, parent FROM proposals "
            "WHERE round = ? ORDER BY batch, idx",
            (round,),
        )
        return [StoredProposal(*row) for row in rows]

    # -- attempts ------------------------------------------------------------------------------------

    def record_attempts(
        self,
        round: int,
        batch: int,
        rows: Sequence[AttemptRow],
        *,
        model: str | None = None,
        stage: str = SOLVE_STAGE,
        timings: Mapping[str, float] | None = None,
        tokens: int = 0,
        usage: TokenUsage | None = None,
        canaries: CanaryCounts | None = None,
    ) -> int:
        """Store one batch of solution attempts with their verdicts, the verifier's canary counts of the
        batch, and the batch's marker.

        One transaction; an unknown puzzle id or an attempt already stored for the same
        (puzzle, round, idx) rolls the whole batch back with a ``StoreError``. ``model`` defaults to
        the round's model. Returns the number stored; a batch already done stores nothing (0).
        """
        _check_int("batch", batch)
        seen: set[tuple[int, int]] = set()
        for row in rows:
            if row.status not in ALL_VERDICTS:
                raise ValueError(f"attempt {row.puzzle_id}/{row.idx}: {row.status!r} is not a verdict")
            if (row.puzzle_id, row.idx) in seen:
                raise ValueError(f"attempt {row.puzzle_id}/{row.idx} appears twice in batch {batch}")
            seen.add((row.puzzle_id, row.idx))
        with self._write(f"storing round {round} {stage} batch {batch}") as db:
            info = self._require_round(db, round)
            if self._batch_done(db, round, stage, batch):
                return 0
            now = time.time()
            db.executemany(
                "INSERT INTO attempts(puzzle_id, round, batch, idx, source, solution_hash, length, status, "
                "seconds, detail, model, prompt_seed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        row.puzzle_id,
                        round,
                        batch,
                        row.idx,
                        row.source,
                        row.solution_hash or solution_hash(row.source),
                        solution_length(row.source),
                        row.status,
                        float(row.seconds),
                        row.detail,
                        model or info.model,
                        row.prompt_seed,
                        now,
                    )
                    for row in rows
                ],
            )
            if canaries is not None:
                db.execute(
                    "INSERT INTO canaries(round, stage, batch, cheats, cheats_passed, good, good_failed) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (round, stage, batch, canaries.cheats, canaries.cheats_passed, canaries.good,
                     canaries.good_failed),
                )
            self._mark(db, round, stage, batch, len(rows), timings, tokens, usage)
        return len(rows)

    def attempts_of_round(self, round: int) -> list[StoredAttempt]:
        rows = self._db.execute(
            "SELECT id, puzzle_id, round, batch, idx, source, solution_hash, length, status, seconds, detail, "
            "model, prompt_seed FROM attempts WHERE round = ? ORDER BY id",
            (round,),
        )
        return [StoredAttempt(*row) for row in rows]

    def solve_rates(self, up_to_round: int | None = None) -> dict[int, float]:
        """Verified attempts / attempts of each generated puzzle, counted in the round that proposed it
        (one grouped query over the attempts index; nothing per attempt is loaded)."""
        limit = "" if up_to_round is None else " AND a.round <= ?"
        rows = self._db.execute(
            "SELECT a.puzzle_id, COUNT(*), SUM(a.status = ?) FROM attempts a JOIN puzzles p ON p.id = a.puzzle_id "
            f"WHERE a.round = p.round AND a.round >= 1{limit} GROUP BY a.puzzle_id",
            (VERIFIED,) if up_to_round is None else (VERIFIED, up_to_round),
        )
        return {puzzle_id: verified / tried for puzzle_id, tried, verified in rows}

    def pair_attempts(self) -> dict[int, StoredAttempt]:
        """The attempts that stored pairs came from, by id (memory grows with the pairs, not the attempts)."""
        rows = self._db.execute(
            "SELECT id, puzzle_id, round, batch, idx, source, solution_hash, length, status, seconds, detail, "
            "model, prompt_seed FROM attempts WHERE id IN (SELECT attempt_id FROM pairs) ORDER BY id"
        )
        return {row[0]: StoredAttempt(*row) for row in rows}

    # -- pairs ---------------------------------------------------------------------------------------

    def record_pairs(self, round: int, chosen: Sequence[StoredAttempt]) -> int:
        """Store the attempts the select stage chose (``factory.loop.select``) as pairs of ``round``, and
        the stage's marker. One transaction; an attempt already a pair, or a solution hash the puzzle
        already has, rolls it back with a ``StoreError``. Returns the number stored."""
        with self._write(f"storing round {round} pairs") as db:
            self._require_round(db, round)
            now = time.time()
            db.executemany(
                "INSERT INTO pairs(puzzle_id, attempt_id, round, solution_source, solution_hash, length, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(a.puzzle_id, a.id, round, a.source, a.solution_hash, a.length, now) for a in chosen],
            )
            self._mark(db, round, SELECT_STAGE, 0, len(chosen))
        return len(chosen)

    def pair_hashes(self, puzzle_ids: Iterable[int]) -> dict[int, set[str]]:
        """The solution hashes each of ``puzzle_ids`` has as stored pairs (every round, seeds included)."""
        hashes: dict[int, set[str]] = {}
        with self.snapshot() as db:
            for puzzle_id in sorted(set(puzzle_ids)):
                rows = db.execute("SELECT solution_hash FROM pairs WHERE puzzle_id = ?", (puzzle_id,))
                hashes[puzzle_id] = {row[0] for row in rows}
        return hashes

    def stored_pairs(self, up_to_round: int | None = None) -> list[StoredPair]:
        """Every stored pair of rounds ``<= up_to_round`` (seeds are round 0), in the order stored."""
        limit = -1 if up_to_round is None else up_to_round
        rows = self._db.execute(
            "SELECT q.id, q.puzzle_id, q.attempt_id, q.round, p.source, q.solution_source, q.solution_hash, "
            "q.length FROM pairs q JOIN puzzles p ON p.id = q.puzzle_id "
            f"WHERE (? < 0 OR q.round <= ?) AND {NOT_BLOCKED.format(alias='p')} ORDER BY q.id",
            (limit, limit),
        )
        return [StoredPair(*row) for row in rows]

    def training_pairs(self, up_to_round: int | None = None) -> list[tuple[str, str]]:
        """(puzzle source, solution source) of every pair of rounds ``<= up_to_round``, seeds included.

        Blocked (evaluation) puzzles are never returned.
        """
        return [(pair.puzzle_source, pair.solution_source) for pair in self.stored_pairs(up_to_round)]

    # -- checkpoints and evaluations -----------------------------------------------------------------

    def record_checkpoint(
        self, round: int, path: str, base_model: str, examples: int, seconds: float
    ) -> CheckpointInfo:
        """The checkpoint trained in ``round``. Recording a round again replaces its record."""
        now = time.time()
        with self._write(f"recording the round {round} checkpoint") as db:
            db.execute(
                "INSERT INTO checkpoints(round, path, base_model, examples, seconds, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(round) DO UPDATE SET path = excluded.path, "
                "base_model = excluded.base_model, examples = excluded.examples, seconds = excluded.seconds, "
                "created_at = excluded.created_at",
                (round, str(path), base_model, examples, float(seconds), now),
            )
        return CheckpointInfo(round, str(path), base_model, examples, float(seconds), now)

    def checkpoint(self, round: int) -> CheckpointInfo | None:
        row = self._db.execute(
            "SELECT round, path, base_model, examples, seconds, created_at FROM checkpoints WHERE round = ?",
            (round,),
        ).fetchone()
        return CheckpointInfo(*row) if row else None

    def record_eval(
        self,
        *,
        round: int,
        model: str,
        dataset: str,
        k: int,
        n: int,
        pass_at_k: float,
        solved: int,
        total: int,
        details: Mapping[str, object] | None = None,
    ) -> EvalRecord:
        """One pass@k result. Recording (round, dataset, k) again replaces it."""
        details_dict = dict(details or {})
        now = time.time()
        with self._write(f"recording the round {round} {dataset} pass@{k}") as db:
            db.execute(
                "INSERT INTO evals(round, model, dataset, k, n, pass_at_k, solved, total, details_json, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(round, dataset, k) DO UPDATE "
                "SET model = excluded.model, n = excluded.n, pass_at_k = excluded.pass_at_k, "
                "solved = excluded.solved, total = excluded.total, details_json = excluded.details_json, "
                "created_at = excluded.created_at",
                (round, model, dataset, k, n, float(pass_at_k), solved, total, json.dumps(details_dict), now),
            )
        return EvalRecord(round, model, dataset, k, n, float(pass_at_k), solved, total, details_dict, now)

    def evals(self, round: int | None = None) -> list[EvalRecord]:
        limit = -1 if round is None else round
        rows = self._db.execute(
            "SELECT round, model, dataset, k, n, pass_at_k, solved, total, details_json, created_at "
            "FROM evals WHERE (? < 0 OR round = ?) ORDER BY round, dataset, k",
            (limit, limit),
        )
        return [EvalRecord(*row[:8], json.loads(row[8]), row[9]) for row in rows]
