"""The canonical hashes of a store's puzzles as a live, read-only set, for deduplication at any size."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from collections.abc import Set as AbstractSet


class StoredHashes(AbstractSet[str]):
    """The canonical hashes of the stored puzzles, read when asked: a membership test costs one index
    lookup, so deduplicating a batch costs O(batch) however large the store (a copied set cost
    O(store) per batch). Iterating and ``len`` read the whole column. Valid while its store is open."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        return self._db.execute("SELECT 1 FROM puzzles WHERE canonical_hash = ?", (value,)).fetchone() is not None

    def __iter__(self) -> Iterator[str]:
        return iter([row[0] for row in self._db.execute("SELECT canonical_hash FROM puzzles")])

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM puzzles").fetchone()[0]

    def __repr__(self) -> str:
        return f"StoredHashes({len(self)} hashes)"
