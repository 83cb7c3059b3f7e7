"""The self-play round: filters on real proposals, a whole small round, and kill -9 then resume."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factory.cli.main import main
from factory.config import RunConfig
from factory.loop.context import prepare_run
from factory.store import STORE_FILENAME
from sandbox.backend import open_sandbox

QUIET = {"log": lambda m: None}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """A ~0.1M-parameter model trained for seconds on the seed corpus: real, fast, nearly useless."""
    from factory.loop.corpus import base_corpus
    from factory.models.embedded import BuildConfig, default_model_path

    return str(
        default_model_path(
            base_corpus, tmp_path_factory.mktemp("models"), config=BuildConfig.tiny(), log=lambda m: None
        )
    )


@pytest.fixture(scope="module")
def process_sandbox():
    with open_sandbox("process", workers=2, **QUIET) as box:
        yield box


def test_a_changed_run_identity_is_refused(tmp_path, process_sandbox):
    from factory.errors import UserError

    prepare_run(tmp_path, RunConfig(model="a"), process_sandbox, **QUIET).close()
    with pytest.raises(UserError, match="started with model='a'"):
        prepare_run(tmp_path, RunConfig(model="b"), process_sandbox, **QUIET)


SMALL = [
    "--puzzles",
    "6",
    "--attempts",
    "2",
    "--eval-samples",
    "2",
    "--eval-limit",
    "6",
    "--epochs",
    "0.05",
    "--workers",
    "2",
]


def test_a_round_with_puzzles_solutions_and_pairs_in_docker(tmp_path, scripted_model, docker_ready):
    """The scripted model writes parsable puzzles (the tiny trained model hardly ever does), so every
    stage of the round has rows: attempts for each accepted puzzle, verdicts from Docker, pairs."""
    run_dir = tmp_path / "run"
    args = ["round", "--run-dir", str(run_dir), "--backend", "openai", "--model", "scripted",
            "--base-url", scripted_model.base_url, "--no-train", "--sandbox", "docker", "--variant-share", "0.5", "--variants-from-round", "1", *SMALL]
    assert main(args) == 0
    db = sqlite3.connect(run_dir / STORE_FILENAME)
    accepted = db.execute("SELECT COUNT(*) FROM puzzles WHERE round = 1").fetchone()[0]
    assert accepted > 0
    assert db.execute("SELECT COUNT(*) FROM attempts WHERE round = 1").fetchone()[0] == 2 * accepted
    verdicts = dict(db.execute("SELECT status, COUNT(*) FROM attempts WHERE round = 1 GROUP BY status"))
    pairs = db.execute("SELECT COUNT(*) FROM pairs WHERE round = 1").fetchone()[0]
    assert verdicts.get("verified", 0) > 0 and 0 < pairs <= verdicts["verified"]
    summary = json.loads((run_dir / "rounds" / "round-1.json").read_text())
    assert set(summary) == {"round", "model", "funnel", "verdicts", "timings", "seconds", "tokens",
                            "tokens_per_second", "canaries", "information_gain", "grpo", "proposer", "eval", "usage",
                            "models", "variants", "held_out_loss"}
    assert summary["funnel"]["accepted"] == accepted and summary["funnel"]["pairs"] == pairs
    assert summary["variants"]["proposed"] == 3  # every other item of 6 (variant_share 0.5)
    assert summary["variants"]["accepted"] <= accepted and summary["variants"]["pairs"] <= pairs
    assert summary["verdicts"] == {v: verdicts.get(v, 0) for v in summary["verdicts"]}


def store_contents(run_dir: Path) -> dict:
    """Everything a run decides, without timestamps and timings."""
    db = sqlite3.connect(run_dir / STORE_FILENAME)
    queries = {
        "proposals": "SELECT round, batch, idx, raw, status, reason FROM proposals ORDER BY round, batch, idx",
        "puzzles": "SELECT canonical_hash, origin, round FROM puzzles ORDER BY canonical_hash",
        "attempts": "SELECT p.canonical_hash, a.round, a.idx, a.source, a.status FROM attempts a "
        "JOIN puzzles p ON p.id = a.puzzle_id ORDER BY 1, 2, 3",
        "pairs": "SELECT p.canonical_hash, q.solution_hash, q.round FROM pairs q JOIN puzzles p ON p.id = q.puzzle_id ORDER BY 1, 2",
        "evals": "SELECT round, dataset, k, n, pass_at_k FROM evals ORDER BY 1, 2, 3",
        "rounds": "SELECT round, finished_at IS NOT NULL FROM rounds ORDER BY round",
    }
    return {name: db.execute(sql).fetchall() for name, sql in queries.items()}


def run_command(run_dir: Path, model: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "factory.cli",
        "run",
        "--rounds",
        "2",
        "--run-dir",
        str(run_dir),
        "--model",
        model,
        "--sandbox",
        "docker",
        *SMALL,
        "--max-new-tokens",  # the tiny model writes nothing that parses: shorter samples prove as much
        "48",
    ]


def assert_a_small_first_round(run_dir: Path) -> None:
    """Round 1 of a run on the tiny model with ``SMALL``: proposed, finished, evaluated, trained, summarised."""
    db = sqlite3.connect(run_dir / STORE_FILENAME)
    try:
        assert db.execute("SELECT COUNT(*) FROM proposals WHERE round = 1").fetchone()[0] == 6
        assert db.execute("SELECT finished_at IS NOT NULL FROM rounds WHERE round = 1").fetchone()[0] == 1
        assert (
            db.execute("SELECT COUNT(*) FROM evals WHERE round IN (0, 1)").fetchone()[0] == 2
        )  # k=1 (k=5 > 2 samples)
    finally:
        db.close()
    assert (run_dir / "checkpoints" / "round-1" / "config.json").exists()
    assert (run_dir / "rounds" / "round-1.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~80 s on a quiet machine; a busy one (load 10 on 2 cores) took over 300
def test_small_rounds_end_to_end_in_docker_then_kill_9_at_random_moments_and_resume_to_the_same_store(
    tmp_path, tiny_model, docker_ready
):
    """The uninterrupted reference run (the CLI, the tiny model, Docker) is also the small end-to-end run:
    its first round is checked whole before it serves as the store the killed run must end with."""
    reference = tmp_path / "reference"
    start = time.monotonic()
    subprocess.run(run_command(reference, tiny_model), check=True, capture_output=True, timeout=600)
    duration = time.monotonic() - start
    assert_a_small_first_round(reference)

    resumed = tmp_path / "resumed"
    rng = random.Random(int(os.environ.get("FACTORY_KILL_SEED", "1")))
    kills = 0
    for _ in range(3):
        process = subprocess.Popen(
            run_command(resumed, tiny_model), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.15, 0.8) * duration)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
    subprocess.run(run_command(resumed, tiny_model), check=True, capture_output=True, timeout=600)
    assert kills >= 1
    assert store_contents(resumed) == store_contents(reference)
