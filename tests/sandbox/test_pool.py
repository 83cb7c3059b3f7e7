"""The pool and its backends: order, crash isolation inside a batch, replacement, leftovers, errors."""

from __future__ import annotations

import pytest

from sandbox.backend import open_sandbox
from sandbox.engine import OWNER_LABEL, SANDBOX_LABEL, SandboxUnavailable, docker_client, sandbox_containers
from sandbox.verdicts import CRASHED, ERROR, FLAKY, MEMORY, OUTPUT, TIMEOUT, VERIFIED, WRONG
from sandbox.verify import SourcePair, verify_pairs


def numbered(i: int) -> SourcePair:
    return SourcePair(f"def f(x: int, n={i}):\n    return x == n * 3\n", f"def g(n={i}):\n    return n * 3\n")


# g's parent is g's zygote; the zygote's parent is the worker
KILL_WORKER = SourcePair(
    "def f(x: int):\n    return x == 1\n",
    "def g():\n    import os\n    worker = int(open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[1])\n"
    "    os.kill(worker, 9)\n",
)
QUIET = {"log": lambda m: None}


@pytest.fixture(params=["process", "docker"])
def sandbox(request):
    if request.param == "docker":
        request.getfixturevalue("docker_ready")
    with open_sandbox(request.param, workers=2, **QUIET) as box:
        yield box


def test_results_come_back_in_input_order(sandbox):
    pairs = [numbered(i) for i in range(60)]
    pairs[7] = SourcePair(pairs[7].f, "def g(n=7):\n    return n * 3 + 1\n")
    results = verify_pairs(pairs, sandbox)
    assert [r.status for r in results] == [WRONG if i == 7 else VERIFIED for i in range(60)]


def test_a_repeated_pair_runs_once_and_every_copy_gets_its_verdict(sandbox):
    ran: list[int] = []
    reported: dict[int, str] = {}

    class Counting:  # the real sandbox, counting the jobs it is given
        def run(self, jobs, on_result=None):
            ran.append(len(jobs))
            return sandbox.run(jobs, on_result)

    wrong = SourcePair(numbered(1).f, "def g(n=1):\n    return n * 3 + 1\n")
    pairs = [numbered(0), wrong, numbered(0), SourcePair("def f(x: int):\n    return x == eval('1')\n", "def g():\n    return 1\n"), wrong, numbered(0)]
    results = verify_pairs(pairs, Counting(), on_result=lambda i, r: reported.__setitem__(i, r.status))
    assert ran == [2, 1]  # the two distinct runnable pairs (the invalid one never runs), then the verified one again
    assert [r.status for r in results] == [VERIFIED, WRONG, VERIFIED, "invalid", WRONG, VERIFIED]
    assert reported == dict(enumerate(r.status for r in results))


def test_a_job_that_kills_its_worker_costs_that_job_alone(sandbox):
    pairs = [numbered(i) for i in range(12)]
    pairs[3] = KILL_WORKER
    pairs[9] = SourcePair(KILL_WORKER.f, KILL_WORKER.g + "    return 1\n")  # another pair: a repeat runs once
    results = verify_pairs(pairs, sandbox)
    if sandbox.kind == "docker":  # the job's uid cannot signal its worker: the job alone fails
        assert [r.status for r in results] == [ERROR if i in (3, 9) else VERIFIED for i in range(12)]
        assert sandbox.pool.replaced == 0
        return
    assert [r.status for r in results] == [CRASHED if i in (3, 9) else VERIFIED for i in range(12)]
    assert sandbox.pool.replaced == 2


def test_basic_limits_hold_in_both_backends(sandbox):
    f = "def f(x: int):\n    return x == 1\n"
    pairs = [
        SourcePair(f, "def g():\n    while True:\n        pass\n"),
        SourcePair(f, "def g():\n    return bytearray(10**11)\n"),
        SourcePair(f, "def g():\n    print('z' * 10**6)\n    return 1\n"),
        SourcePair(f, "def g():\n    return 1 / 0\n"),
        SourcePair(f, "def g():\n    return 1\n"),
    ]
    statuses = [r.status for r in verify_pairs(pairs, sandbox, timeout_s=1.0)]
    assert statuses == [TIMEOUT, MEMORY, OUTPUT, ERROR, VERIFIED]


