"""Chunked and grouped reads for the run report: one round's proposals a few thousand at a time, the
round a canonical hash was first stored in, per-round pair counts, so the report's memory grows with a
chunk or a round, not the store. Read-only; call inside ``RunStore.snapshot()`` for one consistent view."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator

from factory.store.export_reads import pair_chunks, rows_in
from factory.store.records import INVALID
from factory.store.run_store import NOT_BLOCKED, RunStore

__all__ = [
    "generated_ids",
    "pair_chunks_by_round",
    "pair_counts",
    "proposal_chunks",
    "puzzle_sources",
    "stored_rounds",
]


def proposal_chunks(
    store: RunStore, round: int, chunk_size: int, *, accepted: bool
) -> Iterator[list[sqlite3.Row]]:
    """The parsable proposals of ``round`` (every status but invalid), in (batch, idx) order,
    ``chunk_size`` at a time: with ``accepted`` those whose puzzle is a generated puzzle of the round
    (``puzzle_hash`` is its canonical hash), else all the others (``puzzle_hash`` None). Columns: batch,
    idx, raw, puzzle_hash."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1 (got {chunk_size})")
    own = "z.id IS NOT NULL" if accepted else "z.id IS NULL"
    with store.snapshot() as db:
        last = (-1, -1)  # below every (batch, idx); the UNIQUE (round, batch, idx) index seeks to each chunk
        while True:
            rows = db.execute(
                "SELECT o.batch, o.idx, o.raw, z.canonical_hash AS puzzle_hash FROM proposals o "
                "LEFT JOIN puzzles z ON z.id = o.puzzle_id AND z.origin = 'generated' AND z.round = o.round "
                f"WHERE o.round = ? AND (o.batch, o.idx) > (?, ?) AND o.status != ? AND {own} "
                "ORDER BY o.batch, o.idx LIMIT ?",
                (round, *last, INVALID, chunk_size),
            ).fetchall()
            if not rows:
                return
            yield rows
            last = (rows[-1]["batch"], rows[-1]["idx"])


def stored_rounds(store: RunStore, hashes: Iterable[str]) -> dict[str, int]:
    """For each of ``hashes`` stored as a puzzle: the round it was generated in (1 or later), 0 for a
    seed. Left out: a blocked seed (the seed pool never holds it) and a puzzle generated in round 0 (no
    generation round produced it); a blocked generated puzzle is not left out."""
    sql = (
        "SELECT p.canonical_hash, CASE WHEN p.origin = 'seed' THEN 0 ELSE p.round END FROM puzzles p "
        "WHERE p.canonical_hash IN ({ids}) AND ((p.origin = 'generated' AND p.round >= 1) OR "
        f"(p.origin = 'seed' AND {NOT_BLOCKED.format(alias='p')}))"
    )
    return dict(rows_in(store, sql, hashes))


def generated_ids(store: RunStore, round: int) -> list[int]:
    """Ids of the puzzles generated (accepted) in ``round``, in id order (``store.puzzles_of_round``'s)."""
    with store.snapshot() as db:
        rows = db.execute(
            "SELECT id FROM puzzles WHERE origin = 'generated' AND round = ? ORDER BY id", (round,)
        )
        return [puzzle_id for (puzzle_id,) in rows]


def puzzle_sources(store: RunStore, puzzle_ids: Iterable[int]) -> dict[int, str]:
    """The source of each of ``puzzle_ids``."""
    return dict(rows_in(store, "SELECT id, source FROM puzzles WHERE id IN ({ids})", puzzle_ids))


def pair_counts(store: RunStore) -> dict[int, int]:
    """Round -> how many pairs ``store.stored_pairs()`` returns of it (blocked puzzles' pairs never)."""
    with store.snapshot() as db:
        rows = db.execute(
            f"SELECT q.round, COUNT(*) FROM pairs q JOIN puzzles p ON p.id = q.puzzle_id "
            f"WHERE {NOT_BLOCKED.format(alias='p')} GROUP BY q.round"
        )
        return dict(rows)


def pair_chunks_by_round(store: RunStore, chunk_size: int) -> Iterator[list[sqlite3.Row]]:
    """(pair id, round, puzzle id) of every pair ``store.stored_pairs()`` returns, in the same (id)
    order, ``chunk_size`` at a time."""
    return pair_chunks(store, chunk_size, "q.id AS pair_id, q.round, q.puzzle_id")
