"""A store written by a real self-play run, for the tests of what reads the store: the round stats,
the round summary, export, report, status and metrics.

``play(run_dir)`` (the session fixture ``run`` of tests/factory/conftest.py) runs the loop itself (``run_rounds``, the same function the CLI and
the daemon use) on the scripted model (``tests.factory.scripted_model``: valid, invalid, trivial and
duplicate proposals; right, wrong and raising solutions) and the process sandbox: the base evaluation,
two finished rounds, then a third round whose process dies in its solve stage, so it stays started
and proposed but without attempts, pairs or evaluation. It runs once per test session (a few seconds);
tests that change the directory work on ``copy_run``.

``with_settings`` rewrites a copy's recorded settings (a run started with another weighting or
objective); ``expected_novelty`` and ``expected_rates`` compute novelty and solve rates from the raw
rows by a plain scan.

``StoreRows`` reads the store's raw rows with plain SQL on its own read-only connection and counts
them in Python, so tests derive what a reader should say without going through the reader.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from factory.config import RunConfig
from factory.loop.context import prepare_run
from factory.loop.rounds import ROUND_STAGES, RoundEvents, rounds_finished, run_round, run_rounds
from factory.store import STORE_FILENAME
from puzzles.canonical import near_duplicate_tokens, similarity
from sandbox.backend import open_sandbox
from sandbox.verdicts import VERIFIED
from tests.factory.scripted_model import ScriptedModelServer

FINISHED_ROUNDS = (1, 2)
OPEN_ROUND = 3
EVAL_KS = (1, 2)


def played_config(base_url: str) -> RunConfig:
    return RunConfig(
        model="scripted",
        backend="openai",
        base_url=base_url,
        seed=2,  # a seed whose rounds have accepted, invalid, trivial and duplicate proposals
        variant_share=0.0,  # every proposal the model's (variants: tests/factory/loop/test_variants_round.py)
        train=False,
        puzzles=8,
        attempts=4,
        batch_size=2,
        propose_examples=2,
        solve_examples=1,
        timeout_s=5.0,
        max_pairs_per_puzzle=2,
        eval_samples=2,
        eval_ks=EVAL_KS,
        eval_limit=4,
    )


@dataclass(frozen=True)
class PlayedRun:
    run_dir: Path
    finished: tuple[int, ...]  # rounds finished
    open_round: int  # started and proposed, then its process died in the solve stage


class QuietEvents(RoundEvents):
    def base_evaluated(self, pass_at_k: dict[int, float]) -> None:
        pass

    def round_finished(self, summary: dict) -> None:
        pass


class ProcessDied(Exception):
    pass


def dies_in_solve(*args: object) -> None:
    """A solve stage whose process is killed as it starts (what kill -9 would leave behind)."""
    raise ProcessDied("killed in the solve stage")


def copy_run(run: PlayedRun, destination: Path) -> Path:
    shutil.copytree(run.run_dir, destination)
    return destination


def play(run_dir: Path) -> PlayedRun:
    server = ScriptedModelServer()
    try:
        config = played_config(server.base_url)
        quiet = {"log": lambda message: None, "show_progress": False}
        with open_sandbox("process", workers=2, log=lambda message: None) as sandbox:
            with prepare_run(run_dir, config, sandbox, **quiet) as ctx:
                run_rounds(ctx, rounds_finished(len(FINISHED_ROUNDS)), QuietEvents())
                assert ctx.finished_rounds() == len(FINISHED_ROUNDS)
            with prepare_run(run_dir, config, sandbox, **quiet) as ctx:
                assert ctx.next_round() == OPEN_ROUND
                try:
                    run_round(ctx, OPEN_ROUND, replace(ROUND_STAGES, solve=dies_in_solve))
                except ProcessDied:
                    pass
                else:
                    raise AssertionError("the open round was meant to die in its solve stage")
    finally:
        server.close()
    return PlayedRun(run_dir, FINISHED_ROUNDS, OPEN_ROUND)


# ---------------------------------------------------------------------------------------------------
# the raw rows


class StoreRows:
    """The raw rows of a run's store, read with plain SQL on a read-only connection of its own."""

    def __init__(self, run_dir: Path):
        db = sqlite3.connect(f"{(Path(run_dir) / STORE_FILENAME).resolve().as_uri()}?mode=ro", uri=True)
        db.row_factory = sqlite3.Row
        try:
            self.rounds = [dict(r) for r in db.execute("SELECT * FROM rounds ORDER BY round")]
            self.proposals = [dict(r) for r in db.execute("SELECT * FROM proposals")]
            self.puzzles = [dict(r) for r in db.execute("SELECT * FROM puzzles")]
            self.attempts = [dict(r) for r in db.execute("SELECT * FROM attempts")]
            self.pairs = [dict(r) for r in db.execute("SELECT * FROM pairs")]
            self.batches = [dict(r) for r in db.execute("SELECT * FROM batches")]
            self.evals = [dict(r) for r in db.execute("SELECT * FROM evals")]
            self.canaries = [dict(r) for r in db.execute("SELECT * FROM canaries")]
            self.config = json.loads(db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])
        finally:
            db.close()

    def of(self, table: str, round: int) -> list[dict]:
        return [row for row in getattr(self, table) if row["round"] == round]

    def canary_counts(self, round: int) -> dict[str, int]:
        kinds = ("cheats", "cheats_passed", "good", "good_failed")
        return {k: sum(row[k] for row in self.of("canaries", round)) for k in kinds}

    def proposal_counts(self, round: int) -> Counter:
        return Counter(p["status"] for p in self.of("proposals", round))

    def verdict_counts(self, round: int) -> Counter:
        return Counter(a["status"] for a in self.of("attempts", round))

    def funnel(self, round: int) -> dict[str, int]:
        """What the funnel of ``round`` must say, as a plain dict (key order not implied)."""
        attempts = self.of("attempts", round)
        counts = {"proposed": len(self.of("proposals", round)), "attempts": len(attempts)}
        counts.update(self.proposal_counts(round))
        counts.update({f"attempts_{verdict}": n for verdict, n in self.verdict_counts(round).items()})
        counts["puzzles"] = sum(1 for p in self.of("puzzles", round) if p["origin"] == "generated")
        counts["solved_puzzles"] = len({a["puzzle_id"] for a in attempts if a["status"] == VERIFIED})
        counts["pairs"] = len(self.of("pairs", round))
        return counts

    def timings(self, round: int) -> dict[str, float]:
        totals: Counter = Counter()
        for batch in self.of("batches", round):
            totals.update(json.loads(batch["timings_json"]))
        return dict(totals)

    def tokens(self, round: int) -> int:
        return sum(batch["tokens"] for batch in self.of("batches", round))

    def generate_seconds(self, round: int) -> float:
        return sum(v for k, v in self.timings(round).items() if k.endswith(".generate"))

    def generated_pairs(self) -> int:
        return sum(1 for pair in self.pairs if pair["round"] > 0)

    def pass_at_k(self, round: int) -> dict[int, float]:
        return {e["k"]: e["pass_at_k"] for e in self.evals if e["round"] == round}


