"""Chunked reads for streaming exports: the stored pairs in id order a few thousand at a time, and the
per-puzzle facts an export needs for just the puzzles of one chunk, so memory grows with the chunk,
not the store. Read-only; call inside ``RunStore.snapshot()`` for one consistent view."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence

from factory.store.run_store import NOT_BLOCKED, RunStore
from sandbox.verdicts import VERIFIED

__all__ = ["duplicate_pair_keys", "pair_chunks", "puzzle_pairs", "rows_in", "solve_rates_of"]

_IN_BATCH = 500  # ids per IN (...) list, well under SQLite's variable limit

# Named as the export's row fields (``factory.outputs.export_row.PairRow``) where they are one of them.
_CHUNK_COLUMNS = (
    "q.id AS pair_id, q.puzzle_id, q.attempt_id, q.round, q.solution_source AS solution, q.solution_hash, "
    "q.length AS solution_length, p.canonical_hash AS puzzle_hash, p.source AS puzzle, p.name AS puzzle_name, "
    "p.answer_arg, p.answer_type, p.origin, p.key AS seed_key, p.round AS puzzle_round, p.model AS puzzle_model, "
    "p.prompt_seed, a.model AS model, a.seconds AS verify_seconds"
)


def pair_chunks(store: RunStore, chunk_size: int, columns: str = _CHUNK_COLUMNS) -> Iterator[list[sqlite3.Row]]:
    """Every pair ``store.stored_pairs()`` returns, in the same (id) order, joined with its puzzle and
    its attempt (the attempt's columns None for a seed's reference solution), ``chunk_size`` rows at a
    time; ``columns`` over the aliases q (pairs), p (puzzles) and a (attempts), ``pair_id`` among them."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1 (got {chunk_size})")
    with store.snapshot() as db:
        last = -(2**63)  # below every rowid; ``q.id > ?`` lets SQLite seek, not scan, to each chunk
        while True:
            rows = db.execute(
                f"SELECT {columns} FROM pairs q JOIN puzzles p ON p.id = q.puzzle_id "
                "LEFT JOIN attempts a ON a.id = q.attempt_id "
                f"WHERE q.id > ? AND {NOT_BLOCKED.format(alias='p')} ORDER BY q.id LIMIT ?",
                (last, chunk_size),
            ).fetchall()
            if not rows:
                return
            yield rows
            last = rows[-1]["pair_id"]


def rows_in(store: RunStore, sql: str, ids: Iterable, params: Sequence = ()) -> Iterator[sqlite3.Row]:
    """The rows of ``sql`` for ``ids`` (distinct, sorted), a few hundred ids per query: ``sql`` holds
    ``{ids}`` where the IN list goes, and ``params`` fill the ``?`` before it."""
    ordered = sorted(set(ids))
    with store.snapshot() as db:
        for i in range(0, len(ordered), _IN_BATCH):
            batch = ordered[i : i + _IN_BATCH]
            yield from db.execute(sql.format(ids=",".join("?" * len(batch))), (*params, *batch))


def solve_rates_of(store: RunStore, puzzle_ids: Iterable[int]) -> dict[int, float]:
    """``store.solve_rates()`` restricted to ``puzzle_ids`` (same rule: attempts of the puzzle's round)."""
    rows = rows_in(
        store,
        "SELECT a.puzzle_id, COUNT(*), SUM(a.status = ?) FROM attempts a JOIN puzzles p ON p.id = a.puzzle_id "
        "WHERE a.round = p.round AND a.round >= 1 AND a.puzzle_id IN ({ids}) GROUP BY a.puzzle_id",
        puzzle_ids,
        (VERIFIED,),
    )
    return {puzzle_id: verified / tried for puzzle_id, tried, verified in rows}


def puzzle_pairs(store: RunStore, puzzle_ids: Iterable[int]) -> dict[int, list[tuple[int, int, int, str]]]:
    """(pair id, round, length, solution hash) of every stored pair of each of ``puzzle_ids``, in id order."""
    found: dict[int, list[tuple[int, int, int, str]]] = {}
    sql = "SELECT puzzle_id, id, round, length, solution_hash FROM pairs WHERE puzzle_id IN ({ids}) ORDER BY id"
    for puzzle_id, pair_id, round, length, hash_ in rows_in(store, sql, puzzle_ids):
        found.setdefault(puzzle_id, []).append((pair_id, round, length, hash_))
    return found


def duplicate_pair_keys(store: RunStore) -> set[tuple[str, str]]:
    """(puzzle hash, solution hash) keys that more than one stored pair has: none in a store that keeps
    its unique constraints, so a deduplicating export need remember only these keys, not every row's."""
    with store.snapshot() as db:
        rows = db.execute(
            "SELECT p.canonical_hash, q.solution_hash FROM pairs q JOIN puzzles p ON p.id = q.puzzle_id "
            "GROUP BY p.canonical_hash, q.solution_hash HAVING COUNT(*) > 1"
        )
        return {(puzzle_hash, solution_hash) for puzzle_hash, solution_hash in rows}
