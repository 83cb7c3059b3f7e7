"""One SQLite file of the factory: opening it (WAL, foreign keys, busy timeout), its schema (created,
checked, migrated one version per transaction) and its transactions: ``_write`` (one write transaction,
rolled back whole on any error) and ``snapshot`` (one consistent read view).

Durability: the file runs in WAL mode with ``synchronous=NORMAL``. A committed transaction has been
written to the WAL through the OS before ``COMMIT`` returns, so it survives the death of the process
(kill -9, OOM killer, crash). Only a power loss or kernel crash can lose the last few commits, and then
whole transactions at once: the file stays consistent and the lost batches lack their markers, so they
are simply redone. ``FULL`` would fsync on every batch for no gain against the failures a run meets.
WAL also lets readers (reports, ``factory status``) run while a round writes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from factory.errors import StoreError
from factory.store.schema import MIGRATIONS, SCHEMA_STATEMENTS, SCHEMA_VERSION, STORE_FILENAME

_Store = TypeVar("_Store", bound="StoreFile")


class StoreFile:
    """The SQLite file of a run store, opened and at the current schema (``RunStore`` builds on it)."""

    def __init__(self, path: Path | str, *, create: bool = True, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(
                f"{self.path} is a directory; give the store file, or use RunStore.open(run_dir)"
            )
        if not create and not self.path.exists():
            raise StoreError(f"no factory store at {self.path}; is this the right run directory?")
        try:
            self._db = sqlite3.connect(str(self.path), timeout=busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the factory store {self.path}: {exc}") from exc
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            self._check_or_create_schema()
        except StoreError:
            self._db.close()
            raise
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(
                f"{self.path} is not a usable factory store ({exc}); move it away or choose another run directory"
            ) from exc

    @classmethod
    def open(cls: type[_Store], run_dir: Path | str, *, create: bool = True) -> _Store:
        """The store of a run directory (``run_dir/factory.sqlite``), created with the directory if asked."""
        run_dir = Path(run_dir)
        if create:
            run_dir.mkdir(parents=True, exist_ok=True)
        return cls(run_dir / STORE_FILENAME, create=create)

    def close(self) -> None:
        self._db.close()

    def __enter__(self: _Store) -> _Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transactions --------------------------------------------------------------------------------

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction (taking the write lock up front); rolled back on any exception."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{what}: cannot start a write transaction on {self.path}: {exc}") from exc
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{what} failed and nothing of it was stored: {exc}") from exc
            raise

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside it, through this store's methods or the connection
        it yields, sees one snapshot of the file even while another process writes. A snapshot taken
        inside another one joins it. Write nothing inside one (``factory.store.stats`` reads here)."""
        if self._db.in_transaction:
            yield self._db
            return
        self._db.execute("BEGIN")
        try:
            yield self._db
        finally:
            if self._db.in_transaction:
                self._db.execute("COMMIT")

    def _check_or_create_schema(self) -> None:
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            with self._write("creating the store schema") as db:
                if db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
                    return self._check_or_create_schema_version(db)  # another process was first
                for statement in SCHEMA_STATEMENTS:
                    db.execute(statement)
                db.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [("schema_version", str(SCHEMA_VERSION)), ("created_at", repr(time.time()))],
                )
            return None
        if "meta" not in tables:
            raise StoreError(
                f"{self.path} is an SQLite database but not a factory store (it has no meta table); "
                "move it away or choose another run directory"
            )
        return self._check_or_create_schema_version(self._db)

    def _check_or_create_schema_version(self, db: sqlite3.Connection) -> None:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = row[0] if row else None
        if version is not None and version.isdigit() and int(version) < SCHEMA_VERSION and not db.in_transaction:
            self._migrate(int(version))
            return None
        if version != str(SCHEMA_VERSION):
            if version is not None and version.isdigit() and int(version) > SCHEMA_VERSION:
                hint = "it was written by a newer version of the factory; upgrade this installation"
            else:
                hint = "this version of the factory cannot read it"
            raise StoreError(
                f"{self.path} has store schema version {version!r}, this code knows version "
                f"{SCHEMA_VERSION}: {hint}"
            )

    def _migrate(self, version: int) -> None:
        """Bring an older store to ``SCHEMA_VERSION``, one version per transaction."""
        while version < SCHEMA_VERSION:
            with self._write(f"migrating the store from schema version {version}") as db:
                current = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
                if current == str(version):  # another process may have migrated it meanwhile
                    for statement in MIGRATIONS[version]:
                        db.execute(statement)
                    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version + 1),))
            version += 1
