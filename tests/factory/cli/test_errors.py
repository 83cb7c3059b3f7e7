"""The error contract of the `factory` command, run as a real process: every error a user can cause is
one line on stderr (``factory: ...``), the last one, with its documented exit code and no traceback.

Exit codes (factory/errors.py, README "Exit codes"): 2 bad input, flag or setting; 3 sandbox
unusable; 4 store unusable; 5 model cannot be loaded or trained; 130 Ctrl-C; 143 SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factory.errors import ModelError
from factory.store import SCHEMA_VERSION, STORE_FILENAME, RunStore

REPO = Path(__file__).resolve().parents[3]
# One torch thread: on a small, busy machine two threads make the tiny model ten times slower.
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
HOLD_LOCK = (
    "import sys, time; from factory.store.lock import RunLock; RunLock(sys.argv[1]).acquire(); "
    "print('held', flush=True); time.sleep(120)"
)
# A round as small as a round gets: seconds with the tiny model and the process sandbox.
TINY_ROUND = ["--puzzles", "2", "--attempts", "1", "--batch-size", "2", "--max-new-tokens", "24",
              "--eval-samples", "1", "--eval-limit", "1", "--epochs", "0.01", "--sandbox", "process",
              "--workers", "1"]


def factory(*argv: object, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factory.cli", *map(str, argv)], cwd=REPO, env=env or CHILD_ENV,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(stderr: str, *, alone: bool = False) -> str:
    """The one ``factory: `` line of ``stderr``, which must be its last line (and, with ``alone``, its
    only line: the error came before any sandbox or model started)."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    ours = [line for line in lines if line.startswith("factory: ")]
    assert len(ours) == 1 and lines[-1] == ours[0], stderr
    if alone:
        assert lines == ours, stderr
    return ours[0]


def test_a_corrupt_store_is_exit_4_before_any_sandbox_starts(tmp_path):
    (tmp_path / STORE_FILENAME).write_bytes(b"\x00garbage, not SQLite\xff" * 200)
    done = factory("round", "--run-dir", tmp_path, "--sandbox", "process")
    assert done.returncode == 4, done.stderr
    assert "is not a usable factory store" in one_line_error(done.stderr, alone=True)


def test_a_store_held_by_another_process_is_exit_4(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)], cwd=REPO, env=CHILD_ENV,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        done = factory("round", "--run-dir", tmp_path, "--sandbox", "process")
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 4, done.stderr
    line = one_line_error(done.stderr, alone=True)
    assert f"in use by another factory process: pid {holder.pid}" in line


def test_a_store_of_a_newer_schema_is_exit_4(tmp_path):
    RunStore.open(tmp_path).close()
    with sqlite3.connect(tmp_path / STORE_FILENAME) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    done = factory("round", "--run-dir", tmp_path, "--sandbox", "process")
    assert done.returncode == 4, done.stderr
    assert "written by a newer version of the factory" in one_line_error(done.stderr, alone=True)