def test_compile_errors_and_bad_names_are_the_jobs_errors_and_the_worker_goes_on(sandbox):
    """The worker compiles each source for its child (no job code runs in compiling): whatever the
    compiler refuses is that job's verdict, and the jobs after it verify."""
    from sandbox.verdicts import Job

    def job(i: int, f: str, g: str, g_name: str = "g") -> Job:
        return Job(id=i, f_source=f, f_name="f", answer_type="int", g_source=g, g_name=g_name, timeout_s=2.0)

    f, g = "def f(x: int):\n    return x == 1\n", "def g():\n    return 1\n"
    long_name = "g" * 256
    jobs = [
        job(0, f, "def g():\n    nonlocal x\n    return 1\n"),
        job(1, "def f(x: int, n=1, n=2):\n    return True\n", g),
        job(2, f, "def g():\n    return " + "-" * 50_000 + "1\n"),
        job(3, f, "#" * 1_000_001),
        job(4, f, g, g_name="not a name"),
        job(5, f, "def g():\n    return 1 if 1 is 1 else 0\n"),  # a SyntaxWarning, not an error
        job(6, f, f"def {long_name}():\n    return 1\n", g_name=long_name),
        job(7, f, g),
    ]
    results = sandbox.run(jobs)
    # the parser's stack overflows (MemoryError): the job's verdict
    assert [r.status for r in results] == [ERROR, ERROR, MEMORY, ERROR, ERROR] + [VERIFIED] * 3, results
    assert results[0].detail.startswith("g raised SyntaxError: no binding for nonlocal 'x'")
    assert results[1].detail.startswith("f raised SyntaxError: duplicate argument 'n'")
    assert "longer than 1000000 characters" in results[3].detail
    assert results[4].detail.startswith("g raised NameError: function name 'not a name' is not an identifier")


def test_a_sources_compile_warning_is_no_line_on_the_workers_stderr(tmp_path):
    """The worker compiles each job's source itself: a SyntaxWarning of model-written code (here ``is``
    with a literal) must not reach the worker's stderr, the user's terminal when it runs as a process."""
    import json
    import subprocess
    import sys

    from sandbox.image import WORKER_PATH
    from sandbox.verdicts import Job
    from sandbox.worker import F_HASH_SEEDS

    job = Job(0, "def f(x: int):\n    return x == 1\n", "f", "int",
              g_source="def g():\n    return 1 if 1 is 1 else 0\n", g_name="g")
    lines = [json.dumps({F_HASH_SEEDS: [1, 2]}), json.dumps(job.to_wire())]
    worker = subprocess.run(
        [sys.executable, "-I", "-S", str(WORKER_PATH), f"--scratch={tmp_path}"], input="\n".join(lines) + "\n",
        capture_output=True, text=True, timeout=60,
    )
    assert json.loads(worker.stdout.splitlines()[-1])["status"] == VERIFIED, worker.stdout
    assert worker.stderr == ""


def test_progress_callback_sees_every_pair_once(sandbox):
    seen = []
    verify_pairs(
        [numbered(i) for i in range(10)] + [SourcePair("junk", "def g(): return 1")],
        sandbox,
        on_result=lambda i, r: seen.append(i),
    )
    assert sorted(seen) == list(range(11))


def test_leftovers_of_a_dead_run_are_swept_at_start(docker_ready):
    client = docker_client()
    from sandbox.image import image_tag

    orphan = client.containers.create(
        image_tag(),
        labels={SANDBOX_LABEL: "1", OWNER_LABEL: f"{__import__('socket').gethostname()}:999999999:1"},
    )
    with open_sandbox("docker", workers=1, **QUIET):
        ids = {c.id for c in sandbox_containers(client)}
    assert orphan.id not in ids


