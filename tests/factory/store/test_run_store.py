import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from factory import store as store_module
from factory.errors import StoreError
from factory.loop.select import select_pairs
from factory.store import (
    INVALID,
    VARIANT,
    AttemptRow,
    ProposalRow,
    RunStore,
    TokenUsage,
    round_stats,
    solution_hash,
)
from puzzles.records import NamedPuzzle, Puzzle, Solution
from sandbox.canaries import CanaryCounts
from sandbox.verdicts import ALL_VERDICTS, ERROR, FLAKY, TIMEOUT, VERIFIED, WRONG

REPO = Path(__file__).resolve().parents[3]


def make_puzzle(i: int) -> Puzzle:
    return Puzzle(
        source=f"def f(x: int, a={i}) -> bool:\n    return x == a\n",
        name="f",
        answer_arg="x",
        answer_type="int",
        defaults=(("a", str(i)),),
    )


def accepted(idx: int, i: int, seed: int | None = None) -> ProposalRow:
    return ProposalRow(
        idx, f"raw {i}", "accepted", prompt_seed=seed, puzzle=make_puzzle(i), canonical_hash=f"h{i}"
    )


def seed(i: int, *solutions: str, split: str = "train") -> tuple[NamedPuzzle, str]:
    named = NamedPuzzle(f"seed/{i}", make_puzzle(i), tuple(Solution(s, "g") for s in solutions), split=split)
    return named, f"h{i}"


def g(body: str) -> str:
    return f"def g():\n    return {body}\n"


@pytest.fixture
def store(tmp_path):
    with RunStore.open(tmp_path / "run") as opened:
        yield opened


# ---------------------------------------------------------------------------------------------------
# opening


def test_open_creates_file_and_settings(tmp_path):
    with RunStore.open(tmp_path / "a" / "run") as store:
        assert store.path == tmp_path / "a" / "run" / "factory.sqlite"
        assert store.path.exists()
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert store.rounds() == []
    with RunStore.open(tmp_path / "a" / "run", create=False) as again:  # reopens
        assert again._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "6"


def test_missing_store_without_create(tmp_path):
    with pytest.raises(StoreError, match="no factory store"):
        RunStore.open(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()


def test_corrupt_file_gives_clear_error(tmp_path):
    path = tmp_path / "factory.sqlite"
    path.write_bytes(b"this is not a database at all\n" * 200)
    with pytest.raises(StoreError, match="not a usable factory store .*move it away") as info:
        RunStore(path)
    assert str(path) in str(info.value)


def test_foreign_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (x)")
    db.close()
    with pytest.raises(StoreError, match="not a factory store"):
        RunStore(path)


def test_directory_at_path(tmp_path):
    with pytest.raises(StoreError, match="is a directory"):
        RunStore(tmp_path)


@pytest.mark.parametrize(("version", "message"), [("7", "newer version"), ("zero", "cannot read it")])
def test_schema_version_mismatch(tmp_path, version, message):
    RunStore.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / "factory.sqlite")
    with db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    db.close()
    with pytest.raises(StoreError, match=f"schema version '{version}'.*{message}"):
        RunStore.open(tmp_path)


def test_a_version_1_store_is_migrated_keeping_its_rows(tmp_path):
    with RunStore.open(tmp_path) as store:
        store.add_seed_puzzles([seed(1, g(1))])
    as_version(tmp_path, 1, "DROP TABLE canaries")  # what version 1 looked like: no canaries table
    with RunStore.open(tmp_path) as store:
        assert store._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "6"
        assert len(store.stored_pairs()) == 1
        store.start_round(1, "m")
        store.record_attempts(1, 0, [], canaries=CanaryCounts(2, 0, 1, 0))
        store.record_attempts(1, 0, [], canaries=CanaryCounts(2, 0, 1, 0))  # a batch already done: not twice
        assert round_stats(store, 1).canaries == CanaryCounts(2, 0, 1, 0)
        assert round_stats(store, 2).canaries == CanaryCounts()


