"""The sandbox worker: runs untrusted (puzzle, solution) jobs and decides their verdicts.

Standard library only, one file: it is copied into the sandbox image and also runs as a plain local
process. It reads one JSON job per line on stdin and writes one JSON result per line on stdout.

No process that runs a job's code ever held another job's data. Before it reads any job the worker
starts two fresh interpreters that import this file: a zygote that g's children fork from and one
that f's fork from. For each job the worker (trusted: it never runs untrusted code itself, and
nothing untrusted is ever forked from it)
  1. compiles g's source (compiling runs none of it), writes the code to a memfd and has g's zygote
     fork a child that reads it (the zygote passes the fd on unread) and runs ``g()``, with
     ``random`` seeded from the pair's text
     (every generator, and SystemRandom) and a fixed hash secret, and sends its answer back as
     plain JSON data, which the worker parses (bounded in size and int-conversion work, and
     counted in g's time) and type-checks, then
  2. writes f's compiled code and the answer's bytes to a memfd, the same way, for a child of f's zygote
     that runs ``f(answer)`` and reports whether it returned exactly ``True``. f's zygote has its
     own hash secret (a seed the host derives from its installation's secret and sends as its first
     line, the same in every run there) and address layout, which no g ever ran in, so a g that asks
     its own process for ``hash()``, set order or ``id()`` learns nothing about f's process.
A verified pair that the host runs again (a job with ``recheck``) goes through a second pair of
zygotes, exec'd separately; every reply carries a digest of g's answer for the host to compare.
Each child gets its own session, rlimits, an empty working directory, stdout/stderr drained into a
capped pipe, and a wall-clock deadline enforced by the worker with SIGKILL. Limits are checked again
when a result is accepted (a job that stops the worker gains no time and no output). After each job
every descendant is killed, the IPC objects the job made are removed and scratch space is wiped; a
worker that cannot restore a clean state says so in its reply and exits, and the host replaces it.
In a container (``--job-uid=N``) the worker and the zygote run as root holding only CAP_SETUID and
CAP_SETGID, and every job child takes uid N with RLIMIT_NPROC 1 before any untrusted code: a job can
signal neither of them, and it is a single process (no fork, no thread), so the per-process rlimits
(memory, CPU) are the job's limits. The job's processes are killed, and its files and IPC objects
removed, by short-lived helpers that take uid N too (the worker holds no CAP_KILL or DAC override).
As a plain local process (no job uid) jobs run as the worker's uid: the worker and the zygote are
non-dumpable, so jobs cannot read their memory or open their file descriptors through /proc, but
they can kill them: a killed zygote is started again, a killed worker is a lost job (``crashed``).
"""

from __future__ import annotations

# Cheap modules puzzles often use, imported once so that forked children start fast (random too: every
# child seeds it). Heavier ones (fractions, statistics) would make every fork slower; the few jobs that
# need them import them.
import array
import bisect  # noqa: F401
import collections  # noqa: F401
import ctypes
import functools  # noqa: F401
import gc
import heapq  # noqa: F401
import itertools  # noqa: F401
import json
import marshal
import math  # noqa: F401
import operator  # noqa: F401
import os
import random
import re  # noqa: F401
import resource
import select
import signal
import socket
import stat
import string  # noqa: F401
import sys
import time
import types
import typing
import warnings

# ---------------------------------------------------------------- the wire contract with the host
# The host's side: sandbox/verdicts.py (verdict names) and sandbox/links.py (limits, reply size);
# tests/sandbox/test_contract.py asserts that both sides agree. Spelled here as literals: the worker
# runs under ``python -I`` from one file and imports nothing of the project.
VERIFIED, WRONG, ERROR, TIMEOUT, MEMORY, OUTPUT, CRASHED = (
    "verified", "wrong", "error", "timeout", "memory", "output", "crashed"
)  # fmt: skip
RECHECK = "recheck"  # a job's key: true when the host runs a verified pair again (sandbox.verdicts.Job)
ANSWER_DIGEST = "answer_digest"  # a reply's key: a digest of g's answer bytes (sandbox.verdicts.Result)
DEFAULT_MEMORY_MB = 512  # per job process (RLIMIT_AS)
DEFAULT_OUTPUT_BYTES = 64 * 1024  # stdout and stderr of one job process together
DEFAULT_ANSWER_BYTES = 16 * 1024 * 1024  # g's answer as UTF-8 JSON
MAX_SOURCE_CHARS = 1_000_000  # one source; the host refuses far less before any job is sent
MAX_DETAIL_CHARS = 500  # a reply's detail; with the rest of the reply far below the host's line cap
MAX_INT_DIGITS = 100_000  # int <-> str conversions beyond this are refused (quadratic cost)

PRELUDE = {
    name: getattr(typing, name) for name in ("List", "Dict", "Set", "Tuple", "Optional", "Any", "Callable")
}
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36

# Status codes of the message a child writes on its result pipe (first byte).
ANSWER, EXCEPTION, NOT_PLAIN, OUT_OF_MEMORY, TRUE, NOT_TRUE = b"A", b"E", b"N", b"M", b"T", b"F"
# How a result's ``detail`` begins when f itself answered; the host reads probe outcomes by them
# (``sandbox.verify.probe_outcome``).
F_RETURNED = "f returned "
F_RAISED = "f raised "


class Limits:
    def __init__(self, memory_mb: int, output_bytes: int, answer_bytes: int, scratch_dirs: list[str]):
        self.memory_bytes = memory_mb * 1024 * 1024
        self.output_bytes = output_bytes
        self.answer_bytes = answer_bytes
        self.scratch_dirs = scratch_dirs


# ---------------------------------------------------------------- plain data and answer types


def to_plain_json(value: object) -> str:
    """JSON for values made only of None/bool/int/float/str/list/dict[str, ...] (exact types)."""

    def check(x: object, depth: int) -> None:
        if depth > 100:
            raise TypeError("nested more than 100 levels")
        t = type(x)
        if t is list:
            for item in x:  # type: ignore[attr-defined]
                check(item, depth + 1)
        elif t is dict:
            for k, v in x.items():  # type: ignore[attr-defined]
                if type(k) is not str:
                    raise TypeError(f"dict key of type {type(k).__name__}")
                check(v, depth + 1)
        elif t not in (type(None), bool, int, float, str):
            raise TypeError(f"value of type {t.__name__}")

    check(value, 0)
    return json.dumps(value, allow_nan=True, ensure_ascii=False)


def split_type(spec: str) -> tuple[str, str | None]:
    if spec.startswith("List[") and spec.endswith("]"):
        return "List", spec[5:-1]
    return spec, None


