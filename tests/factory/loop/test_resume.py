"""Resume is exact whatever the user changes between a kill and a restart: a round runs with the
settings it started with (the batch partition of its work never changes); new settings apply from the
next round."""

from __future__ import annotations

import os
import signal
import sqlite3

import pytest

from factory.config import RunConfig
from factory.loop.rounds import round_config
from factory.store import STORE_FILENAME, RunStore
from tests.factory.daemon.test_daemon import (
    log_events,
    run_daemon_to_end,
    start_daemon,
    wait_for,
    write_config,
)
from tests.factory.loop.test_run import store_contents
from tests.factory.scripted_model import ScriptedModelServer


def settings(server: ScriptedModelServer, puzzles: int, batch_size: int) -> dict:
    return {"model": "scripted", "backend": "openai", "base_url": server.base_url, "train": False,
            "puzzles": puzzles, "attempts": 3, "batch_size": batch_size, "propose_examples": 2,
            "solve_examples": 1, "timeout_s": 5.0, "max_pairs_per_puzzle": 2, "eval_samples": 2,
            "eval_ks": [1, 2], "eval_limit": 3}


def markers(run_dir, stage: str, round: int = 1) -> int:
    path = run_dir / STORE_FILENAME
    if not path.exists():
        return 0
    db = sqlite3.connect(path, timeout=5)
    try:
        return db.execute("SELECT COUNT(*) FROM batches WHERE round = ? AND stage = ?", (round, stage)).fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not created yet
        return 0
    finally:
        db.close()


def kill_when(config, condition, what: str) -> None:
    daemon = start_daemon(config)
    try:
        wait_for(condition, 120, what, interval=0.01)
    finally:
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait()


@pytest.fixture()
def slow_scripted_model():
    server = ScriptedModelServer(delay_s=0.25)  # a batch takes a moment: room to kill inside a stage
    yield server
    server.close()


def test_kill_mid_propose_and_mid_solve_then_resume_with_new_batch_size_and_puzzles(tmp_path, slow_scripted_model):
    server = slow_scripted_model
    first, then = settings(server, puzzles=8, batch_size=2), settings(server, puzzles=12, batch_size=3)

    # Never interrupted: round 1 with the first settings, round 2 with the new ones. The answers depend
    # only on the request, not on the delay, which only the kills need (room to land inside a stage).
    reference = tmp_path / "reference"
    delay, server.delay_s = server.delay_s, 0.0
    run_daemon_to_end(write_config(reference, first, stop={"rounds": 1}))
    run_daemon_to_end(write_config(reference, then, stop={"rounds": 2}))
    server.delay_s = delay

    resumed = tmp_path / "resumed"
    run_dir = resumed / "run"
    kill_when(write_config(resumed, first, stop={"rounds": 2}),
              lambda: 1 <= markers(run_dir, "propose") < 4, "a propose batch of round 1")
    assert markers(run_dir, "propose") < 4, "round 1's propose stage finished before the kill"
    config = write_config(resumed, then, stop={"rounds": 2})  # batch size 2 -> 3, puzzles 8 -> 12
    kill_when(config, lambda: markers(run_dir, "solve") >= 1, "a solve batch of round 1")
    with RunStore.open(run_dir, create=False) as store:
        assert store.round_info(1).finished_at is None, "round 1 finished before the kill"
    server.delay_s = 0.0
    run_daemon_to_end(config)

    assert store_contents(run_dir) == store_contents(reference / "run")
    contents = store_contents(run_dir)
    by_round = {r: [p for p in contents["proposals"] if p[0] == r] for r in (1, 2)}
    assert len(by_round[1]) == 8 and len(by_round[2]) == 12
    assert {p[1] for p in by_round[1]} == {0, 1, 2, 3} and {p[1] for p in by_round[2]} == {0, 1, 2, 3}
    said = [e["message"] for e in log_events(resumed) if e["event"] == "message" and "resumes" in e["message"]]
    assert said and "batch_size=2" in said[0] and "puzzles=8" in said[0]


def test_a_round_keeps_its_recorded_settings_but_takes_the_current_server(tmp_path):
    started = RunConfig(model="m", backend="openai", base_url="http://old/v1", train=False, batch_size=2).to_json()
    now = RunConfig(model="m", backend="openai", base_url="http://new/v1", train=False, batch_size=5, puzzles=9)
    c = round_config(started, now)
    assert (c.batch_size, c.puzzles, c.base_url) == (2, RunConfig.puzzles, "http://new/v1")  # as started
    assert round_config(None, now) == now  # a round started before settings were recorded

    with RunStore.open(tmp_path) as store:
        store.start_round(1, "m", settings=started)
        store.start_round(1, "m", settings=now.to_json())  # a resume: the first record stays
        assert store.round_settings(1) == started and store.round_settings(2) is None