def as_version(run_dir, version: int, *statements: str) -> None:
    """Make the store in ``run_dir`` look like schema ``version``: ``statements``, then the attempts
    without the verdict of version 6 (flaky) in their CHECK, below 5 the proposals without the columns
    of version 5 (origin, parent) and below 4 the batches without those of version 4 (token usage)."""
    older = []
    if version < 5:
        older += ["ALTER TABLE proposals DROP COLUMN origin", "ALTER TABLE proposals DROP COLUMN parent"]
    if version < 4:
        older += ["ALTER TABLE batches DROP COLUMN prompt_tokens", "ALTER TABLE batches DROP COLUMN tokens_counted_by"]
    db = sqlite3.connect(run_dir / "factory.sqlite")
    with db:
        for statement in (*statements, *older):
            db.execute(statement)
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    db.close()
    db = sqlite3.connect(run_dir / "factory.sqlite")
    with db:
        db.execute("PRAGMA writable_schema = ON")
        db.execute("UPDATE sqlite_master SET sql = replace(sql, ', ''flaky''', '') WHERE name = 'attempts'")
    db.close()


def test_a_version_3_store_gets_token_usage_and_keeps_its_batches(tmp_path):
    with RunStore.open(tmp_path) as store:
        store.start_round(1, "m")
        store.record_attempts(1, 0, [], tokens=40)
    as_version(tmp_path, 3)
    with RunStore.open(tmp_path) as store:
        store.record_attempts(1, 1, [], usage=TokenUsage(7, 30, "server"))
        assert round_stats(store, 1).usage == {"solve": TokenUsage(7, 70, "server+unrecorded")}
        assert round_stats(store, 1).tokens == 70


def test_a_version_4_store_reads_its_proposals_as_the_models(tmp_path):
    with RunStore.open(tmp_path) as store:
        store.start_round(1, "m")
        store.record_proposals(1, 0, [ProposalRow(0, "def f(x: int) -> bool:", INVALID, "cut")])
    as_version(tmp_path, 4)
    with RunStore.open(tmp_path) as store:
        assert [tuple(r) for r in store._db.execute("SELECT origin, parent FROM proposals")] == [("model", None)]
        store.record_proposals(1, 1, [ProposalRow(0, "x", INVALID, "cut", origin=VARIANT, parent="seed/a:0")])
        assert [(p.origin, p.parent) for p in store.proposals_of_round(1)] == [("model", None), (VARIANT, "seed/a:0")]


def test_a_version_5_store_takes_flaky_attempts_and_keeps_its_rows(tmp_path):
    with RunStore.open(tmp_path) as store:
        fresh = _indexes(store._db)
        store.add_seed_puzzles([seed(1, g(1))])
        store.start_round(1, "m")
        store.record_attempts(1, 0, [AttemptRow(1, 0, g(2), VERIFIED), AttemptRow(1, 1, g(3), WRONG)])
    as_version(tmp_path, 5)
    old = sqlite3.connect(tmp_path / "factory.sqlite")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        old.execute("UPDATE attempts SET status = 'flaky'")
    old.close()
    with RunStore.open(tmp_path) as store:
        assert store._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "6"
        assert _indexes(store._db) == fresh
        assert len(store.stored_pairs()) == 1
        store.record_attempts(1, 1, [AttemptRow(1, 2, g(4), FLAKY)])
        assert round_stats(store, 1).verdicts[FLAKY] == 1
        assert store._db.execute("PRAGMA foreign_key_check").fetchall() == []


def _indexes(db: sqlite3.Connection) -> dict[str, str]:
    return {name: sql for name, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
            if sql is not None}  # the UNIQUE constraints' own indexes have no SQL


def _plan(db: sqlite3.Connection, query: str, *params: object) -> str:
    return " | ".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {query}", params))


def test_a_version_2_store_gets_the_round_indexes_and_keeps_its_rows(tmp_path):
    with RunStore.open(tmp_path) as store:
        fresh = _indexes(store._db)
        store.add_seed_puzzles([seed(1, g(1))])
        store.start_round(1, "m")
        store.record_attempts(1, 0, [AttemptRow(1, 0, g(2), VERIFIED)])
    as_version(  # what version 2 looked like: narrower indexes, two fewer
        tmp_path, 2,
        *(f"DROP INDEX {name}" for name in ("puzzles_round", "attempts_round_status", "proposals_round_status",
                                              "batches_finished")),
        "CREATE INDEX puzzles_round ON puzzles(round)",
        "CREATE INDEX attempts_round_status ON attempts(round, status)",
    )
    with RunStore.open(tmp_path) as store:
        assert store._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "6"
        assert _indexes(store._db) == fresh
        assert round_stats(store, 1).funnel["solved_puzzles"] == 1 and len(store.stored_pairs()) == 1