BASE_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def type_mismatch(value: object, spec: str) -> str | None:
    """None when ``value`` has exactly type ``spec`` (``List[...]`` checked element-wise), else why not."""
    outer, inner = split_type(spec)
    if inner is not None:
        if type(value) is not list:
            return f"expected {spec}, got {type(value).__name__}"
        for i, item in enumerate(value):  # type: ignore[arg-type]
            why = type_mismatch(item, inner)
            if why:
                return f"element {i}: {why}"
        return None
    expected = BASE_TYPES.get(outer)
    if expected is None:
        return f"unknown answer type {spec!r}"
    if type(value) is not expected:
        return f"expected {spec}, got {type(value).__name__}"
    return None


# ---------------------------------------------------------------- child side (untrusted code runs here)


def child_setup(limits: Limits, workdir: str, out_w: int, res_w: int, cpu_seconds: float) -> None:
    """Runs in a fresh child before any untrusted code: isolate it from the worker and limit it."""
    os.setsid()
    os.chdir(workdir)
    # fd 0 is /dev/null already: the zygote's, which it was exec'd with (Zygote.start)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    if res_w != 3:
        os.dup2(res_w, 3)
    os.closerange(4, 65536)  # out_w and res_w among them: received from the worker, so above 3
    # CPU time is counted per process, so this limit is the child's own; the others it inherits (the
    # zygote set the file size limit and the OOM score once: limit_zygote).
    set_limits(((resource.RLIMIT_CPU, int(cpu_seconds) + 2),))
    if JOB_UID is not None:
        # One process per job: no fork, no thread, so the per-process limits are the job's limits.
        # (RLIMIT_NPROC counts every process of the uid, this one included.)
        set_limits(((resource.RLIMIT_NPROC, 1),))
        become_job_user()
    # sys.stdout and sys.stderr already write to fds 1 and 2, now the capped pipe; the worker left
    # their buffers empty (it flushes after every reply).
    sys.stdin = None  # type: ignore[assignment]


JOB_FILE_BYTES = 16 * 1024 * 1024  # the largest file a job may write
JOB_UID: int | None = None  # --job-uid=N (containers): the uid jobs run as; None runs them as the worker's


def become_job_user() -> None:
    """Take the job uid for good (the worker is root with only CAP_SETUID and CAP_SETGID): a job then
    cannot signal the worker or the zygote, nor regain a capability (no-new-privileges)."""
    os.setgroups([])
    os.setresgid(JOB_UID, JOB_UID, JOB_UID)
    os.setresuid(JOB_UID, JOB_UID, JOB_UID)


def as_job_user(action) -> str | None:
    """Run ``action()`` in a child that has taken the job uid; None when it returned, else why not."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            become_job_user()
            set_prctl(PR_SET_DUMPABLE, 0)  # it forked from the worker: a job must not read its memory
            action()
        except BaseException as e:  # noqa: BLE001 - reported to the worker, which decides
            code = 1
            os.write(w, describe_exception(e).encode("utf-8", "replace")[:300])
        finally:
            os._exit(code)
    os.close(w)
    try:
        why = b""
        while chunk := os.read(r, 4096):
            why += chunk
    finally:
        os.close(r)
    status = os.waitpid(pid, 0)[1]
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return None
    return why.decode("utf-8", "replace") or f"the job-user helper ended with status {status}"


def kill_job_processes(pids: list[int], pidfd: int | None = None) -> None:
    """SIGKILL a job's processes. With a job uid: every process of that uid in this container, by
    kill(-1) sent as that uid (the worker holds no CAP_KILL, so it cannot signal a job directly, just
    as a job cannot signal it). Else: each pid's process group and the pid, and through ``pidfd`` a
    child that the zygote reaps (never a reused pid)."""
    if JOB_UID is not None:

        def kill_all() -> None:
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass

        as_job_user(kill_all)
        return
    if pidfd is not None:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    for pid in pids:
        kill_group(pid)


def set_limits(pairs) -> None:
    for rlimit, value in pairs:
        soft, hard = resource.getrlimit(rlimit)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(rlimit, (value, value))


def limit_zygote() -> None:
    """What every job child of a zygote inherits from it: the file size limit of a job, and the OOM
    killer's first choice (a zygote the OOM killer takes is started again; the worker never is)."""
    set_limits(((resource.RLIMIT_FSIZE, JOB_FILE_BYTES),))
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        os.write(fd, b"1000")
        os.close(fd)
    except OSError:
        pass


def limit_worker(limits: Limits) -> None:
    """Limits every job child inherits. They bind the worker too, which stays far below them."""
    set_limits(
        (
            (resource.RLIMIT_AS, limits.memory_bytes),
            (resource.RLIMIT_CORE, 0),
            # a job's payload (its memfd) may be larger than any file a job may write (child_setup)
            (resource.RLIMIT_FSIZE, limits.answer_bytes + 4 * MAX_SOURCE_CHARS + 2**20),
            (resource.RLIMIT_NOFILE, 64),
        )
    )


def describe_exception(e: BaseException) -> str:
    try:
        message = str(e)
    except BaseException:  # noqa: BLE001 - a hostile __str__ must not hide the exception type
        message = "<unprintable>"
    return f"{type(e).__name__}: {message[:300]}"


SAFE_EVAL_BUILTINS = {
    name: getattr(__builtins__, name, None) if not isinstance(__builtins__, dict) else __builtins__.get(name)
    for name in (
        "abs",
        "all",
        "any",
        "bin",
        "bool",
        "chr",
        "dict",
        "divmod",
        "enumerate",
        "filter",
        "float",
        "hex",
        "int",
        "len",
        "list",
        "map",
        "max",
        "min",
        "oct",
        "ord",
        "pow",
        "range",
        "repr",
        "reversed",
        "round",
        "set",
        "sorted",
        "str",
        "sum",
        "tuple",
        "zip",
        "True",
        "False",
        "None",
    )
}


def guarded_eval(expression: object, *rest: object) -> object:
    """The ``eval`` a trusted puzzle sees (P3 has a few that evaluate their answer): one expression,
    no names outside a small set of pure builtins, no underscore names or attributes, so an answer
    cannot reach the result channel of the process that decides the verdict."""
    import ast

    if rest or type(expression) is not str:
        raise TypeError("eval takes one string here")
    caller = sys._getframe(1).f_locals  # P3's RevQuine evaluates names of the puzzle's own locals
    scope = {k: v for k, v in caller.items() if not k.startswith("_")}
    tree = ast.parse(expression, mode="eval")
    for node in ast.walk(tree):
        name = (
            node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        )
        if name is not None and name.startswith("_"):
            raise NameError(f"{name} is not allowed in eval")
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and name not in SAFE_EVAL_BUILTINS:
            local_names = {a.arg for n in ast.walk(tree) if isinstance(n, ast.Lambda) for a in n.args.args}
            local_names |= {
                t.id
                for n in ast.walk(tree)
                if isinstance(n, ast.comprehension)
                for t in ast.walk(n.target)
                if isinstance(t, ast.Name)
            }
            if name not in local_names and name not in scope:
                raise NameError(f"{name} is not allowed in eval")
    return eval(compile(tree, "<answer>", "eval"), {"__builtins__": SAFE_EVAL_BUILTINS}, scope)