def without_zeros(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def with_settings(run_dir: Path, **settings: object) -> Path:
    """The run directory as if started with ``settings`` (its recorded config rewritten)."""
    db = sqlite3.connect(run_dir / STORE_FILENAME)
    with db:
        config = json.loads(db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])
        db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps({**config, **settings}),))
    db.close()
    return run_dir


def expected_novelty(rows: StoreRows) -> dict[int, float]:
    """1 - the highest similarity of each generated puzzle to every puzzle of an earlier round (seeds: 0)."""
    tokens = {p["id"]: near_duplicate_tokens(p["source"]) for p in rows.puzzles}
    return {
        p["id"]: 1.0 - max(
            (similarity(tokens[p["id"]], tokens[q["id"]]) for q in rows.puzzles if q["round"] < p["round"]),
            default=0.0,
        )
        for p in rows.puzzles
        if p["origin"] == "generated"
    }


def expected_rates(rows: StoreRows) -> dict[int, float]:
    rates = {}
    for p in rows.puzzles:
        tried = [a for a in rows.attempts if a["puzzle_id"] == p["id"] and a["round"] == p["round"]]
        if p["origin"] == "generated" and tried:
            rates[p["id"]] = sum(a["status"] == VERIFIED for a in tried) / len(tried)
    return rates