def test_round_counts_read_covering_indexes_only(store):
    """The per-round counts never read table rows, so they cost O(round) however big the store."""
    db = store._db
    assert "COVERING INDEX attempts_round_status" in _plan(
        db, "SELECT COUNT(DISTINCT puzzle_id) FROM attempts WHERE round = ? AND status = ?", 1, VERIFIED
    )
    assert "COVERING INDEX proposals_round_status" in _plan(
        db, "SELECT status, COUNT(*) FROM proposals WHERE round = ? GROUP BY status", 1
    )
    assert "COVERING INDEX puzzles_round" in _plan(
        db, "SELECT COUNT(*) FROM puzzles WHERE origin = ? AND round = ?", "generated", 1
    )
    assert "INDEX batches_finished" in _plan(db, "SELECT * FROM batches ORDER BY finished_at DESC LIMIT 1")
    # IncrementalStats finds the rounds with new rows in a rowid range, not a whole index.
    assert "INTEGER PRIMARY KEY (rowid>?)" in _plan(
        db, "SELECT DISTINCT round FROM attempts NOT INDEXED WHERE rowid > ?", 0
    )


def test_known_hashes_is_a_live_set_looked_up_in_the_index(store):
    hashes = store.known_hashes()
    assert "h1" not in hashes and len(hashes) == 0 and hashes == set()
    store.add_seed_puzzles([seed(1, g(1))])
    assert "h1" in hashes and 1 not in hashes and set(hashes) == {"h1"} and hashes == {"h1"}
    assert "USING COVERING INDEX" in _plan(store._db, "SELECT 1 FROM puzzles WHERE canonical_hash = ?", "h1")


def test_config_recorded_once(store):
    assert store.config() is None
    assert store.record_config({"b": 1, "a": [1, 2]}) == {"a": [1, 2], "b": 1}
    assert store.record_config({"b": 2}) == {"a": [1, 2], "b": 1}  # the first one stays, caller compares
    assert store.config() == {"a": [1, 2], "b": 1}


# ---------------------------------------------------------------------------------------------------
# rounds and markers


def test_rounds_are_idempotent(store):
    first = store.start_round(1, "base")
    again = store.start_round(1, "other")
    assert again == first and again.model == "base" and again.finished_at is None
    finished = store.finish_round(1, {"pairs": 3})
    assert finished.finished_at is not None and finished.summary == {"pairs": 3}
    assert store.finish_round(1, {"pairs": 4}).finished_at == finished.finished_at
    assert [r.round for r in store.rounds()] == [1]
    assert store.round_info(2) is None
    with pytest.raises(StoreError, match="round 2 was never started"):
        store.finish_round(2, {})
    with pytest.raises(ValueError):
        store.start_round(-1, "m")


def test_markers_need_a_round(store):
    with pytest.raises(StoreError, match="start_round"):
        store.record_proposals(3, 0, [accepted(0, 1)])
    with pytest.raises(StoreError, match="start_round"):
        store.mark_batch_done(3, "train", 0)
    assert store.known_hashes() == set()
    store.start_round(3, "m")
    store.mark_batch_done(3, "train", 0)
    store.mark_batch_done(3, "train", 0)
    assert store.is_batch_done(3, "train", 0)
    assert not store.is_batch_done(3, "train", 1)


# ---------------------------------------------------------------------------------------------------
# seeds, proposals, hashes


def test_seeds_idempotent_with_reference_pairs(store):
    items = [seed(1, g(1), g(" 1")), seed(2, g(2))]  # the first puzzle's two solutions are the same code
    assert store.add_seed_puzzles(items) == 2
    assert store.add_seed_puzzles(items) == 0
    assert store.add_seed_puzzles(iter([seed(2, g(2), g("1 + 1"))])) == 0  # a new solution is added
    pairs = store.stored_pairs()
    assert [(p.puzzle_id, p.solution_source, p.round, p.attempt_id) for p in pairs] == [
        (1, g(1), 0, None),
        (2, g(2), 0, None),
        (2, g("1 + 1"), 0, None),
    ]
    puzzle = store.puzzle(1)
    assert puzzle is not None and puzzle.origin == "seed" and puzzle.key == "seed/1" and puzzle.round == 0
    assert puzzle.puzzle == make_puzzle(1)
    assert store.known_hashes() == {"h1", "h2"}


def test_test_split_and_blocked_hashes_never_become_seeds(store):
    with pytest.raises(StoreError, match="test split"):
        store.add_seed_puzzles([seed(1, g(1)), seed(2, g(2), split="test")])
    assert store.block_hashes(["h3", "h3", "h4"], "P3 test split") == 2
    assert store.block_hashes(["h3"], "again") == 0
    with pytest.raises(StoreError, match="blocked canonical hash .*P3 test split"):
        store.add_seed_puzzles([seed(1, g(1)), seed(3, g(3))])
    assert store.known_hashes() == set()  # nothing of the refused call was stored
    assert {row[0] for row in store._db.execute("SELECT canonical_hash FROM blocked_hashes")} == {"h3", "h4"}


