"""The store's SQLite schema and its version (bump SCHEMA_VERSION, with a migration, on any change).

Version 6 let attempts hold the verdict ``flaky`` (a verified pair whose second run disagreed).
Version 5 added each proposal's origin (the model's, or a seed variant) and a variant's parent seed.
Version 4 added the prompt tokens of each batch and who counted its tokens (``TokenUsage``).
Version 2 added ``canaries`` (the verifier's canary counts per solve batch). Version 3 added the
indexes that keep per-round reads proportional to the round, not the store: ``round_stats`` counts
from covering indexes alone (attempts by round, status and puzzle; proposals by round and status;
puzzles by round and origin) and ``last_activity`` reads the newest batch from an index.
"""

from __future__ import annotations

from factory.store.records import PROPOSAL_STATUSES
from sandbox.verdicts import ALL_VERDICTS

SCHEMA_VERSION = 6
STORE_FILENAME = "factory.sqlite"

_STATUS_CHECK = ", ".join(f"'{s}'" for s in PROPOSAL_STATUSES)
_VERDICT_CHECK = ", ".join(f"'{v}'" for v in ALL_VERDICTS)

CANARIES_TABLE = """CREATE TABLE canaries (
        round INTEGER NOT NULL,
        stage TEXT NOT NULL,
        batch INTEGER NOT NULL,
        cheats INTEGER NOT NULL,
        cheats_passed INTEGER NOT NULL,
        good INTEGER NOT NULL,
        good_failed INTEGER NOT NULL,
        PRIMARY KEY (round, stage, batch))"""

ATTEMPTS_TABLE = f"""CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        puzzle_id INTEGER NOT NULL REFERENCES puzzles(id),
        round INTEGER NOT NULL REFERENCES rounds(round),
        batch INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        source TEXT NOT NULL,
        solution_hash TEXT NOT NULL,
        length INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ({_VERDICT_CHECK})),
        seconds REAL NOT NULL,
        detail TEXT NOT NULL,
        model TEXT,
        prompt_seed INTEGER,
        created_at REAL NOT NULL,
        UNIQUE (puzzle_id, round, idx))"""
PAIRS_INDEX = "CREATE INDEX pairs_round ON pairs(round)"
PAIRS_TABLE = """CREATE TABLE pairs (
        id INTEGER PRIMARY KEY,
        puzzle_id INTEGER NOT NULL REFERENCES puzzles(id),
        attempt_id INTEGER UNIQUE REFERENCES attempts(id),
        round INTEGER NOT NULL,
        solution_source TEXT NOT NULL,
        solution_hash TEXT NOT NULL,
        length INTEGER NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (puzzle_id, solution_hash))"""

# Version 3's indexes; two of them widen a version 2 index of the same name.
ROUND_INDEXES = (
    "CREATE INDEX puzzles_round ON puzzles(round, origin)",
    "CREATE INDEX proposals_round_status ON proposals(round, status)",
    "CREATE INDEX attempts_round_status ON attempts(round, status, puzzle_id)",
    "CREATE INDEX batches_finished ON batches(finished_at)",
)

SCHEMA_STATEMENTS = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE rounds (
        round INTEGER PRIMARY KEY CHECK (round >= 0),
        model TEXT NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        summary_json TEXT)""",
    """CREATE TABLE batches (
        round INTEGER NOT NULL REFERENCES rounds(round),
        stage TEXT NOT NULL,
        batch INTEGER NOT NULL,
        items INTEGER NOT NULL,
        finished_at REAL NOT NULL,
        timings_json TEXT NOT NULL DEFAULT '{}',
        tokens INTEGER NOT NULL DEFAULT 0,
        prompt_tokens INTEGER,
        tokens_counted_by TEXT,
        PRIMARY KEY (round, stage, batch))""",
    """CREATE TABLE puzzles (
        id INTEGER PRIMARY KEY,
        canonical_hash TEXT UNIQUE NOT NULL,
        source TEXT NOT NULL,
        name TEXT NOT NULL,
        answer_arg TEXT NOT NULL,
        answer_type TEXT NOT NULL,
        defaults_json TEXT NOT NULL,
        origin TEXT NOT NULL CHECK (origin IN ('seed', 'generated')),
        key TEXT,
        round INTEGER NOT NULL,
        model TEXT,
        prompt_seed INTEGER,
        created_at REAL NOT NULL)""",
    f"""CREATE TABLE proposals (
        id INTEGER PRIMARY KEY,
        round INTEGER NOT NULL REFERENCES rounds(round),
        batch INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        prompt_seed INTEGER,
        raw TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ({_STATUS_CHECK})),
        reason TEXT NOT NULL,
        puzzle_id INTEGER REFERENCES puzzles(id),
        created_at REAL NOT NULL,
        origin TEXT NOT NULL DEFAULT 'model',
        parent TEXT,
        UNIQUE (round, batch, idx))""",
    ATTEMPTS_TABLE,
    PAIRS_TABLE,
    PAIRS_INDEX,
    """CREATE TABLE blocked_hashes (
        canonical_hash TEXT PRIMARY KEY,
        reason TEXT NOT NULL)""",
    """CREATE TABLE checkpoints (
        round INTEGER PRIMARY KEY,
        path TEXT NOT NULL,
        base_model TEXT NOT NULL,
        examples INTEGER NOT NULL,
        seconds REAL NOT NULL,
        created_at REAL NOT NULL)""",
    """CREATE TABLE evals (
        id INTEGER PRIMARY KEY,
        round INTEGER NOT NULL,
        model TEXT NOT NULL,
        dataset TEXT NOT NULL,
        k INTEGER NOT NULL,
        n INTEGER NOT NULL,
        pass_at_k REAL NOT NULL,
        solved INTEGER NOT NULL,
        total INTEGER NOT NULL,
        details_json TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (round, dataset, k))""",
    CANARIES_TABLE,
    *ROUND_INDEXES,
)

# The statements that take a store from version N to N + 1.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (CANARIES_TABLE,),
    2: (*(f"DROP INDEX IF EXISTS {i.split()[2]}" for i in ROUND_INDEXES), *ROUND_INDEXES),
    3: ("ALTER TABLE batches ADD COLUMN prompt_tokens INTEGER", "ALTER TABLE batches ADD COLUMN tokens_counted_by TEXT"),
    4: ("ALTER TABLE proposals ADD COLUMN origin TEXT NOT NULL DEFAULT 'model'", "ALTER TABLE proposals ADD COLUMN parent TEXT"),
    # SQLite cannot widen a CHECK in place: attempts is made again with the new verdict, its child (pairs)
    # set aside first, since dropping a parent that rows still reference fails with foreign keys on.
    5: (
        "CREATE TABLE pairs_kept AS SELECT * FROM pairs",
        "DROP TABLE pairs",
        "CREATE TABLE attempts_kept AS SELECT * FROM attempts",
        "DROP TABLE attempts",
        ATTEMPTS_TABLE,
        "INSERT INTO attempts SELECT * FROM attempts_kept",
        "DROP TABLE attempts_kept",
        PAIRS_TABLE,
        "INSERT INTO pairs SELECT * FROM pairs_kept",
        "DROP TABLE pairs_kept",
        PAIRS_INDEX,
        *(i for i in ROUND_INDEXES if " ON attempts(" in i),
    ),
}
