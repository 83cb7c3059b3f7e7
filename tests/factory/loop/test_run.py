"""The self-play round: filters on real proposals, a whole small round, and kill -9 then resume."""

from __future__ import annotations

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
from factory.loop.run import SelfPlayRun
from factory.store import STORE_FILENAME
from puzzles.seeds import load_seeds
from sandbox.backend import open_sandbox

QUIET = {"log": lambda m: None}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """A ~0.1M-parameter model trained for seconds on the seed corpus: real, fast, nearly useless."""
    from factory.loop.corpus import seed_corpus
    from factory.models.embedded import BuildConfig, default_model_path

    return str(
        default_model_path(
            seed_corpus, tmp_path_factory.mktemp("models"), config=BuildConfig.tiny(), log=lambda m: None
        )
    )


@pytest.fixture(scope="module")
def process_sandbox():
    with open_sandbox("process", workers=2, **QUIET) as box:
        yield box


def test_filters_sort_proposals_into_the_funnel(tmp_path, process_sandbox):
    train_seed = load_seeds("train")[0].puzzle.source
    held_out = load_seeds("test")[0].puzzle.source
    fresh = "def f(s: str, n=7):\n    return len(s) == n and s.count('z') == 3\n"
    raws = [
        "def f(x: int:\n    return",  # invalid
        "def f(b: bool):\n    return b\n",  # trivial: bool answers
        "def f(x: int):\n    return x * x == 100\n",  # trivial: the probe 10 solves it
        "def f(n: int, a=3):\n    return x * a == n\n",  # invalid: x is never defined
        train_seed.replace("def f(", "def f9(", 1),  # duplicate of a stored seed
        "# copied\n" + held_out.replace("def f(", "def f2(", 1),  # contaminated: a held-out puzzle
        fresh,
        fresh.replace("def f(", "def f3(", 1),  # duplicate within the batch
        # A new instance of a training family: near its held-out instance, but so are its training
        # seeds, so only an exact copy of that instance would count as contaminated.
        "def f(s: str, target='qwerty') -> bool:\n    return s[::-1] == target\n",
        "def f(s: str, words=['b', 'a']):\n    return sorted(words)\n",  # invalid: never a bool
    ]
    with SelfPlayRun(tmp_path / "run", RunConfig(model="unused"), process_sandbox, **QUIET) as run:
        rows = run.filter_proposals(list(range(len(raws))), raws)
    assert [r.status for r in rows] == [
        "invalid",
        "trivial",
        "trivial",
        "invalid",
        "duplicate",
        "contaminated",
        "accepted",
        "duplicate",
        "accepted",
        "invalid",
    ]
    assert "other than a bool" in rows[9].reason
    assert "probe answer 10" in rows[2].reason and "NameError" in rows[3].reason
    assert "evaluation puzzle seed/" in rows[5].reason
    assert rows[6].puzzle is not None and rows[6].canonical_hash


def test_a_changed_run_identity_is_refused(tmp_path, process_sandbox):
    from factory.errors import UserError

    SelfPlayRun(tmp_path, RunConfig(model="a"), process_sandbox, **QUIET).close()
    with pytest.raises(UserError, match="started with model='a'"):
        SelfPlayRun(tmp_path, RunConfig(model="b"), process_sandbox, **QUIET)


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


def test_a_small_round_end_to_end_in_docker(tmp_path, tiny_model, docker_ready):
    run_dir = tmp_path / "run"
    assert (
        main(["round", "--run-dir", str(run_dir), "--model", tiny_model, "--sandbox", "docker", *SMALL]) == 0
    )
    db = sqlite3.connect(run_dir / STORE_FILENAME)
    assert db.execute("SELECT COUNT(*) FROM proposals WHERE round = 1").fetchone()[0] == 6
    assert db.execute("SELECT finished_at IS NOT NULL FROM rounds WHERE round = 1").fetchone()[0] == 1
    assert (
        db.execute("SELECT COUNT(*) FROM evals WHERE round IN (0, 1)").fetchone()[0] == 2
    )  # k=1 (k=5 > 2 samples)
    accepted = db.execute("SELECT COUNT(*) FROM puzzles WHERE round = 1").fetchone()[0]
    assert db.execute("SELECT COUNT(*) FROM attempts WHERE round = 1").fetchone()[0] == 2 * accepted
    assert (run_dir / "checkpoints" / "round-1" / "config.json").exists()
    assert (run_dir / "rounds" / "round-1.json").exists()


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
    ]


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_gives_the_same_store(tmp_path, tiny_model, docker_ready):
    reference = tmp_path / "reference"
    start = time.monotonic()
    subprocess.run(run_command(reference, tiny_model), check=True, capture_output=True, timeout=600)
    duration = time.monotonic() - start

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