def test_an_unloadable_model_is_exit_5(tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    done = factory("round", "--run-dir", tmp_path / "run", "--model", empty, *TINY_ROUND)
    assert done.returncode == 5, done.stderr
    assert f"cannot load model {empty}" in one_line_error(done.stderr)


def test_a_failed_fine_tuning_is_exit_5(tmp_path, synthetic_tiny_model):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoints").write_text("a file where the checkpoints directory goes\n")
    done = factory("round", "--run-dir", run_dir, "--model", synthetic_tiny_model, *TINY_ROUND)
    assert done.returncode == 5, done.stderr
    line = one_line_error(done.stderr)
    assert f"cannot fine-tune: cannot create the checkpoint directory {run_dir / 'checkpoints'}" in line
    assert "fine-tuning" in done.stderr  # it failed in training, after propose and solve


def test_fine_tune_says_in_one_line_why_it_cannot_train(tmp_path):
    from factory.models.train import fine_tune

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    for base in (tmp_path / "missing", broken):
        with pytest.raises(ModelError) as caught:
            fine_tune(base, ["def f(x: int):\n    return x == 1\n"], tmp_path / "out")
        assert str(base) in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_the_openai_backend_with_training_is_refused_at_once(tmp_path):
    run_dir = tmp_path / "run"
    done = factory("run", "--backend", "openai", "--model", "x", "--rounds", "1", "--run-dir", run_dir)
    assert done.returncode == 2, done.stderr
    line = one_line_error(done.stderr, alone=True)  # alone: no sandbox started, nothing loaded
    assert "train = true needs a local model" in line and "--no-train" in line
    assert not run_dir.exists()


def test_a_bad_flag_is_one_line_exit_2(tmp_path):
    done = factory("round", "--run-dir", tmp_path, "--puzzles", "many")
    assert done.returncode == 2
    assert "argument --puzzles: invalid int value: 'many'" in one_line_error(done.stderr, alone=True)
    done = factory("round", "--run-dir", tmp_path, "--top-p", "1.5")
    assert done.returncode == 2
    assert one_line_error(done.stderr, alone=True) == "factory: top_p must be in (0, 1] (got 1.5) (flag --top-p)"
    assert not (tmp_path / STORE_FILENAME).exists()


def test_the_default_sandbox_is_docker_without_fall_back(tmp_path):
    pairs = tmp_path / "in.jsonl"
    pairs.write_text(json.dumps({"id": 1, "f": "def f(x: int):\n    return x == 2\n", "g": "def g():\n    return 2\n"}) + "\n")
    env = {**CHILD_ENV, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    done = factory("verify", pairs, "--out", tmp_path / "r.jsonl", env=env)
    assert done.returncode == 3, done.stderr
    assert one_line_error(done.stderr).startswith("factory: sandbox unavailable: ")
    done = factory("verify", pairs, "--out", tmp_path / "r.jsonl", "--sandbox", "auto", env=env)
    assert done.returncode == 0, done.stderr
    assert "falling back to local processes" in done.stderr and "NOT an isolation boundary" in done.stderr


def test_auto_says_when_it_chose_docker(tmp_path, docker_ready):
    pairs = tmp_path / "in.jsonl"
    pairs.write_text(json.dumps({"id": 1, "f": "def f(x: int):\n    return x == 2\n", "g": "def g():\n    return 2\n"}) + "\n")
    done = factory("verify", pairs, "--out", tmp_path / "r.jsonl", "--sandbox", "auto", "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert "sandbox: auto chose docker" in done.stderr


def long_verification(tmp_path: Path) -> list[str]:
    """A `factory verify` of 3000 distinct pairs (a repeated pair runs once), each g a few milliseconds of
    work, in one process worker: far more than a second's work, nearly all of it in the sandbox."""
    path = tmp_path / "in.jsonl"
    path.write_text("".join(
        json.dumps({"id": i, "f": f"def f(x: int):\n    return x == {i}\n",
                    "g": f"def g():\n    return sum(range(300000)) * 0 + {i}\n"}) + "\n"
        for i in range(3_000)
    ))
    return [sys.executable, "-m", "factory.cli", "verify", str(path), "--out", str(tmp_path / "r.jsonl"),
            "--sandbox", "process", "--workers", "1"]


@pytest.mark.parametrize(("signum", "code", "message"), [(signal.SIGTERM, 143, "factory: stopped by SIGTERM"),
                                                         (signal.SIGINT, 130, "factory: interrupted")])
def test_a_signal_mid_command_is_one_line_and_its_exit_code(tmp_path, signum, code, message):
    # a pytest-xdist worker ignores SIGINT, and a child would inherit that: the child starts with the default
    process = subprocess.Popen(long_verification(tmp_path), cwd=REPO, env=CHILD_ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = process.stderr.readline()  # the process sandbox's warning: the sandbox is open
        assert "NOT an isolation boundary" in first, first
        time.sleep(1.0)
        assert process.poll() is None, "the verification ended before the signal"
        process.send_signal(signum)
        rest = process.stderr.read()
        assert process.wait(timeout=60) == code, rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert one_line_error(first + rest) == message
    assert not (tmp_path / "r.jsonl").exists()  # results are written whole or not at all