def compile_source(source: object, name: str) -> types.CodeType:
    """Compile a job's source. The worker does it (``job_code``), so that a child only unmarshals it: a
    forked child that compiled and ran a small source took 82 page faults, one that unmarshalled and ran
    it 41, and a child copies each page it touches. Compiling runs none of the job's code; the host
    bounds what it can cost before any job is sent (a source whose folded constants would be huge is
    refused there), and the worker's memory limit binds it too."""
    if type(source) is not str:
        raise TypeError("the source is not a string")
    if len(source) > MAX_SOURCE_CHARS:
        raise ValueError(f"the source is longer than {MAX_SOURCE_CHARS} characters")
    return compile(source, "<" + name + ">", "exec")


def load_function(code: types.CodeType, name: str, eval_function: object = None) -> object:
    namespace: dict = {"__name__": "__puzzle__", "__builtins__": __builtins__, **PRELUDE}
    if eval_function is not None:
        namespace["eval"] = eval_function
    exec(code, namespace)
    fn = namespace.get(name)
    if not callable(fn):
        raise NameError(f"function {name} is not defined")
    return fn


MAX_NAME_CHARS = 256  # a job's function name; a job fd's first line holds it (JOB_HEADER_BYTES)
JOB_HEADER_BYTES = MAX_NAME_CHARS + 64


def job_payload(name: str, code: bytes, seed: int, answer: bytes = b"") -> bytes:
    """What a g or f child reads from its job fd: a first line "seed code_bytes answer_bytes name"
    (an identifier: ``job_code`` checked it), the marshalled code of the job's source, the answer bytes."""
    return f"{seed} {len(code)} {len(answer)} {name}\n".encode() + code + answer


def job_code(source: object, name: object) -> bytes:
    """The job's source compiled in the worker (trusted: no job code runs), marshalled for its child."""
    if type(name) is not str or not name.isidentifier() or len(name) > MAX_NAME_CHARS:
        raise NameError(f"function name {str(name)[:40]!r} is not an identifier")
    with warnings.catch_warnings():  # a SyntaxWarning of model-written code is no line for the worker's stderr
        warnings.simplefilter("ignore")
        return marshal.dumps(compile_source(source, name))


def seed_of(*texts: str) -> int:
    """A seed drawn from the pair's (or puzzle's) text alone: the same in every run and worker
    (``random`` seeds from a string's SHA-512; hashlib would map OpenSSL into every zygote, and a
    larger process forks slower)."""
    return random.Random("\0".join(texts)).getrandbits(64)


def read_job(job_fd: int) -> tuple[dict, bytes, bytes]:
    """The job a zygote's child was sent (``job_payload``): header, marshalled code and answer bytes,
    each read at its known size."""
    line = os.pread(job_fd, JOB_HEADER_BYTES, 0).partition(b"\n")[0]
    seed, code_size, answer_size, name = line.split()
    code = os.pread(job_fd, int(code_size), len(line) + 1)
    answer = os.pread(job_fd, int(answer_size), len(line) + 1 + len(code))
    os.close(job_fd)
    if len(code) != int(code_size) or len(answer) != int(answer_size):
        raise OSError("the job fd is shorter than its header says")
    return {"name": name.decode(), "seed": int(seed)}, code, answer


def load_job_function(header: dict, code: bytes, role: str) -> object:
    """Define the job's function from its marshalled code, with ``random`` seeded from the job's text."""
    fn = load_function(marshal.loads(code), header["name"], guarded_eval if role == "f" else None)
    seed_randomness(header["seed"])
    return fn


SEED_STREAM = random.Random(0)  # what unseeded generators and SystemRandom draw from (seed_randomness)


def route_unseeded_randomness() -> None:
    """In a zygote, once: a generator made or reseeded without a seed (``Random()``, ``seed()``) and
    ``SystemRandom``, which would read os.urandom, draw from SEED_STREAM instead; each child then only
    seeds it (``seed_randomness``). Patching once, not per child, keeps a child's pages untouched."""
    seed_with = random.Random.seed

    def seed_or_draw(self: random.Random, a: object = None, version: int = 2) -> None:
        seed_with(self, SEED_STREAM.getrandbits(64) if a is None else a, version)

    random.Random.seed = seed_or_draw  # type: ignore[method-assign]
    random.seed = types.MethodType(seed_or_draw, random.seed.__self__)  # the module's, bound at import
    random._urandom = SEED_STREAM.randbytes  # type: ignore[attr-defined]  # reseeded in place (seed_randomness)


def seed_randomness(seed: int) -> None:
    """Every draw of ``random`` in this (one-job) process comes from ``seed``: the module's generator,
    and those that would read os.urandom (route_unseeded_randomness); a puzzle may use all three."""
    SEED_STREAM.seed(seed)
    random.seed(seed)


def child_run_g(header: dict, code: bytes, answer: bytes) -> bytes:
    try:
        g = load_job_function(header, code, "g")
        answer = g()  # type: ignore[operator]
    except MemoryError:
        return OUT_OF_MEMORY
    except BaseException as e:  # noqa: BLE001 - SystemExit and KeyboardInterrupt are g's errors too
        return EXCEPTION + describe_exception(e).encode("utf-8", "replace")
    try:
        return ANSWER + to_plain_json(answer).encode("utf-8", "surrogatepass")
    except MemoryError:
        return OUT_OF_MEMORY
    except BaseException as e:  # noqa: BLE001
        return NOT_PLAIN + describe_exception(e).encode("utf-8", "replace")


def child_run_f(header: dict, code: bytes, answer_bytes: bytes) -> bytes:
    try:
        answer = parse_answer(answer_bytes.decode("utf-8", "surrogatepass"))
        del answer_bytes
        f = load_job_function(header, code, "f")
        outcome = f(answer)  # type: ignore[operator]
    except MemoryError:
        return OUT_OF_MEMORY
    except BaseException as e:  # noqa: BLE001
        return EXCEPTION + describe_exception(e).encode("utf-8", "replace")
    if outcome is True:
        return TRUE
    return NOT_TRUE + type.__dict__["__name__"].__get__(type(outcome)).encode()


CHILD_TARGETS = {"g": child_run_g, "f": child_run_f}


# ---------------------------------------------------------------- worker side (trusted)


class ChildOutcome:
    def __init__(self, message: bytes | None, status: str | None, detail: str, seconds: float):
        self.message = message  # the result-pipe message, when the child delivered a whole one
        self.status = status  # a verdict decided while running (timeout, output, memory, error)
        self.detail = detail
        self.seconds = seconds