def test_record_proposals_funnel_and_links(store):
    store.start_round(1, "model-a")
    rows = [
        accepted(0, 10, seed=7),
        ProposalRow(1, "def f(:", "invalid", "does not parse", prompt_seed=7),
        ProposalRow(2, "def f(x: int): return True", "trivial", "true on probe 0"),
        accepted(3, 11),
        ProposalRow(4, "dup", "duplicate", "same as earlier"),
        ProposalRow(5, "eval", "contaminated", "P3 test puzzle"),
    ]
    ids = store.record_proposals(1, 0, rows)
    assert len(ids) == 2
    stored = store.proposals_of_round(1)
    assert [p.status for p in stored] == [
        "accepted",
        "invalid",
        "trivial",
        "accepted",
        "duplicate",
        "contaminated",
    ]
    assert stored[0].puzzle_id == ids[0] and stored[3].puzzle_id == ids[1]
    assert all(p.puzzle_id is None for p in stored if p.status != "accepted")
    puzzle = store.puzzle(ids[0])
    assert puzzle is not None
    assert (puzzle.origin, puzzle.round, puzzle.model, puzzle.prompt_seed) == ("generated", 1, "model-a", 7)
    assert [p.id for p in store.puzzles_of_round(1)] == list(ids)
    assert store.is_batch_done(1, "propose", 0)
    funnel = round_stats(store, 1).funnel
    assert funnel["proposed"] == 6
    assert {k: funnel[k] for k in ("invalid", "trivial", "duplicate", "contaminated", "accepted")} == {
        "invalid": 1,
        "trivial": 1,
        "duplicate": 1,
        "contaminated": 1,
        "accepted": 2,
    }
    assert funnel["puzzles"] == 2 and funnel["attempts"] == 0 and funnel["pairs"] == 0


def test_record_proposals_is_idempotent(store):
    store.start_round(1, "m")
    rows = [accepted(0, 1), ProposalRow(1, "x", "invalid")]
    assert len(store.record_proposals(1, 0, rows)) == 1
    assert store.record_proposals(1, 0, rows) == ()
    assert round_stats(store, 1).funnel["proposed"] == 2 and len(store.known_hashes()) == 1


def test_bad_proposal_rows_are_refused_before_writing(store):
    store.start_round(1, "m")
    with pytest.raises(ValueError, match="not one of"):
        store.record_proposals(1, 0, [ProposalRow(0, "x", "great")])
    with pytest.raises(ValueError, match="needs its puzzle"):
        store.record_proposals(1, 0, [ProposalRow(0, "x", "accepted")])
    with pytest.raises(ValueError, match="appears twice"):
        store.record_proposals(1, 0, [accepted(0, 1), accepted(0, 2)])
    assert not store.is_batch_done(1, "propose", 0)


def test_hash_unique_across_rounds_and_seeds(store):
    store.add_seed_puzzles([seed(1, g(1))])
    store.block_hashes(["h9"], "eval")
    store.start_round(1, "m")
    store.start_round(2, "m2")
    first = store.record_proposals(1, 0, [accepted(0, 2)])
    # round 2 proposes the seed again, round 1's puzzle again, itself twice, and an evaluation puzzle
    second = store.record_proposals(
        2, 0, [accepted(0, 1), accepted(1, 2), accepted(2, 3), accepted(3, 3), accepted(4, 9)]
    )
    assert len(first) == 1 and len(second) == 1
    stored = store.proposals_of_round(2)
    assert [p.status for p in stored] == ["duplicate", "duplicate", "accepted", "duplicate", "contaminated"]
    assert "stored puzzle 1" in stored[0].reason and f"stored puzzle {first[0]}" in stored[1].reason
    assert "blocked" in stored[4].reason
    assert store.known_hashes() == {"h1", "h2", "h3"}
    assert round_stats(store, 2).funnel["accepted"] == 1 and round_stats(store, 2).funnel["duplicate"] == 3


# ---------------------------------------------------------------------------------------------------
# attempts and pairs