def test_unreachable_engine_gives_a_clear_reason(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(SandboxUnavailable, match="no Docker engine is running|cannot reach"):
        open_sandbox("docker", workers=1, **QUIET)
    messages = []
    with open_sandbox("auto", workers=1, log=messages.append) as box:
        assert box.kind == "process"
    assert any("falling back" in m for m in messages) and any(
        "NOT an isolation boundary" in m for m in messages
    )


def test_a_retiring_worker_costs_no_queued_job_its_verdict(tmp_path):
    """A worker that cannot restore a clean state answers its job, says it retires and exits; the
    jobs queued behind it run on its replacement (process backend: only there can a job replace
    the worker's scratch dir)."""
    retire = SourcePair(
        "def f(x: int):\n    return x == 1\n",
        "def g():\n    import os\n    scratch = os.path.dirname(os.getcwd())\n    os.chdir('/')\n"
        f"    os.rename(scratch, {str(tmp_path / 'moved')!r})\n    os.symlink('/nonexistent', scratch)\n    return 1\n",
    )
    pairs = [numbered(i) for i in range(12)]
    pairs[4] = retire
    with open_sandbox("process", workers=1, **QUIET) as box:
        results = verify_pairs(pairs, box)
        assert [r.status for r in results] == [ERROR if i == 4 else VERIFIED for i in range(12)], results
        assert box.pool.replaced == 1



def test_closing_while_a_worker_starts_leaves_no_worker_behind():
    """A SIGTERM can close the pool while a driver thread is still starting a worker (a container
    being created): close() waits for that start and closes what it made."""
    import threading
    import time

    from sandbox.installation import installation_hash_seeds
    from sandbox.links import ProcessLink, WorkerLimits
    from sandbox.pool import WorkerPool

    starting, made = threading.Event(), []

    def slow_start() -> ProcessLink:
        starting.set()
        time.sleep(0.5)
        made.append(ProcessLink(WorkerLimits(), installation_hash_seeds()))
        return made[-1]

    def run() -> None:
        try:
            pool.run([numbered_job(6)])
        except SandboxUnavailable:  # the pool closed under it
            pass

    pool = WorkerPool(slow_start, size=1)
    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    assert starting.wait(10)
    pool.close()
    assert len(made) == 1 and made[0].process.poll() is not None, "a worker outlived close()"
    runner.join(10)


def numbered_job(n: int):
    from sandbox.verdicts import Job

    f, g = f"def f(x: int):\n    return x == {n}\n", f"def g():\n    return {n}\n"
    return Job(id=n, f_source=f, f_name="f", answer_type="int", g_source=g, g_name="g", timeout_s=2)


def test_a_verified_pair_whose_second_run_is_lost_stays_crashed_and_one_that_changes_is_flaky(tmp_path):
    """The process backend, where g can leave a mark outside its scratch space: the first run verifies,
    the second kills its worker (lost: crashed, no verdict) or answers something else (flaky)."""
    mark = tmp_path / "ran"
    second_run = f"    import os\n    if os.path.exists({str(mark)!r}):\n"
    first_run = f"    open({str(mark)!r}, 'a').close()\n    return 1\n"
    kills_on_rerun = SourcePair(KILL_WORKER.f, KILL_WORKER.g.replace("    os.kill", second_run + "        os.kill") + first_run)
    wrong_on_rerun = SourcePair(KILL_WORKER.f, "def g():\n" + second_run + "        return 2\n" + first_run)
    with open_sandbox("process", workers=1, **QUIET) as box:
        lost = verify_pairs([kills_on_rerun, numbered(0)], box)
        mark.unlink()
        changed = verify_pairs([wrong_on_rerun, numbered(0)], box)
    assert [r.status for r in lost] == [CRASHED, VERIFIED]
    assert [r.status for r in changed] == [FLAKY, VERIFIED]
    assert changed[0].detail == "verified, then wrong (f returned False) in a second run"