def oom_kills() -> int:
    """The container's OOM-kill count (cgroup v1 or v2); 0 where it cannot be read."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return 0


OOM_KILLS_SEEN = 0  # the container's OOM-kill count when last read


def killed_by_oom() -> bool:
    """Whether the OOM killer struck since the last call (read only after an unexplained SIGKILL)."""
    global OOM_KILLS_SEEN
    count = oom_kills()
    struck, OOM_KILLS_SEEN = count > OOM_KILLS_SEEN, count
    return struck


def child_main(close_fds: tuple[int, ...], job_fd: int, setup_args: tuple, role: str) -> None:
    """The rest of a job's child's life, forked from a zygote that never held any job's data: close
    the zygote's ``close_fds``, read this job alone from ``job_fd``, ``child_setup(*setup_args)``, then
    run g or f (``role``), whose result message goes to the result pipe (fd 3); then exit, never
    unwinding into the zygote's code, whatever happened."""
    code = 0
    try:
        for fd in close_fds:
            os.close(fd)
        job = read_job(job_fd)
        child_setup(*setup_args)
        view = memoryview(CHILD_TARGETS[role](*job))
        while view:
            view = view[os.write(3, view) :]
    except BaseException:  # noqa: BLE001 - whatever the job did, the child only exits
        code = 1
    finally:
        os._exit(code)


def run_in_zygote(
    role: str, name: str, source: object, seed: int, answer: bytes, limits: Limits, timeout: float, recheck: bool
) -> ChildOutcome:
    """Run g or f (``role``), the function ``name`` of ``source``, on ``answer`` in a fresh child of
    that role's zygote: an interpreter exec'd at start that never held any job's data (the child alone
    reads this job, from a memfd), f's with its own hash secret and address layout, so that nothing
    per-process g could learn in its own process holds in f's. A ``recheck`` runs in the role's second
    zygote (see ZYGOTES). Compiling the source and handing the job over count in its time; a source
    that does not compile is reported as the child would have (its exception)."""
    zygote = ZYGOTES[role, recheck]
    try:
        zygote.ensure()  # starting one (a first recheck, or after a job killed it) is not the job's time
    except (ZygoteLost, OSError):
        pass  # spawning below tries once more and reports
    start = time.monotonic()
    try:
        payload = job_payload(name, job_code(source, name), seed, answer)
    except MemoryError:
        return ChildOutcome(OUT_OF_MEMORY, None, "", time.monotonic() - start)
    except Exception as e:  # noqa: BLE001 - the job's error (SyntaxError, a source too long, ...)
        message = EXCEPTION + describe_exception(e).encode("utf-8", "replace")
        return ChildOutcome(message, None, "", time.monotonic() - start)
    out_r, out_w = os.pipe()
    res_r, res_w = os.pipe()
    job_fd = os.memfd_create("job", os.MFD_CLOEXEC)
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(job_fd, view) :]
        del view
        pid, pidfd = zygote.spawn(job_fd, out_w, res_w, timeout + 5)
    except (ZygoteLost, OSError) as e:
        for fd in (out_r, out_w, res_r, res_w):
            os.close(fd)
        sweep_descendants()
        return ChildOutcome(
            None, ERROR, f"{role}'s process could not be started ({e})", time.monotonic() - start
        )
    finally:
        os.close(job_fd)
    os.close(out_w)
    os.close(res_w)
    return watch_child(pid, pidfd, zygote.exit_status, out_r, res_r, limits, timeout, start)


def watch_child(
    pid: int, pidfd: int, wait, out_r: int, res_r: int, limits: Limits, timeout: float, start: float
):
    """Drain a child's output and result pipes under its deadline and caps, then kill what is left.
    ``wait()`` blocks until the zygote reaped the child and gives its wait status (None when unknown);
    it can wait: only a lost result needs it."""
    deadline = start + timeout
    out_total = 0
    out_tail = b""
    result = bytearray()
    status: str | None = None
    detail = ""
    exit_status: int | None = None
    exited = waited = False
    poller = select.poll()
    open_fds = {out_r, res_r}
    for fd in (out_r, res_r, pidfd):
        poller.register(fd, select.POLLIN)
    try:
        while not exited:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                status, detail = TIMEOUT, f"no result within {timeout:g} s"
                break
            for fd, _ in poller.poll(remaining * 1000):
                if fd == pidfd:
                    exited = True
                    poller.unregister(pidfd)
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                elif fd == out_r:
                    out_total += len(chunk)
                    out_tail = (out_tail + chunk)[-200:]
                else:
                    result += chunk
            if out_total > limits.output_bytes:
                status, detail = OUTPUT, f"printed more than {limits.output_bytes} bytes"
                break
            if len(result) > limits.answer_bytes:
                status, detail = WRONG, f"answer larger than {limits.answer_bytes} bytes"
                break
        if not exited:
            kill_job_processes([pid], pidfd)
            exit_status, waited = wait(), True  # dead, so its orphans are this worker's to sweep
        seconds = time.monotonic() - start
        sweep_descendants()
        # Writers are all dead now: whatever is left in the pipes is complete.
        for fd in list(open_fds):
            while len(result) <= limits.answer_bytes:
                try:
                    chunk = read_nonblocking(fd)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                if fd == res_r:
                    result += chunk
                else:
                    out_total += len(chunk)
                    out_tail = (out_tail + chunk)[-200:]
                    if out_total > limits.output_bytes:
                        break
    finally:
        for fd in (out_r, res_r, pidfd):
            os.close(fd)
    # Checked when the result is accepted, not only while polling: a job that stops the worker
    # (SIGSTOP) and has a helper resume it later gains neither time nor output.
    if status is None and seconds > timeout:
        status, detail = TIMEOUT, f"no result within {timeout:g} s (took {seconds:.2f} s)"
    if status is None and out_total > limits.output_bytes:
        status, detail = OUTPUT, f"printed more than {limits.output_bytes} bytes"
    if status is None and len(result) > limits.answer_bytes:
        status, detail = WRONG, f"answer larger than {limits.answer_bytes} bytes"
    if status is None:
        if result[:1] in (ANSWER, EXCEPTION, NOT_PLAIN, TRUE, NOT_TRUE, OUT_OF_MEMORY):
            return ChildOutcome(bytes(result), None, "", seconds)
        if not waited:
            exit_status = wait()
        if result:
            status, detail = ERROR, "the result channel carried garbage (written by the job itself)"
        elif exit_status is None:
            status, detail = ERROR, "the process was lost (its parent, the zygote, died)"
        elif os.WIFSIGNALED(exit_status):
            sig = os.WTERMSIG(exit_status)
            if sig == signal.SIGKILL and killed_by_oom():
                status, detail = MEMORY, "killed by the out-of-memory killer"
            elif sig == signal.SIGXCPU:
                status, detail = TIMEOUT, "CPU time limit exceeded"
            else:
                status, detail = ERROR, f"process killed by {signal.Signals(sig).name}"
        else:
            status = ERROR
            detail = f"process exited with code {os.WEXITSTATUS(exit_status)} without a result"
        if out_tail:
            detail += "; output ends: " + out_tail.decode("utf-8", "replace")[-120:]
    return ChildOutcome(None, status, detail, seconds)