def test_record_attempts_idempotent_and_verdicts(store):
    store.start_round(1, "m")
    (pid,) = store.record_proposals(1, 0, [accepted(0, 5)])
    rows = [
        AttemptRow(pid, 0, g(5), VERIFIED, seconds=0.1),
        AttemptRow(pid, 1, g(4), WRONG),
        AttemptRow(pid, 2, g("1/0"), ERROR, detail="ZeroDivisionError"),
        AttemptRow(pid, 3, "def g():\n    while True: pass\n", TIMEOUT, seconds=5.0),
    ]
    assert store.record_attempts(1, 0, rows, model="ckpt-1") == 4
    assert store.record_attempts(1, 0, rows) == 0
    counts = round_stats(store, 1).verdicts
    assert set(counts) == set(ALL_VERDICTS)
    assert (counts[VERIFIED], counts[WRONG], counts[ERROR], counts[TIMEOUT], counts["memory"]) == (
        1,
        1,
        1,
        1,
        0,
    )
    attempts = store.attempts_of_round(1)
    assert [a.idx for a in attempts] == [0, 1, 2, 3] and attempts[0].model == "ckpt-1"
    assert attempts[2].detail == "ZeroDivisionError" and attempts[0].length == len(g(5).strip())
    with pytest.raises(ValueError, match="not a verdict"):
        store.record_attempts(1, 1, [AttemptRow(pid, 9, g(1), "maybe")])
    # the same (puzzle, round, idx) in another batch: the batch is refused whole
    with pytest.raises(StoreError, match="nothing of it was stored"):
        store.record_attempts(1, 1, [AttemptRow(pid, 8, g(8), WRONG), AttemptRow(pid, 0, g(5), VERIFIED)])
    assert len(store.attempts_of_round(1)) == 4 and not store.is_batch_done(1, "solve", 1)


def test_failure_mid_batch_rolls_back_everything(store, monkeypatch):
    store.start_round(1, "m")
    (pid,) = store.record_proposals(1, 0, [accepted(0, 1)])
    # an unknown puzzle id in the middle of a batch: a foreign-key failure after earlier inserts
    rows = [AttemptRow(pid, i, g(i), VERIFIED) for i in range(5)] + [AttemptRow(999, 0, g(0), WRONG)]
    rows += [AttemptRow(pid, i, g(i), VERIFIED) for i in range(5, 10)]
    with pytest.raises(StoreError, match="FOREIGN KEY"):
        store.record_attempts(1, 0, rows)
    assert store.attempts_of_round(1) == [] and not store.is_batch_done(1, "solve", 0)

    # an exception raised inside the transaction after some puzzles and proposals were inserted
    original = RunStore._insert_puzzle
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RunStore, "_insert_puzzle", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.record_proposals(1, 1, [accepted(i, 10 + i) for i in range(5)])
    monkeypatch.setattr(RunStore, "_insert_puzzle", original)
    assert store.known_hashes() == {"h1"}
    assert len(store.proposals_of_round(1)) == 1 and not store.is_batch_done(1, "propose", 1)
    assert len(store.record_proposals(1, 1, [accepted(i, 10 + i) for i in range(5)])) == 5  # retry works


def test_solution_hash_ignores_name_format_and_comments():
    assert solution_hash("def g6():\n    return [1,2]  # x\n") == solution_hash("def sol():\n  return [1, 2]")
    assert solution_hash("def g():\n    return g\n") == solution_hash("def h():\n    return h\n")
    assert solution_hash(g(1)) != solution_hash(g(2))
    assert solution_hash("def g(:") == solution_hash("  def g(:  \n")


