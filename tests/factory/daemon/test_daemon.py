"""The daemon as a real process: lock, JSON log, metrics over HTTP, status, stop conditions, SIGTERM,
kill -9 at random moments, and the Docker engine going away and coming back.

Two models drive it. The tiny real model (built in seconds) exercises model loading, generation,
training and evaluation, but never writes a puzzle that parses, so its rounds store no pairs. The
scripted model is an OpenAI-compatible server in this process that answers like a model that has
learnt three puzzle families: its puzzles pass the filters, its solutions verify (or fail in known
ways) in real sandboxes, so rounds store pairs. Its answers depend only on the request (prompt, seed,
n), as a seeded model's would, so a resumed run must end with exactly the store of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from factory.cli.main import main as daemon_main
from factory.daemon.daemon import JsonLog, StopFlag, StopRequested
from factory.errors import UserError
from factory.outputs.status import format_status, read_status
from factory.store import STORE_FILENAME
from factory.store.lock import RunLock, lock_state
from tests.factory.containers import owned_containers
from tests.factory.daemon.test_metrics import samples
from tests.factory.loop.test_run import store_contents
from tests.factory.scripted_model import ScriptedModelServer

REPO = Path(__file__).resolve().parents[3]
# One torch thread: on a small, busy machine two threads make the tiny model ten times slower.
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    from factory.loop.corpus import base_corpus
    from factory.models.embedded import BuildConfig, default_model_path

    return str(default_model_path(base_corpus, tmp_path_factory.mktemp("models"), config=BuildConfig.tiny(), log=lambda m: None))


# ---------------------------------------------------------------------------------------------------
# configs and processes


def tiny_run(model: str) -> dict:
    return {"model": model, "puzzles": 6, "attempts": 2, "batch_size": 1, "max_new_tokens": 48,
            "propose_examples": 2, "solve_examples": 1, "epochs": 0.1, "eval_samples": 2, "eval_ks": [1, 2],
            "eval_limit": 4}


def scripted_run(server: ScriptedModelServer) -> dict:
    # No scripted solution loops: a generous timeout keeps verdicts independent of the machine's load.
    return {"model": "scripted", "backend": "openai", "base_url": server.base_url, "train": False,
            "puzzles": 8, "attempts": 4, "batch_size": 2, "propose_examples": 2, "solve_examples": 1,
            "timeout_s": 5.0, "max_pairs_per_puzzle": 2, "eval_samples": 2, "eval_ks": [1, 2], "eval_limit": 4}


def write_config(directory: Path, run: dict, *, sandbox: str = "process", workers: int = 2, stop: dict | None = None,
                 daemon: dict | None = None) -> Path:
    from factory.settings import toml_value

    directory.mkdir(parents=True, exist_ok=True)
    lines = ["[run]", 'run_dir = "run"', f'sandbox = "{sandbox}"', f"workers = {workers}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in run.items()]
    lines += ["[stop]", *(f"{k} = {toml_value(v)}" for k, v in (stop or {}).items())]
    lines += ["[daemon]", 'log_file = "daemon.log"', "backoff_initial_seconds = 0.5", "backoff_max_seconds = 2.0",
              *(f"{k} = {toml_value(v)}" for k, v in (daemon or {}).items())]
    path = directory / "factory.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_daemon(config: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "factory.cli", "daemon", "--config", str(config)],
                            cwd=REPO, env=env or CHILD_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_daemon_to_end(config: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "factory.cli", "daemon", "--config", str(config)],
                            cwd=REPO, env=CHILD_ENV, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:] + log_tail(config.parent)
    return result


def log_events(directory: Path) -> list[dict]:
    path = directory / "daemon.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def log_tail(directory: Path, lines: int = 15) -> str:
    path = directory / "daemon.log"
    return "\n" + "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def progress(run_dir: Path) -> int:
    """Commits so far: batch markers plus pass@k records (the base evaluation has no marker)."""
    path = run_dir / STORE_FILENAME
    if not path.exists():
        return 0
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=10)
    try:
        return db.execute("SELECT (SELECT COUNT(*) FROM batches) + (SELECT COUNT(*) FROM evals)").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
    finally:
        db.close()


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return samples(reply.read().decode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------
# pieces


def test_stop_flag_checks_requests_and_the_wall_time():
    flag = StopFlag()
    flag.check()
    flag.request("SIGTERM received")
    with pytest.raises(StopRequested, match="SIGTERM"):
        flag.check()
    timed = StopFlag(hours=0.2 / 3600)
    assert not timed.requested
    started = time.monotonic()
    assert timed.wait(5.0) is True  # wakes at the limit, not after 5 s
    assert time.monotonic() - started < 2.0 and "wall-time" in timed.reason


def test_json_log_writes_one_object_per_line(tmp_path):
    log = JsonLog.open(tmp_path / "logs" / "daemon.log")
    log("round.start", model="m")
    log.round = 3
    log("sandbox.waiting", level="warning", retry_in_s=2.0, error='engine "gone"\nreally')
    log.close()
    first, second = [json.loads(line) for line in (tmp_path / "logs" / "daemon.log").read_text().splitlines()]
    assert first["event"] == "round.start" and first["round"] is None and first["level"] == "info"
    assert first["ts"].endswith("Z") and first["pid"] == os.getpid() and first["model"] == "m"
    assert second["round"] == 3 and second["retry_in_s"] == 2.0 and second["error"] == 'engine "gone"\nreally'


HOLD_LOCK = "import sys, time; from factory.store.lock import RunLock; RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)"


def test_the_lock_names_its_holder_and_a_dead_holder_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)], cwd=REPO, env=CHILD_ENV,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lock_state(tmp_path)[0] is True
        with pytest.raises(UserError, match=rf"in use by another factory process: pid {holder.pid} on {socket.gethostname()}"):
            RunLock(tmp_path).acquire(wait_s=0.2)
    finally:
        holder.kill()
        holder.wait()
    running, previous_holder = lock_state(tmp_path)
    assert running is False and previous_holder.pid == holder.pid and previous_holder.stopped_at is None
    lock = RunLock(tmp_path)
    previous = lock.acquire()
    assert previous.pid == holder.pid and previous.stopped_at is None  # stale: its holder died
    assert lock_state(tmp_path) == (True, lock.holder)
    lock.release()
    running, last = lock_state(tmp_path)
    assert running is False and last.pid == os.getpid() and last.stopped_at is not None


# ---------------------------------------------------------------------------------------------------
# the daemon at work (scripted model, process sandbox: seconds)


def test_a_daemon_works_reports_and_refuses_a_second_daemon(tmp_path, scripted_model):
    port = free_port()
    config = write_config(tmp_path, scripted_run(scripted_model), daemon={"metrics_port": port})  # runs forever
    daemon = start_daemon(config)
    try:
        # A second daemon on the same run directory is refused, naming the first.
        wait_for(lambda: lock_state(tmp_path / "run")[0], 30, "the first daemon's lock")
        second = subprocess.run([sys.executable, "-m", "factory.cli", "daemon", "--config", str(config)],
                                cwd=REPO, env=CHILD_ENV, capture_output=True, text=True, timeout=60)
        assert second.returncode == 4  # StoreError: the run directory is in use
        assert f"in use by another factory process: pid {daemon.pid}" in second.stderr and len(second.stderr.splitlines()) == 1
        # Metrics over real HTTP, and the status, while it works.
        metrics = wait_for(lambda: _try_scrape(port), 30, "the metrics endpoint")
        assert metrics["factory_daemon_up"] == 1 and metrics["factory_daemon_pid"] == daemon.pid
        assert metrics['factory_sandbox_info{kind="process"}'] == 1
        wait_for(lambda: [e for e in log_events(tmp_path) if e["event"] == "round.finish"][1:], 120, "two rounds")
        status = format_status(read_status(tmp_path / "run"))
        assert f"state: running (daemon pid {daemon.pid}" in status
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0, daemon.stderr.read().decode()[-2000:]
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    events = log_events(tmp_path)
    assert all({"ts", "level", "event", "round", "pid"} <= set(e) for e in events)
    names = [e["event"] for e in events]
    assert names[0] == "daemon.start" and names[-1] == "daemon.stop" and "SIGTERM" in events[-1]["reason"]
    finished = [e for e in events if e["event"] == "round.finish"]
    assert [e["round"] for e in finished][:2] == [1, 2] and finished[0]["funnel"]["pairs"] > 0

    status = read_status(tmp_path / "run")
    assert status.running is False and status.holder.pid == daemon.pid and status.holder.stopped_at is not None
    assert [r.round for r in status.rounds][:3] == [0, 1, 2] and status.generated_pairs > 0
    text = format_status(status)
    assert "state: not running (last daemon: pid" in text
    assert re.search(r"^\s+1\s+finished\s+8\s+\d+\s+\d+\s+\d+\s+\d+\s+[\d.]+\s+[\d.]+", text, re.M), text
    assert daemon_main(["status", str(tmp_path / "run"), "--json"]) == 0

    # Started again with a limit the run has already reached, it stops at once, having done nothing.
    before = store_contents(tmp_path / "run")
    run_daemon_to_end(write_config(tmp_path, scripted_run(scripted_model), stop={"rounds": 2}), timeout=60)
    assert store_contents(tmp_path / "run") == before
    assert "rounds are finished ([stop] rounds = 2)" in log_events(tmp_path)[-1]["reason"]


def _try_scrape(port: int) -> dict | None:
    try:
        return scrape(port)
    except OSError:
        return None


def test_metrics_follow_the_store_as_rounds_finish(tmp_path, scripted_model):
    """In-process, so that the test reads the endpoint between rounds."""
    from factory.daemon.config import load_config
    from factory.daemon.daemon import Daemon
    from factory.daemon.metrics import DaemonState
    from factory.store import RunStore

    port = free_port()
    config = load_config(write_config(tmp_path, scripted_run(scripted_model), stop={"rounds": 1},
                                      daemon={"metrics_port": port}))
    state = DaemonState()
    seen: list[dict] = []

    class Watching(JsonLog):
        def __call__(self, event, level="info", **fields):
            super().__call__(event, level, **fields)
            if event in ("eval.base", "round.finish"):
                seen.append(scrape(port))

    log = Watching(open(tmp_path / "daemon.log", "a"), close_stream=True)
    assert Daemon(config, log=log, state=state).run() == 0
    base, after = seen
    with RunStore.open(tmp_path / "run", create=False) as store:
        stored = {e.k: e.pass_at_k for e in store.evals(0)}
    assert base["factory_rounds_finished"] == 0
    assert base['factory_pass_at_k{dataset="task-test",k="1",round="0"}'] == pytest.approx(stored[1])
    assert after["factory_rounds_finished"] == 1 and after["factory_pairs_verified_total"] > 0
    assert after['factory_attempts_total{verdict="verified"}'] > 0 and after['factory_attempts_total{verdict="error"}'] > 0
    assert after['factory_daemon_state{state="running"}'] == 1 and after["factory_sandbox_workers"] == 2
    assert after['factory_stage_seconds_total{stage="solve.verify"}'] > 0 and after["factory_pairs_per_second"] > 0
    assert state.phase == "stopped"
    with pytest.raises(OSError):  # the endpoint closed with the daemon
        scrape(port)


def test_the_pairs_cost_and_hours_limits_stop_the_daemon(tmp_path, scripted_model):
    from factory.daemon.config import load_config
    from factory.daemon.daemon import Daemon
    from factory.store import RunStore

    config = load_config(write_config(tmp_path / "pairs", scripted_run(scripted_model), stop={"pairs": 1}))
    daemon = Daemon(config)
    assert daemon.run() == 0 and "verified pairs are stored ([stop] pairs = 1)" in daemon.stop_reason
    with RunStore.open(tmp_path / "pairs" / "run") as store:
        assert [r.round for r in store.rounds() if r.finished_at] == [1]  # the round that crossed it finishes

    priced = {**scripted_run(scripted_model), "price_per_mtok": "1000,1000"}
    config = load_config(write_config(tmp_path / "cost", priced, stop={"cost": 1e-6}))
    daemon = Daemon(config)
    assert daemon.run() == 0 and "the run's tokens cost" in daemon.stop_reason and "([stop] cost = 1e-06)" in daemon.stop_reason
    with RunStore.open(tmp_path / "cost" / "run") as store:
        assert [r.round for r in store.rounds() if r.finished_at] == [1]

    config = load_config(write_config(tmp_path / "hours", scripted_run(scripted_model), stop={"hours": 0.5 / 3600}))
    daemon = Daemon(config)
    started = time.monotonic()
    assert daemon.run() == 0 and "wall-time limit" in daemon.stop_reason
    assert time.monotonic() - started < 15


def test_it_waits_for_an_unreachable_engine_and_starts_when_it_appears(tmp_path, scripted_model, docker_ready):
    """DOCKER_HOST names a socket that does not exist yet; later it becomes a link to the real one."""
    real = Path("/var/run/docker.sock")
    if not real.exists():
        pytest.skip("the Docker engine is not on /var/run/docker.sock")
    socket_path = tmp_path / "engine.sock"
    env = {**CHILD_ENV, "DOCKER_HOST": f"unix://{socket_path}"}
    config = write_config(tmp_path, scripted_run(scripted_model), sandbox="docker", stop={"rounds": 1},
                          daemon={"metrics_port": (port := free_port())})
    daemon = start_daemon(config, env)
    try:
        wait_for(lambda: len([e for e in log_events(tmp_path) if e["event"] == "sandbox.waiting"]) >= 3, 30, "three waits")
        waits = [e["retry_in_s"] for e in log_events(tmp_path) if e["event"] == "sandbox.waiting"]
        assert waits[:3] == [0.5, 1.0, 2.0]  # doubling, capped at backoff_max_seconds
        metrics = scrape(port)
        assert metrics['factory_daemon_state{state="waiting_for_sandbox"}'] == 1
        assert metrics["factory_sandbox_backoff_seconds"] > 0
        socket_path.symlink_to(real)
        assert daemon.wait(timeout=120) == 0, daemon.stderr.read().decode()[-2000:] + log_tail(tmp_path)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    names = [e["event"] for e in log_events(tmp_path)]
    assert "sandbox.back" in names and names.count("round.finish") == 1


# ---------------------------------------------------------------------------------------------------
# stopping, killing, and the engine going away


@pytest.mark.slow
def test_sigterm_stops_within_seconds_and_removes_every_container(tmp_path, scripted_model, docker_ready):
    config = write_config(tmp_path, scripted_run(scripted_model), sandbox="docker")  # no stop condition: forever
    daemon = start_daemon(config)
    try:
        wait_for(lambda: owned_containers(daemon.pid), 120, "the daemon's containers", interval=0.2)
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
        latency = time.monotonic() - started
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    print(f"stop latency after SIGTERM (docker): {latency:.2f}s")
    assert code == 0, daemon.stderr.read().decode()[-2000:]
    assert latency < 10
    assert owned_containers(daemon.pid) == []
    events = log_events(tmp_path)
    assert events[-1]["event"] == "daemon.stop" and "SIGTERM" in events[-1]["reason"]


def test_a_step_that_outlives_the_stop_timeout_is_interrupted_and_abandoned(tmp_path):
    """A generate call that takes longer than stop_timeout_seconds: SIGTERM, then the deadline interrupts
    it; nothing of its batch is stored, and the next start does the work."""
    model = ScriptedModelServer(delay_s=3.0)
    try:
        config = write_config(tmp_path, scripted_run(model), stop={"rounds": 1}, daemon={"stop_timeout_seconds": 0.5})
        daemon = start_daemon(config)
        try:
            wait_for(lambda: model.requests > 0, 60, "the base eval's first generate call")
            time.sleep(0.2)  # inside that call (3 s)
            started = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=30) == 0, daemon.stderr.read().decode()[-2000:]
            latency = time.monotonic() - started
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
        events = log_events(tmp_path)
        names = [e["event"] for e in events]
        assert names.index("stop.requested") < names.index("stop.deadline") < names.index("daemon.stop")
        deadline = _event_time(events[names.index("stop.deadline")]) - _event_time(events[names.index("stop.requested")])
        assert 0.4 < deadline < 2.0 and "interrupted after 0.5s" in events[-1]["reason"]
        assert latency < 10  # the HTTP request in flight still ends first (the backend waits for it)
        assert progress(tmp_path / "run") == 0  # the abandoned evaluation stored nothing
        model.delay_s = 0.0
        run_daemon_to_end(config, timeout=120)
        assert progress(tmp_path / "run") > 0 and "1 rounds are finished" in log_events(tmp_path)[-1]["reason"]
    finally:
        model.close()


# The random-kill tests stop the daemon this many times (a second or more each); a long soak sets
# FACTORY_SOAK_KILLS (e.g. 12, or 50) and FACTORY_KILL_SEED to vary the moments.
DEFAULT_KILLS = 6


def soak_kills() -> int:
    return int(os.environ.get("FACTORY_SOAK_KILLS", str(DEFAULT_KILLS)))


def enough_stops(wanted: int) -> int:
    """Stops that must land: all but one in six may miss (the run got there first after a restart)."""
    return wanted - wanted // 6


def commit_times(run_dir: Path) -> list[float]:
    db = sqlite3.connect(run_dir.resolve().as_uri() + "/" + STORE_FILENAME + "?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT finished_at FROM batches UNION ALL SELECT created_at FROM evals").fetchall()
    finally:
        db.close()
    return sorted(t for (t,) in rows)


def pause(daemon: subprocess.Popen, run_dir: Path, seconds: float, at_most: int) -> None:
    """Sleep ``seconds``, or less: until the store holds more than ``at_most`` commits or the daemon ends."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and progress(run_dir) <= at_most and daemon.poll() is None:
        time.sleep(0.005)