class ZygoteLost(Exception):
    pass


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ZygoteLost("the zygote closed its socket")
        data += chunk
    return data


# How a zygote starts: it imports this file as a module and calls main. Run as a script, the file's
# syntax tree would stay alive for the script's whole run (CPython frees it when the script ends),
# and every child would copy its page tables: 2.8 MB of 8.7.
ZYGOTE_BOOT = (
    "import sys; here = sys.argv.pop(1); sys.path[:] = [here] + sys.path[1:]; import worker; "
    "del sys.path[0]; sys.exit(worker.main(sys.argv[1:]))"
)


class Zygote:
    """The process every g (or every f) is forked from: a fresh interpreter that imports this file,
    started before the worker reads any job and never sent any job's text: it forks one child per request
    and passes it the job's fd unread, then reports the child's pid and, once it has reaped it, its
    wait status. f's zygote has its own hash secret (the host's seed, which no job can read) and address
    layout; g's has a fixed hash secret (PYTHONHASHSEED=0): what each computes is the same in every run
    and worker of one installation. A job
    can still signal it (same uid): the worker resumes it before every child and starts a new one
    when it is gone."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.pid: int | None = None
        self.sock: socket.socket | None = None
        self.argv: list[str] = []
        self.hash_seed = 0  # its PYTHONHASHSEED, in its environment alone: never on a command line
        self.pending = False  # the zygote owes the status of the child it forked last
        self.status: int | None = None

    def start(self) -> None:
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            try:
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                fd = theirs.fileno()
                os.set_inheritable(fd, True)
                here = os.path.dirname(os.path.abspath(__file__))
                zygote_args = ["-c", ZYGOTE_BOOT, here, f"--zygote-fd={fd}", f"--zygote-role={self.role}", *self.argv]
                # -I would ignore PYTHONHASHSEED: the same isolation by hand (-s, this environment alone,
                # and ZYGOTE_BOOT leaves nothing on sys.path that -I would not)
                environment = {"PYTHONHASHSEED": str(self.hash_seed)}
                os.execve(sys.executable, [sys.executable, "-s", "-S", *zygote_args], environment)
            finally:
                os._exit(127)
        theirs.close()
        self.pid, self.sock = pid, ours
        ours.settimeout(30)
        try:
            if recv_exact(ours, 1) != b"R":
                raise ZygoteLost("the zygote did not start")
        except (OSError, ZygoteLost):
            self.stop()
            raise

    def reaped(self, pid: int) -> None:
        if pid == self.pid:
            self.pid = None

    def stop(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.pending = False

    def ensure(self) -> None:
        """A live, running zygote: resumed if a job stopped it, a new one if a job killed it."""
        if self.pid is not None:
            try:
                if os.waitpid(self.pid, os.WNOHANG)[0] == 0:
                    os.kill(self.pid, signal.SIGCONT)
                    return
            except ChildProcessError:
                pass
            self.pid = None
        self.stop()
        self.start()

    def spawn(self, job_fd: int, out_w: int, res_w: int, timeout: float) -> tuple[int, int]:
        """Fork a child for the job in ``job_fd`` (its pid and a pidfd); a zygote that died meanwhile
        is replaced once."""
        try:
            return self.try_spawn(job_fd, out_w, res_w, timeout)
        except ZygoteLost:
            return self.try_spawn(job_fd, out_w, res_w, timeout)

    def try_spawn(self, job_fd: int, out_w: int, res_w: int, timeout: float) -> tuple[int, int]:
        try:
            self.exit_status()  # the last child's status, which the zygote sent when it reaped it
            self.ensure()
            self.sock.settimeout(timeout)
            # sendmsg, not socket.send_fds: that one drops its flags, and the worker dies of SIGPIPE
            # when a job killed the zygote just before. The zygote never reads the job's fd.
            self.sock.sendmsg(
                [int(timeout * 1000).to_bytes(8, "little")],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [out_w, res_w, job_fd]))],
                socket.MSG_NOSIGNAL,
            )
            reply, fds = self.receive_pid(time.monotonic() + timeout)
            if len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                raise ZygoteLost("the zygote sent no pidfd")
            reply += recv_exact(self.sock, 5 - len(reply)) if len(reply) < 5 else b""
            if reply[:1] != b"P":
                os.close(fds[0])
                raise ZygoteLost("the zygote sent garbage")
            self.pending = True
            return int.from_bytes(reply[1:], "little"), fds[0]
        except (OSError, ZygoteLost) as e:
            self.stop()
            raise ZygoteLost(str(e)) from e

    def receive_pid(self, deadline: float) -> tuple[bytes, list[int]]:
        """The zygote's reply to a spawn, resuming it while it is stopped: any process of the jobs'
        uid can stop it (on the process backend, a job of another worker too)."""
        timeout = self.sock.gettimeout()
        self.sock.settimeout(0.05)
        try:
            while True:
                try:
                    reply, fds, _, _ = socket.recv_fds(self.sock, 5, 1)
                    return reply, fds
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise ZygoteLost("the zygote did not answer") from None
                    os.kill(self.pid, signal.SIGCONT)
        finally:
            self.sock.settimeout(timeout)

    def exit_status(self) -> int | None:
        """The wait status of the child last spawned (it has exited or been killed)."""
        if not self.pending:
            return self.status
        self.pending, self.status = False, None
        try:
            os.kill(self.pid, signal.SIGCONT)  # the child may have stopped its parent
            reply = recv_exact(self.sock, 5)
            if reply[:1] != b"S":
                raise ZygoteLost("the zygote sent garbage")
            self.status = int.from_bytes(reply[1:], "little")
            return self.status
        except (OSError, ZygoteLost, AttributeError, TypeError):
            self.stop()
            return None


# Each role has two zygotes, exec'd separately: first runs fork from one, the host's recheck of a verified
# pair from the other (started at the first recheck), so that the recheck's f has another hash secret and
# both have another address layout: a verdict that hangs on either comes back different (``flaky``).
ZYGOTES = {(role, recheck): Zygote(role) for role in ("g", "f") for recheck in (False, True)}
F_HASH_SEEDS = "f_hash_seeds"  # the key of the line the host sends first: f's hash seeds (first run, recheck)
MAX_HASH_SEED = 4_294_967_295  # PYTHONHASHSEED's largest value; g's is 0 in every run


def read_f_hash_seeds(stdin) -> tuple[int, int]:
    """f's hash seeds for first runs and rechecks, from the host's first line: derived from its
    installation's secret, so that f's hash order is the same in every run and worker there. They
    travel only on stdin and in the environment of f's zygotes, never where a job can read them."""
    try:
        first, recheck = json.loads(stdin.readline())[F_HASH_SEEDS]
    except (ValueError, TypeError, KeyError) as e:
        raise SystemExit(f"worker: the first line must be {{{F_HASH_SEEDS!r}: [first, recheck]}}") from e
    if not all(type(seed) is int and 0 < seed <= MAX_HASH_SEED for seed in (first, recheck)):
        raise SystemExit(f"worker: f's hash seeds must be ints in 1..{MAX_HASH_SEED}")
    return first, recheck