@pytest.mark.parametrize(
    ("source", "digest"),
    [
        ("def g():\n    return 1\n", "fa19779c60ed393d7a091ef0e702a15f42de03546b0a13b3cd5892fc873713f9"),
        (
            "def sol(a=3):\n    # c\n    return sol.__name__ * a\n",
            "c681be9f61eacc51daefd238e83746f22be7b86f689f709fd2b4592f60b62217",
        ),
        ("not python (", "ac3090c6df75e8918dee0d7a6f67845eedcbd4f0b379c0549ea6b92af22ab4ec"),
        (
            "def a():\n    return 1\ndef b():\n    return a()\n",
            "d8e3f8fe88d20c5303f359d6714440911e725771af5f1bf298a6059bfdd106e4",
        ),
        # Odd shapes the rename rules decide: arguments, classes and global statements keep the old
        # name, nested functions of the same name are renamed, and so are uses outside the function.
        (
            "def g5(g5=1):\n    return g5\n",
            "c04452e10e67e8aa59964fa96f529770a1bc135052bb5914a0ea4b0dfac7b3b0",
        ),
        (
            "def g(x=1):\n    def g():\n        return 2\n    return g()\n",
            "5201305c3ed2018746fc87e80e04f491ff114bfc86c9f235957d2c1d1e97f2ac",
        ),
        (
            "def h():\n    class h:\n        pass\n    return h\n",
            "b0e805babb6ea05d3f44d63036ac36d5bbad5fc86dc2e9e54a3407a2f6951f5a",
        ),
        (
            "def h():\n    global h\n    h = 3\n    return h\n",
            "d9b188aa41d45e179affb670be0dbfbaa002b7fff2851c4707a960d2d51c1fc6",
        ),
        (
            "async def h():\n    def h():\n        return 2\n    return h\n",
            "9f21d5632044a062aaf8a2a817888b8d5364c6e8eca8f0686bdc7411fa712b30",
        ),
        (
            "def h(a: h = 1) -> h:\n    return h\nx = h\n",
            "53b138563eee4036c1f28963024f4a45c9444de6209b653c28f02853ded24f54",
        ),
    ],
)
def test_solution_hash_values_are_pinned(source, digest):
    """Stored hashes of existing run stores depend on these exact values: they must never change."""
    assert solution_hash(source) == digest


def test_select_pairs_keeps_m_shortest_distinct(store):
    store.add_seed_puzzles([seed(1, g("'seed-solution'"))])
    store.start_round(1, "m")
    a, b, c = store.record_proposals(1, 0, [accepted(0, 10), accepted(1, 11), accepted(2, 12)])
    rows = [
        AttemptRow(a, 0, g("'x' * 30"), VERIFIED),  # length 26
        AttemptRow(a, 1, g("10"), VERIFIED),  # length 21
        AttemptRow(a, 2, g("5 + 5"), VERIFIED),  # length 24
        AttemptRow(a, 3, "def g():\n  return 10  # same code as idx 1\n", VERIFIED),
        AttemptRow(a, 4, g("1"), WRONG),  # shortest but wrong
        AttemptRow(b, 0, g("11"), VERIFIED),
        AttemptRow(1, 0, g("'seed-solution'"), VERIFIED),  # the seed's own solution: not distinct
        AttemptRow(1, 1, g("'a'"), VERIFIED),
        AttemptRow(1, 2, g("'ab'"), VERIFIED),
        AttemptRow(c, 0, g("12"), ERROR),
    ]
    store.record_attempts(1, 0, rows)
    assert select_pairs(store, 1, max_per_puzzle=2) == 4
    pairs = {(p.puzzle_id, p.solution_source) for p in store.stored_pairs() if p.round == 1}
    assert pairs == {(a, g("10")), (a, g("5 + 5")), (b, g("11")), (1, g("'a'"))}
    assert select_pairs(store, 1, max_per_puzzle=2) == 0  # idempotent
    assert store.is_batch_done(1, "select", 0)
    assert c not in {p.puzzle_id for p in store.stored_pairs()}  # its only attempt failed
    # a later round's shorter solution never replaces a kept one, and a raised limit adds the next
    store.start_round(2, "m")
    store.record_attempts(
        2, 0, [AttemptRow(a, 0, g("9+1"), VERIFIED), AttemptRow(b, 0, g("'eleven'"), VERIFIED)]
    )
    assert select_pairs(store, 2, max_per_puzzle=2) == 1
    assert [(p.puzzle_id, p.solution_source) for p in store.stored_pairs() if p.round == 2] == [
        (b, g("'eleven'"))
    ]
    assert select_pairs(store, 1, max_per_puzzle=3) == 2  # the 26-character one, and seed 1's "ab"
    funnel = round_stats(store, 1).funnel
    assert (funnel["attempts"], funnel["attempts_verified"], funnel["solved_puzzles"], funnel["pairs"]) == (
        10,
        8,
        3,
        6,
    )
    with pytest.raises(ValueError):
        select_pairs(store, 1, max_per_puzzle=0)