def kill_at_random_moments(config: Path, reference: Path, rng: random.Random, kills: int,
                           sigterms: int = 0) -> tuple[int, list[float]]:
    """Start the daemon again and again and stop it at random moments spread over the whole run.

    ``reference`` is the directory of an uninterrupted run (config, log, store): its timeline scales
    the delays. A third of the kills come at a random time before the first commit of a fresh start
    (interpreter start-up, lock, sandbox, model loading), or at this process's second commit if that
    comes first. The others wait for a random amount of progress (commits in the store; at least one
    of this process's own), then up to twice the median time between two commits (at most two more
    commits), so they land inside batches of every stage and the run cannot end before the last kill. ``sigterms`` of the stops
    are SIGTERM instead of SIGKILL; those must end within 10 s. Returns the stops and SIGTERM latencies.
    """
    run_dir = config.parent / "run"
    times = commit_times(reference / "run")
    started = _event_time(log_events(reference)[0])
    startup = times[0] - started
    gap = sorted(b - a for a, b in zip(times, times[1:], strict=False))[len(times) // 2]
    # One target in each of ``kills`` equal slices of the first 85% of the run's commits.
    targets = [int((i + rng.random()) * len(times) * 0.85 / kills) for i in range(kills)]
    terminate_at = set(rng.sample(range(kills), sigterms))
    done, latencies = 0, []
    for _attempt in range(3 * kills):
        if done == kills:
            break
        daemon = start_daemon(config)
        try:
            if done in terminate_at:
                # Before its handlers are in place (interpreter start-up) SIGTERM just ends the process,
                # which is harmless; a SIGTERM here comes once the daemon works.
                wait_for(lambda d=daemon: d.poll() is not None or any(
                    e["event"] == "sandbox.open" and e["pid"] == d.pid for e in log_events(config.parent)), 60, "work")
            if rng.random() < 1 / 3:
                at_most = progress(run_dir) + 1  # however fast this start is, no further than that
                pause(daemon, run_dir, rng.uniform(0.05, startup), at_most)
            else:
                goal = max(targets[done], progress(run_dir))
                wait_for(lambda d=daemon, g=goal: progress(run_dir) > g or d.poll() is not None, 300, f"commit {goal}",
                         interval=0.01)
                pause(daemon, run_dir, rng.uniform(0.0, 2 * gap), goal + 2)
            if daemon.poll() is not None:
                continue  # the run finished before this stop
            if done in terminate_at:
                begun = time.monotonic()
                daemon.send_signal(signal.SIGTERM)
                code = daemon.wait(timeout=30)
                latencies.append(time.monotonic() - begun)
                stopped = [e for e in log_events(config.parent) if e["event"] == "daemon.stop" and e["pid"] == daemon.pid]
                if code != 0:  # only a daemon already past its own stop (handlers restored) may die of it
                    assert code == -signal.SIGTERM and stopped and "SIGTERM" not in stopped[0]["reason"], (
                        f"exit {code}: " + daemon.stderr.read().decode()[-2000:])
            else:
                daemon.kill()
                daemon.wait()
            done += 1
            print(f"stop {done}: progress {progress(run_dir)}/{len(times)}")
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
    return done, latencies


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~90 s on a quiet machine; a busy one (load 10 on 2 cores) took over 300
def test_killed_at_random_moments_the_tiny_model_run_ends_as_if_never_killed(tmp_path, tiny_model):
    """``soak_kills()`` stops (FACTORY_SOAK_KILLS, default 6; a quarter of them, at least two, SIGTERM)
    spread over the whole run; FACTORY_SOAK_KILLS=12 or more (and FACTORY_KILL_SEED) for a long soak."""
    run = tiny_run(tiny_model)
    reference = write_config(tmp_path / "reference", run, stop={"rounds": 2})
    started = time.monotonic()
    run_daemon_to_end(reference)
    seconds = time.monotonic() - started
    print(f"uninterrupted run: {seconds:.1f}s")

    resumed = write_config(tmp_path / "resumed", run, stop={"rounds": 2})
    rng = random.Random(int(os.environ.get("FACTORY_KILL_SEED", "1")))
    started = time.monotonic()
    wanted = soak_kills()
    kills, latencies = kill_at_random_moments(resumed, tmp_path / "reference", rng, kills=wanted,
                                              sigterms=max(2, wanted // 4))
    run_daemon_to_end(resumed)
    print(f"{kills} kills and the final resume: {time.monotonic() - started:.1f}s; SIGTERM latencies {latencies}")
    assert kills >= enough_stops(wanted)
    assert latencies and all(seconds < 10 for seconds in latencies)
    assert store_contents(tmp_path / "resumed" / "run") == store_contents(tmp_path / "reference" / "run")
    assert any(e["event"] == "lock.taken_over" for e in log_events(tmp_path / "resumed"))  # a kill -9's stale lock


@pytest.mark.slow
def test_killed_at_random_moments_a_run_with_pairs_loses_none_and_stores_none_twice(tmp_path, scripted_model):
    """``soak_kills()`` stops (FACTORY_SOAK_KILLS, default 6; one in six, at least one, SIGTERM) spread over
    three rounds; FACTORY_SOAK_KILLS=12 or more (and FACTORY_KILL_SEED) for a long soak."""
    run = scripted_run(scripted_model)
    reference = write_config(tmp_path / "reference", run, stop={"rounds": 3})
    run_daemon_to_end(reference)
    expected = store_contents(tmp_path / "reference" / "run")
    assert len(expected["pairs"]) > 10 and {a[4] for a in expected["attempts"]} >= {"verified", "wrong", "error"}

    resumed = write_config(tmp_path / "resumed", run, stop={"rounds": 3})
    rng = random.Random(int(os.environ.get("FACTORY_KILL_SEED", "1")))
    wanted = soak_kills()
    kills, _ = kill_at_random_moments(resumed, tmp_path / "reference", rng, kills=wanted, sigterms=max(1, wanted // 6))
    run_daemon_to_end(resumed)
    assert kills >= enough_stops(wanted)
    assert store_contents(tmp_path / "resumed" / "run") == expected


# -- the Docker engine goes away -------------------------------------------------------------------


def docker_up() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def dockerd_process() -> tuple[int, list[str]] | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and Path(argv[0].decode()).name == "dockerd":
                return int(entry.name), [a.decode() for a in argv if a]
    return None


def start_dockerd(argv: list[str]) -> None:
    """Start dockerd as it was started by hand: same command line, output to /tmp/dockerd.log, its own
    session (it outlives this test)."""
    with open("/tmp/dockerd.log", "ab") as log:
        subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    wait_for(docker_up, 120, "the Docker engine to come back", interval=0.5)


def ensure_dockerd(argv: list[str], old_pid: int) -> None:
    wait_for(lambda: not Path(f"/proc/{old_pid}").exists(), 120, "the old dockerd to exit", interval=0.2)
    if dockerd_process() is None:
        start_dockerd(argv)
    wait_for(docker_up, 120, "the Docker engine", interval=0.5)


@pytest.mark.slow
@pytest.mark.alone  # it stops the Docker engine every other test uses
def test_the_engine_goes_away_mid_run_and_the_daemon_resumes_losing_nothing(tmp_path, docker_ready):
    found = dockerd_process()
    if found is None or os.geteuid() != 0 or Path("/run/systemd/system").exists():
        pytest.skip("needs a hand-started dockerd (not systemd's) that this root test may stop and start")
    dockerd_pid, dockerd_argv = found
    model = ScriptedModelServer(delay_s=0.1)  # slower, like a real model: the run lasts long enough to break
    try:
        run = scripted_run(model)
        reference = write_config(tmp_path / "reference", run, sandbox="docker", stop={"rounds": 3})
        run_daemon_to_end(reference)

        config = write_config(tmp_path / "outage", run, sandbox="docker", stop={"rounds": 3})
        run_dir = tmp_path / "outage" / "run"
        daemon = start_daemon(config)
        try:
            wait_for(lambda: progress(run_dir) >= 5, 120, "round 1 under way")
            os.kill(dockerd_pid, signal.SIGTERM)
            wait_for(lambda: not docker_up(), 60, "the engine to stop", interval=0.2)
            down_at = time.time()
            wait_for(lambda: any(e["event"] == "sandbox.waiting" for e in log_events(tmp_path / "outage")), 60,
                     "the daemon to say it waits")
            assert daemon.poll() is None
            ensure_dockerd(dockerd_argv, dockerd_pid)
            up_at = time.time()
            assert daemon.wait(timeout=300) == 0, daemon.stderr.read().decode()[-2000:]
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
    finally:
        model.close()
        ensure_dockerd(dockerd_argv, dockerd_pid)  # whatever happened, the engine runs again
    events = log_events(tmp_path / "outage")
    back = [e for e in events if e["event"] == "sandbox.back"]
    assert back, log_tail(tmp_path / "outage", 40)
    print(f"engine down for {up_at - down_at:.1f}s; the daemon resumed {_event_time(back[-1]) - up_at:.1f}s after it was back")
    assert store_contents(run_dir) == store_contents(tmp_path / "reference" / "run")


def _event_time(event: dict) -> float:
    from datetime import datetime

    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()