def zygote_main(fd: int, role: str, limits: Limits) -> int:
    """The zygote's loop (see Zygote): runs no untrusted code and reads no job's text itself."""
    sock = socket.socket(fileno=fd)
    set_prctl(PR_SET_DUMPABLE, 0)  # exec made it dumpable again
    if role == "f":
        forget_hash_seed()
    limit_zygote()
    route_unseeded_randomness()
    warm_up()
    gc.freeze()
    sock.sendall(b"R")
    workdir = os.path.join(limits.scratch_dirs[0], WORKDIR_NAME)
    while True:
        try:
            header, fds, _, _ = socket.recv_fds(sock, 8, 3)
            if not header:
                return 0
            header += recv_exact(sock, 8 - len(header)) if len(header) < 8 else b""
            timeout = int.from_bytes(header, "little") / 1000
            out_w, res_w, job_fd = fds
        except (OSError, ValueError, ZygoteLost):
            return 1
        pid = os.fork()
        if pid == 0:
            child_main((sock.fileno(),), job_fd, (limits, workdir, out_w, res_w, timeout), role)
        for fd in (out_w, res_w, job_fd):
            os.close(fd)
        try:
            pidfd = os.pidfd_open(pid)  # the worker watches the child through it, reaped or not
            socket.send_fds(sock, [b"P" + pid.to_bytes(4, "little")], [pidfd])
            os.close(pidfd)
            status = os.waitpid(pid, 0)[1]
            sock.sendall(b"S" + status.to_bytes(4, "little"))
        except (OSError, ZygoteLost):
            return 1


def forget_hash_seed() -> None:
    """Blank PYTHONHASHSEED's value in this process's initial environment, which /proc/<pid>/environ
    shows and every child inherits, and drop it from ``os.environ``: the interpreter has read it, and
    a process that may read this one's environment (root, on the process backend) finds no seed."""
    LIBC.getenv.restype = ctypes.c_void_p
    value = LIBC.getenv(b"PYTHONHASHSEED")
    if value:
        ctypes.memset(value, ord("0"), len(ctypes.string_at(value)))
    os.environ.pop("PYTHONHASHSEED", None)


def warm_up() -> None:
    """Run the compiler and the JSON codec once before forking any child: the first use in a process
    builds their lazily made state (measured: 2.4 ms of the 3.2 ms an f child ran, when every child of
    the zygote paid it again). Every child compiles its own job's source."""
    json.loads(json.dumps([0, 0.5, "", None, {}]))
    compile("def f(x: int, n: int = 1) -> bool:\n    return x == n * 2 + 1\n", "<warm-up>", "exec")


def read_nonblocking(fd: int) -> bytes:
    os.set_blocking(fd, False)
    return os.read(fd, 65536)


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def sweep_descendants() -> None:
    """Kill and reap every process left behind by a job (daemons, grandchildren, fork bombs).

    The worker is a child subreaper, so orphans of a job are re-parented to it: once it has no
    children left, no descendant is left.
    """
    me = os.getpid()
    for _ in range(10_000):
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                break
            for zygote in ZYGOTES.values():
                zygote.reaped(pid)
        zygote_pids = {zygote.pid for zygote in ZYGOTES.values()}
        others = [child for child in children_of(me) if child not in zygote_pids]
        if not others:
            return
        kill_job_processes(others)
        time.sleep(0.001)