def test_training_pairs_and_pool(store):
    store.add_seed_puzzles([seed(1, g(1)), seed(2, g(2))])
    store.start_round(1, "m")
    p3, p4 = store.record_proposals(1, 0, [accepted(0, 3), accepted(1, 4)])
    store.record_attempts(1, 0, [AttemptRow(p3, 0, g(3), VERIFIED), AttemptRow(p4, 0, g(0), WRONG)])
    select_pairs(store, 1, 4)
    source = {i: make_puzzle(i).source for i in range(5)}
    assert store.training_pairs(0) == [(source[1], g(1)), (source[2], g(2))]
    assert store.training_pairs(1) == [(source[1], g(1)), (source[2], g(2)), (source[3], g(3))]
    assert [p.id for p in store.pool_puzzles(0)] == [1, 2]
    assert [p.id for p in store.pool_puzzles()] == [1, 2, p3]
    assert [p.id for p in store.pool_puzzles(solved_only=False)] == [1, 2, p3, p4]
    # a hash blocked after the fact disappears from prompts and training
    store.block_hashes(["h2"], "found in the evaluation set")
    assert store.training_pairs() == [(source[1], g(1)), (source[3], g(3))]
    assert [p.id for p in store.pool_puzzles()] == [1, p3]


# ---------------------------------------------------------------------------------------------------
# checkpoints and evaluations


def test_checkpoints_and_evals_upsert(store):
    assert store.checkpoint(1) is None
    store.record_checkpoint(1, "/ckpt/1", "base", 10, 1.5)
    store.record_checkpoint(1, "/ckpt/1b", "base", 12, 2.0)
    store.record_checkpoint(2, "/ckpt/2", "/ckpt/1b", 20, 3.0)
    assert [store.checkpoint(r).path for r in (1, 2)] == ["/ckpt/1b", "/ckpt/2"]
    assert store.checkpoint(1).examples == 12 and store.checkpoint(3) is None
    store.record_eval(round=0, model="base", dataset="p3-test", k=1, n=10, pass_at_k=0.1, solved=1, total=10)
    store.record_eval(
        round=0,
        model="base",
        dataset="p3-test",
        k=1,
        n=10,
        pass_at_k=0.2,
        solved=2,
        total=10,
        details={"a": 1},
    )
    store.record_eval(round=1, model="c1", dataset="p3-test", k=1, n=10, pass_at_k=0.3, solved=3, total=10)
    evals = store.evals()
    assert [(e.round, e.pass_at_k, e.details) for e in evals] == [(0, 0.2, {"a": 1}), (1, 0.3, {})]
    assert [e.round for e in store.evals(round=1)] == [1]