def read_small_file(path: str) -> bytes:
    """A /proc or /sys file's bytes (os-level: a Python file object costs more than the read, and
    the worker reads some after every job)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
        return data
    finally:
        os.close(fd)


def children_of(parent: int) -> list[int]:
    try:  # the worker has one thread
        return [int(pid) for pid in read_small_file(f"/proc/self/task/{parent}/children").split()]
    except OSError:
        pass
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = read_small_file(f"/proc/{entry}/stat")
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[1]) == parent:
            found.append(int(entry))
    return found


def wipe(path: str, keep: str | None = None) -> None:
    """Remove everything under the directory ``path`` but its entry ``keep``.

    Iterative and relative (it walks with chdir), so neither a tree thousands of levels deep nor
    paths longer than PATH_MAX can break it; symlinks are removed, never followed; directories a
    job made unreadable are opened up first. Raises OSError when something cannot be removed (the
    caller then retires the worker). Only runs once every job process is dead, so nothing races it.
    """
    os.chdir(path)
    try:
        names: list[str] = []  # the directories walked into below ``path``
        while True:
            descended = False
            for entry in os.listdir("."):
                if not names and entry == keep:
                    continue
                mode = os.lstat(entry).st_mode
                if stat.S_ISDIR(mode):
                    os.chmod(entry, 0o700)
                    os.chdir(entry)
                    names.append(entry)
                    descended = True
                    break
                os.unlink(entry)
            if descended:
                continue
            if not names:
                return
            os.chdir("..")
            os.rmdir(names.pop())
    finally:
        os.chdir("/")


def restore_scratch(limits: Limits, workdir: str) -> None:
    """Put the scratch space back as a fresh worker has it; raise OSError if that is impossible."""
    for directory in limits.scratch_dirs:
        st = os.lstat(directory)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (os.getuid(), 0):
            raise OSError(f"scratch dir {directory} was replaced")
        wipe(directory, keep=WORKDIR_NAME if directory == limits.scratch_dirs[0] else None)
    try:
        st = os.lstat(workdir)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        os.unlink(workdir)  # a file or (dangling) symlink where the work dir was
        st = None
    if st is None:
        os.mkdir(workdir)
    os.chmod(workdir, WORKDIR_MODE)  # whatever the umask, or a job's chmod
    wipe(workdir)
    st = os.lstat(workdir)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or os.listdir(workdir):
        raise OSError("the work dir cannot be restored")
    left = [n for n in os.listdir(limits.scratch_dirs[0]) if n != WORKDIR_NAME]
    if left:
        raise OSError(f"scratch space cannot be emptied: {left[:3]}")


def decode_message(message: bytes) -> str:
    return message[1:].decode("utf-8", "replace")


WORKDIR_NAME = "work"  # the jobs' working directory inside the first scratch dir, emptied after each job
WORKDIR_MODE = 0o755  # readable by the worker, which checks it is empty without the job uid


# Trusted work an answer can cause before f runs is bounded: converting a decimal string of n digits
# to an int costs about n**2 (0.1 s for 100,000 digits), so an answer may carry at most this much
# sum of squared int lengths (about 1 s of conversion; P3's largest answers need a twentieth of it).
MAX_INT_DIGIT_WORK = 10**11
# Every list or dict is a Python object to build and check, and f's process copies them when it
# touches them; an answer may hold at most this many (an upper bound: brackets in strings count too).
MAX_ANSWER_CONTAINERS = 1_000_000
DIGITS_AS_ZEROS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))  # for a fast search of long ints
LONG_DIGIT_RUN = b"0" * 1000


class AnswerTooBig(Exception):
    pass


def parse_answer(text: str) -> object:
    """The answer's JSON as plain data, refusing more int-conversion work than MAX_INT_DIGIT_WORK.

    The garbage collector is off meanwhile: millions of new containers would make it run again and
    again over all of them (seconds for an answer of a few million small lists)."""
    containers = text.count("[") + text.count("{")
    if containers > MAX_ANSWER_CONTAINERS:
        raise AnswerTooBig(f"answer too big: more than {MAX_ANSWER_CONTAINERS} lists and dicts")
    if LONG_DIGIT_RUN not in text.encode("utf-8", "surrogatepass").translate(DIGITS_AS_ZEROS):
        # only ints of < 1000 digits: converting them costs little more than reading them
        parse_int = int
    else:
        parse_int = count_int_work()
    gc.disable()
    try:
        return json.loads(text, parse_int=parse_int)
    finally:
        gc.enable()


def count_int_work():
    work = 0

    def parse_int(digits: str) -> int:
        nonlocal work
        work += len(digits) ** 2
        if work > MAX_INT_DIGIT_WORK:
            raise AnswerTooBig("answer ints too long: more than 10**11 (sum of squared digit counts)")
        return int(digits)

    return parse_int


def run_job(job: dict, limits: Limits) -> dict:
    timeout = float(job.get("timeout_s", 5.0))
    total = 0.0

    recheck = job.get(RECHECK) is True
    digest = ""

    def verdict(status: str, detail: str = "") -> dict:
        reply = {
            "id": job.get("id"),
            "status": status,
            "seconds": round(total, 6),
            "detail": detail[:MAX_DETAIL_CHARS],
        }
        if digest:
            reply[ANSWER_DIGEST] = digest
        return reply

    g_seconds = 0.0
    if "answer_json" in job:
        answer_text = job["answer_json"]
        answer_bytes = answer_text.encode("utf-8", "surrogatepass")
    else:
        g_seed = seed_of(job["f_source"], job["g_source"])
        g = run_in_zygote("g", job["g_name"], job["g_source"], g_seed, b"", limits, timeout, recheck)
        total += g.seconds
        g_seconds = g.seconds
        if g.status:
            return verdict(g.status, g.detail)
        kind, answer_bytes = g.message[:1], g.message[1:]
        if kind == OUT_OF_MEMORY:
            return verdict(MEMORY, "g ran out of memory (MemoryError)")
        if kind == EXCEPTION:
            return verdict(ERROR, "g raised " + decode_message(g.message))
        if kind == NOT_PLAIN:
            return verdict(WRONG, "answer is not plain data: " + decode_message(g.message))
        if kind != ANSWER:
            return verdict(ERROR, "g sent a malformed answer")
        try:
            answer_text = answer_bytes.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return verdict(ERROR, "g sent a malformed answer (not UTF-8)")
    # Parsing and type-checking the answer is trusted work that g caused: it counts as g's time.
    checking = time.monotonic()
    try:
        answer = parse_answer(answer_text)
        why = type_mismatch(answer, job["answer_type"])
        digest = answer_digest(answer_bytes)
    except AnswerTooBig as e:
        total += time.monotonic() - checking
        return verdict(WRONG, str(e))
    except MemoryError:
        total += time.monotonic() - checking
        return verdict(MEMORY, "the answer is too large to check")
    except (ValueError, RecursionError):
        total += time.monotonic() - checking
        return verdict(ERROR, "g sent a malformed answer")
    checked = time.monotonic() - checking
    total += checked
    if g_seconds + checked > timeout:
        return verdict(TIMEOUT, f"g and checking its answer took more than {timeout:g} s")
    if why:
        return verdict(WRONG, "answer has the wrong type: " + why)
    del answer, answer_text  # f's process parses the answer's bytes again: it shares nothing with this one
    f = run_in_zygote(
        "f", job["f_name"], job["f_source"], seed_of(job["f_source"]), answer_bytes, limits, timeout, recheck
    )
    del answer_bytes
    total += f.seconds
    if f.status:
        return verdict(f.status, "while running f: " + f.detail)
    kind = f.message[:1]
    if f.message == TRUE:  # exactly one byte: anything appended means f wrote to the channel itself
        return verdict(VERIFIED)
    if kind == NOT_TRUE:
        return verdict(
            WRONG, F_RETURNED + ("False" if f.message[1:] == b"bool" else decode_message(f.message))
        )
    if kind == OUT_OF_MEMORY:
        return verdict(MEMORY, "f ran out of memory (MemoryError)")
    if kind == EXCEPTION:
        return verdict(ERROR, F_RAISED + decode_message(f.message))
    return verdict(ERROR, "f sent a malformed result")


def answer_digest(answer_bytes: bytes) -> str:
    """What the host compares between a verified pair's two runs: the answer's bytes as g sent them
    (``random``'s SHA-512: hashlib would map OpenSSL into the worker)."""
    return random._sha512(answer_bytes).hexdigest()[:32]  # type: ignore[attr-defined]


class CannotRestore(Exception):
    """The worker cannot bring back a clean state after a job: it must retire (exit non-zero)."""


def clean_up(limits: Limits, workdir: str) -> None:
    """After a job: every job process is dead already (watch_child sweeps); remove its IPC objects
    and files. Anything that cannot be undone raises CannotRestore.

    With a job uid the files and IPC objects are the job user's, which the worker (no DAC or owner
    override) cannot remove: a helper that has taken the job uid does it, when anything is left."""

    def restore() -> None:
        remove_ipc_objects()
        restore_scratch(limits, workdir)

    try:
        if JOB_UID is None:
            restore()
        elif not scratch_is_clean(limits, workdir):
            why = as_job_user(restore)
            if why is not None:
                raise CannotRestore(why)
            if not scratch_is_clean(limits, workdir):
                raise CannotRestore("the scratch space is not clean after its clean-up")
    except (OSError, ValueError) as e:
        raise CannotRestore(describe_exception(e)) from e


def scratch_is_clean(limits: Limits, workdir: str) -> bool:
    """Whether the scratch space is as a fresh worker has it, judged by reading only: an empty work
    dir of the job user's, nothing else in the scratch dirs, no IPC object of the job user's."""
    try:
        for directory in limits.scratch_dirs:
            expected = [WORKDIR_NAME] if directory == limits.scratch_dirs[0] else []
            if os.listdir(directory) != expected:
                return False
        st = os.lstat(workdir)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != JOB_UID or stat.S_IMODE(st.st_mode) != WORKDIR_MODE:
            return False
        return not os.listdir(workdir) and not ipc_objects(JOB_UID)
    except OSError:
        return False


IPC_RMID = 0
SYSV_IPC = (("shm", "shmctl"), ("msg", "msgctl"), ("sem", "semctl"))
LIBC = ctypes.CDLL(None, use_errno=True)
IPC_BEFORE: set = set()  # outside containers: IPC objects of this uid that existed before the job


def ipc_objects(uid: int | None = None) -> set:
    """The IPC objects of ``uid`` (default: this process's): SysV shared memory, message queues and
    semaphore sets (from /proc/sysvipc, owner or creator), POSIX message queues and shared memory
    (files in /dev/mqueue and /dev/shm)."""
    me = os.getuid() if uid is None else uid
    found = set()
    for kind, _ in SYSV_IPC:
        try:
            lines = read_small_file(f"/proc/sysvipc/{kind}").splitlines()
        except OSError:
            continue
        if len(lines) < 2:  # a header alone: none of this kind
            continue
        header, rows = lines[0].split(), [line.split() for line in lines[1:]]
        ident, uid, cuid = 1, header.index(b"uid"), header.index(b"cuid")  # the id is the 2nd column
        for row in rows:
            if len(row) == len(header) and me in (int(row[uid]), int(row[cuid])):
                found.add((kind, int(row[ident])))
    for directory in ("/dev/mqueue", "/dev/shm"):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            try:
                if os.lstat(path).st_uid == me:
                    found.add(("file", path))
            except OSError:
                pass
    return found


def remove_ipc_objects() -> None:
    """Remove the IPC objects a job left (a channel between jobs, and memory nobody frees).

    As the job uid every object of this uid is the jobs'; as a local process, only the ones that
    appeared since the job started (the user's own programs keep theirs)."""
    for kind, ident in ipc_objects() - (set() if JOB_UID is not None else IPC_BEFORE):
        if kind == "file":
            try:
                os.unlink(ident)
            except FileNotFoundError:
                pass
            continue
        ctl = getattr(LIBC, dict(SYSV_IPC)[kind])
        if kind == "sem":
            done = ctl(ctypes.c_int(ident), ctypes.c_int(0), ctypes.c_int(IPC_RMID))
        else:
            done = ctl(ctypes.c_int(ident), ctypes.c_int(IPC_RMID), ctypes.c_void_p(None))
        if done != 0 and ctypes.get_errno() not in (22, 43):  # EINVAL, EIDRM: already gone
            raise OSError(ctypes.get_errno(), f"cannot remove {kind} {ident}")
    if JOB_UID is not None and ipc_objects():
        raise OSError("IPC objects survived their removal")


def set_prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def parse_args(argv: list[str]) -> tuple[Limits, int | None]:
    """``--memory-mb=N --output-bytes=N --answer-bytes=N --scratch=DIR... --job-uid=N`` (no argparse:
    every module imported here makes each fork slower)."""
    options = {
        "memory-mb": str(DEFAULT_MEMORY_MB),
        "output-bytes": str(DEFAULT_OUTPUT_BYTES),
        "answer-bytes": str(DEFAULT_ANSWER_BYTES),
    }
    scratch: list[str] = []
    job_uid = None
    for arg in argv:
        key, _, value = arg.removeprefix("--").partition("=")
        if key == "job-uid" and value.isdigit() and int(value) > 0:
            job_uid = int(value)
        elif key == "zygote-fd" and value.isdigit() or key == "zygote-role" and value in CHILD_TARGETS:
            options[key] = value
        elif key == "scratch" and value:
            scratch.append(value)
        elif key in options and value.isdigit():
            options[key] = value
        else:
            raise SystemExit(f"worker: bad argument {arg!r}")
    if not scratch:
        base = os.environ.get("TMPDIR", "/tmp")
        scratch.append(os.path.join(base, f"factory-worker-{os.getpid()}"))
        os.makedirs(scratch[0], mode=0o700, exist_ok=True)
    limits = Limits(
        int(options["memory-mb"]), int(options["output-bytes"]), int(options["answer-bytes"]), scratch
    )
    if job_uid is None:  # else the job user makes it (clean_up), as the jobs' own
        os.makedirs(os.path.join(scratch[0], WORKDIR_NAME), mode=0o700, exist_ok=True)
    return limits, job_uid


def main(argv: list[str]) -> int:
    global JOB_UID, OOM_KILLS_SEEN
    limits, JOB_UID = parse_args(argv)
    sys.set_int_max_str_digits(MAX_INT_DIGITS)
    zygote = {
        k: v for k, _, v in (a.removeprefix("--").partition("=") for a in argv) if k.startswith("zygote")
    }
    if zygote:
        return zygote_main(int(zygote["zygote-fd"]), zygote["zygote-role"], limits)
    OOM_KILLS_SEEN = oom_kills()
    limit_worker(limits)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a job file's too-large write fails, never kills
    set_prctl(PR_SET_DUMPABLE, 0)  # before it holds f's hash seeds
    stdin = sys.stdin.buffer
    f_hash_seeds = read_f_hash_seeds(stdin)
    # The first runs' zygotes start before the worker reads any job; the rechecks' start at the first
    # recheck, exec'd afresh: no job's data is ever in their memory.
    zygote_argv = [a for a in argv if not a.startswith("--scratch=")] + [
        f"--scratch={d}" for d in limits.scratch_dirs
    ]
    for (role, recheck), role_zygote in ZYGOTES.items():
        role_zygote.argv = zygote_argv
        if role == "f":
            role_zygote.hash_seed = f_hash_seeds[recheck]
        if not recheck:
            role_zygote.start()
    workdir = os.path.join(limits.scratch_dirs[0], WORKDIR_NAME)
    if JOB_UID is not None:
        clean_up(limits, workdir)  # makes the work dir, as the job user's
    warm_up()
    gc.freeze()  # forked children then never touch (and copy) the worker's objects when they collect
    set_prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)

    stdout = sys.stdout.buffer
    stdout.write(json.dumps({"ready": True, "pid": os.getpid()}).encode() + b"\n")
    stdout.flush()
    for line in stdin:
        if not line.strip():
            continue
        job = None
        try:
            job = json.loads(line)
            if JOB_UID is None:
                IPC_BEFORE.clear()
                IPC_BEFORE.update(ipc_objects())
            reply = run_job(job, limits)
        except Exception as e:  # noqa: BLE001 - a bad job must not take the worker down
            reply = {
                "id": None,
                "status": CRASHED,
                "seconds": 0.0,
                "detail": f"worker: {describe_exception(e)}",
            }
            if isinstance(job, dict):
                reply["id"] = job.get("id")
        retire = None
        try:
            clean_up(limits, workdir)
        except CannotRestore as e:
            retire = str(e)
        except Exception as e:  # noqa: BLE001 - whatever went wrong, this worker is not clean
            retire = describe_exception(e)
        if retire is not None:
            # The verdict stands (the job is over); the host replaces this worker and sends the
            # jobs it queued behind this one elsewhere.
            reply["retire"] = retire[:300]
        stdout.write(json.dumps(reply).encode() + b"\n")
        stdout.flush()
        if retire is not None:
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