# ---------------------------------------------------------------------------------------------------
# concurrency and crashes

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from factory.store import AttemptRow, ProposalRow, RunStore
    from puzzles.records import Puzzle

    run_dir, batches, size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    kill_at = int(sys.argv[4]) if len(sys.argv) > 4 else None
    padding = "#" * 2000

    if kill_at is not None:  # die by SIGKILL inside the transaction, after all rows, before the commit
        import os
        import signal

        mark = RunStore._mark

        def mark_or_die(self, db, round, stage, batch, items, *rest):
            if stage == "propose" and batch == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            mark(self, db, round, stage, batch, items, *rest)

        RunStore._mark = mark_or_die
    with RunStore.open(run_dir) as store:
        store.start_round(1, "m")
        for b in range(batches):
            if not store.is_batch_done(1, "propose", b):
                rows = []
                for i in range(size):
                    if i % 2:
                        rows.append(ProposalRow(i, padding, "invalid", "bad", prompt_seed=b))
                    else:
                        source = f"def f(x: int, a={b * size + i}) -> bool:\\n    return x == a\\n"
                        puzzle = Puzzle(source, "f", "x", "int", (("a", str(b * size + i)),))
                        rows.append(ProposalRow(i, padding, "accepted", "", b, puzzle, f"h{b}-{i}"))
                store.record_proposals(1, b, rows)
            if not store.is_batch_done(1, "solve", b):
                ids = [p.id for p in store.puzzles_of_round(1) if p.prompt_seed == b]
                rows = [
                    AttemptRow(pid, j, f"def g():\\n    return {j}  {padding}\\n", "verified" if j else "wrong")
                    for pid in ids
                    for j in range(2)
                ]
                store.record_attempts(1, b, rows)
            print(b, flush=True)
    """
)


def start_writer(
    tmp_path: Path, run_dir: Path, batches: int, size: int, kill_at: int | None = None
) -> subprocess.Popen:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    extra = [] if kill_at is None else [str(kill_at)]
    return subprocess.Popen(
        [sys.executable, str(script), str(run_dir), str(batches), str(size), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def check_consistent(run_dir: Path, size: int) -> tuple[set[int], set[int]]:
    """Every batch is all or nothing; returns the done propose and solve batches."""
    with RunStore.open(run_dir, create=False) as store:
        db = store._db
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        done = db.execute("SELECT stage, batch FROM batches WHERE round = 1").fetchall()
        proposed = {batch for stage, batch in done if stage == "propose"}
        solved = {batch for stage, batch in done if stage == "solve"}
        assert solved <= proposed
        per_batch = dict(db.execute("SELECT batch, COUNT(*) FROM proposals GROUP BY batch").fetchall())
        assert per_batch == dict.fromkeys(proposed, size)
        puzzles = dict(
            db.execute("SELECT prompt_seed, COUNT(*) FROM puzzles GROUP BY prompt_seed").fetchall()
        )
        assert puzzles == dict.fromkeys(proposed, size // 2)
        linked = db.execute(
            "SELECT COUNT(*) FROM proposals WHERE status = 'accepted' AND puzzle_id IS NOT NULL"
        )
        assert linked.fetchone()[0] == len(proposed) * (size // 2)
        attempts = dict(db.execute("SELECT batch, COUNT(*) FROM attempts GROUP BY batch").fetchall())
        assert attempts == dict.fromkeys(solved, size)  # two attempts for each of size/2 puzzles
        markers = db.execute("SELECT stage, batch, items FROM batches").fetchall()
        assert all(items == size for _, _, items in markers)
    return proposed, solved


def test_kill_9_mid_batch_leaves_whole_batches_and_resumes(tmp_path):
    run_dir, batches, size = tmp_path / "run", 60, 100
    # first a kill that surely lands inside a batch's transaction: every row written, no commit yet
    writer = start_writer(tmp_path, run_dir, batches, size, kill_at=5)
    writer.communicate(timeout=60)
    assert writer.returncode == -signal.SIGKILL
    proposed, solved = check_consistent(run_dir, size)
    assert proposed == solved == set(range(5))
    # then kills at random moments (the writer spends about a third of its time inside transactions)
    rng = random.Random(1234)
    progress = [5]
    for _ in range(3):
        writer = start_writer(tmp_path, run_dir, batches, size)
        assert writer.stdout is not None
        first = writer.stdout.readline()  # it is writing now
        assert first, writer.stderr.read() if writer.stderr else ""
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
        proposed, solved = check_consistent(run_dir, size)
        progress.append(len(proposed))
    writer = start_writer(tmp_path, run_dir, batches, size)
    _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    proposed, solved = check_consistent(run_dir, size)
    assert proposed == solved == set(range(batches))
    assert progress == sorted(progress) and progress[-1] < batches  # killed before the end, each run resumed


def test_reader_never_blocked_and_sees_whole_batches(tmp_path):
    run_dir, size = tmp_path / "run", 100
    RunStore.open(run_dir).close()
    writer = start_writer(tmp_path, run_dir, 40, size)
    seen = set()
    try:
        with RunStore.open(run_dir, create=False) as reader:
            while writer.poll() is None:
                funnel = round_stats(reader, 1).funnel
                assert funnel["proposed"] % size == 0
                assert funnel["accepted"] == funnel["puzzles"] == funnel["proposed"] // 2
                assert funnel["attempts"] % size == 0 and funnel["attempts"] <= 2 * funnel["puzzles"]
                assert funnel["attempts_verified"] * 2 == funnel["attempts"]
                seen.add(funnel["proposed"])
            final = round_stats(reader, 1).funnel
    finally:
        if writer.poll() is None:
            os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
    assert writer.returncode == 0, writer.stderr.read() if writer.stderr else ""
    assert final["proposed"] == 40 * size and final["attempts"] == 40 * size
    assert len(seen) > 2  # the reader saw the run progress while it was written


def test_open_write_transaction_does_not_block_readers(tmp_path):
    RunStore.open(tmp_path).close()
    holder = sqlite3.connect(tmp_path / "factory.sqlite", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO rounds(round, model, started_at) VALUES (1, 'm', 0)")
        with RunStore.open(tmp_path, create=False) as reader:
            assert reader.rounds() == []  # not blocked, and the uncommitted row is invisible
            assert round_stats(reader, 1).funnel["proposed"] == 0
        with RunStore(tmp_path / "factory.sqlite", busy_timeout_s=0.2) as writer:
            with pytest.raises(StoreError, match="cannot start a write transaction"):
                writer.start_round(2, "m")
        holder.execute("COMMIT")
        with RunStore.open(tmp_path, create=False) as reader:
            assert [r.round for r in reader.rounds()] == [1]
    finally:
        holder.close()


def test_module_constants_are_consistent():
    assert store_module.ACCEPTED in store_module.PROPOSAL_STATUSES
    assert store_module.SCHEMA_VERSION == 6
