"""The sandbox worker: runs untrusted (puzzle, solution) jobs and decides their verdicts.

Standard library only, one file: it is copied into the sandbox image and also runs as a plain local
process. It reads one JSON job per line on stdin and writes one JSON result per line on stdout.

For each job the worker (trusted: it never runs untrusted code itself) compiles both sources, which
runs none of their code, then forks
  1. a child that runs ``g()`` and sends its answer back as plain JSON data, then
  2. a second, fresh child that runs ``f(answer)`` on that data and reports whether it returned
     exactly ``True``.
Each child gets its own session, rlimits, an empty working directory, stdout/stderr drained into a
capped pipe, and a wall-clock deadline enforced by the worker with SIGKILL. After each job every
descendant is killed and scratch space is wiped, so nothing survives into the next job. The worker
is non-dumpable, so the children (same uid) cannot read its memory or open its file descriptors
through /proc; they can still kill it, which the host sees as a lost job.
"""

from __future__ import annotations

# Cheap modules puzzles often use, imported once so that forked children start fast. Heavier ones
# (random, fractions, statistics) would make every fork slower; the few jobs that need them import them.
import bisect  # noqa: F401
import collections  # noqa: F401
import ctypes
import functools  # noqa: F401
import gc
import heapq  # noqa: F401
import itertools  # noqa: F401
import json
import math  # noqa: F401
import operator  # noqa: F401
import os
import re  # noqa: F401
import resource
import select
import signal
import string  # noqa: F401
import sys
import time
import types
import typing

PRELUDE = {
    name: getattr(typing, name) for name in ("List", "Dict", "Set", "Tuple", "Optional", "Any", "Callable")
}
MAX_INT_DIGITS = 100_000  # int <-> str conversions beyond this are refused (quadratic cost)
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
    return json.dumps(value, allow_nan=True)


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
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    if res_w != 3:
        os.dup2(res_w, 3)
    os.closerange(4, 65536)
    for fd in (devnull, out_w, res_w):
        if fd > 3:
            try:
                os.close(fd)
            except OSError:
                pass
    try:  # make this child the first choice of the OOM killer, never the worker
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        os.write(fd, b"1000")
        os.close(fd)
    except OSError:
        pass
    # CPU time is counted per process, so this limit is the child's own; the others it inherits.
    set_limits(((resource.RLIMIT_CPU, int(cpu_seconds) + 2),))
    # sys.stdout and sys.stderr already write to fds 1 and 2, now the capped pipe; the worker left
    # their buffers empty (it flushes after every reply).
    sys.stdin = None  # type: ignore[assignment]


def set_limits(pairs) -> None:
    for rlimit, value in pairs:
        soft, hard = resource.getrlimit(rlimit)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(rlimit, (value, value))


def limit_worker(limits: Limits) -> None:
    """Limits every job child inherits. They bind the worker too, which stays far below them."""
    set_limits(
        (
            (resource.RLIMIT_AS, limits.memory_bytes),
            (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_FSIZE, 16 * 1024 * 1024),
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


MAX_SOURCE_CHARS = 1_000_000


def compile_source(source: object, name: str) -> types.CodeType:
    """Compile a job's source in the worker, before forking, so that a child only executes it:
    compiling is a large share of a short job's cost, and every child would pay it again. Compiling
    runs none of the job's code; a hostile source can only make it raise (the job's error) or, at
    worst, crash the compiler and so this worker, which costs that job alone."""
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


def child_run_g(job: dict, code: types.CodeType) -> bytes:
    try:
        g = load_function(code, job["g_name"])
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


def child_run_f(job: dict, code: types.CodeType, answer: object) -> bytes:
    try:
        f = load_function(code, job["f_name"], guarded_eval)
        outcome = f(answer)  # type: ignore[operator]
    except MemoryError:
        return OUT_OF_MEMORY
    except BaseException as e:  # noqa: BLE001
        return EXCEPTION + describe_exception(e).encode("utf-8", "replace")
    if outcome is True:
        return TRUE
    return NOT_TRUE + type.__dict__["__name__"].__get__(type(outcome)).encode()


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


def run_child(target, job: dict, limits: Limits, workdir: str, timeout: float, *args) -> ChildOutcome:
    out_r, out_w = os.pipe()
    res_r, res_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(out_r)
            os.close(res_r)
            child_setup(limits, workdir, out_w, res_w, timeout)
            message = target(job, *args)
            view = memoryview(message)
            while view:
                view = view[os.write(3, view) :]
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(out_w)
    os.close(res_w)
    pidfd = os.pidfd_open(pid)
    deadline = start + timeout
    out_total = 0
    out_tail = b""
    result = bytearray()
    status: str | None = None
    detail = ""
    exit_status: int | None = None
    poller = select.poll()
    open_fds = {out_r, res_r}
    for fd in (out_r, res_r, pidfd):
        poller.register(fd, select.POLLIN)
    try:
        while exit_status is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                status, detail = "timeout", f"no result within {timeout:g} s"
                break
            for fd, _ in poller.poll(remaining * 1000):
                if fd == pidfd:
                    exit_status = os.waitpid(pid, 0)[1]
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
                status, detail = "output", f"printed more than {limits.output_bytes} bytes"
                break
            if len(result) > limits.answer_bytes:
                status, detail = "wrong", f"answer larger than {limits.answer_bytes} bytes"
                break
        if exit_status is None:
            kill_group(pid)
            exit_status = os.waitpid(pid, 0)[1]
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
    finally:
        for fd in (out_r, res_r, pidfd):
            os.close(fd)
    if status is None:
        if result[:1] in (ANSWER, EXCEPTION, NOT_PLAIN, TRUE, NOT_TRUE, OUT_OF_MEMORY):
            return ChildOutcome(bytes(result), None, "", seconds)
        if result:
            status, detail = "error", "the result channel carried garbage (written by the job itself)"
        elif os.WIFSIGNALED(exit_status):
            sig = os.WTERMSIG(exit_status)
            if sig == signal.SIGKILL and killed_by_oom():
                status, detail = "memory", "killed by the out-of-memory killer"
            elif sig == signal.SIGXCPU:
                status, detail = "timeout", "CPU time limit exceeded"
            else:
                status, detail = "error", f"process killed by {signal.Signals(sig).name}"
        else:
            status = "error"
            detail = f"process exited with code {os.WEXITSTATUS(exit_status)} without a result"
        if out_tail:
            detail += "; output ends: " + out_tail.decode("utf-8", "replace")[-120:]
    return ChildOutcome(None, status, detail, seconds)


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


KILL_ALL = False  # set in containers: kill(-1) reaches every process of the job user but the worker


def sweep_descendants() -> None:
    """Kill and reap every process left behind by a job (daemons, grandchildren, fork bombs).

    The worker is a child subreaper, so orphans of a job are re-parented to it: once it has no
    children left, no descendant is left.
    """
    me = os.getpid()
    for _ in range(10_000):
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            continue
        if KILL_ALL:
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
        for child in children_of(me):
            kill_group(child)
        time.sleep(0.001)


def children_of(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[1]) == parent:
            found.append(int(entry))
    return found


def wipe(path: str, keep_root: bool = True, keep: str | None = None) -> None:
    """Remove everything under ``path`` but ``keep`` (a job may leave read-only dirs or odd names)."""
    try:
        entries = os.listdir(path)
    except OSError:
        return
    for name in entries:
        if name == keep:
            continue
        full = os.path.join(path, name)
        try:
            if os.path.isdir(full) and not os.path.islink(full):
                os.chmod(full, 0o700)
                wipe(full, keep_root=False)
            else:
                os.unlink(full)
        except OSError:
            pass
    if not keep_root:
        try:
            os.rmdir(path)
        except OSError:
            pass


def decode_message(message: bytes) -> str:
    return message[1:].decode("utf-8", "replace")


WORKDIR_NAME = "work"  # the jobs' working directory inside the first scratch dir, emptied after each job


def run_job(job: dict, limits: Limits) -> dict:
    timeout = float(job.get("timeout_s", 5.0))
    workdir = os.path.join(limits.scratch_dirs[0], WORKDIR_NAME)
    total = 0.0

    def verdict(status: str, detail: str = "") -> dict:
        return {"id": job.get("id"), "status": status, "seconds": round(total, 6), "detail": detail[:500]}

    try:
        try:
            f_code = compile_source(job["f_source"], job["f_name"])
        except Exception as e:  # noqa: BLE001 - SyntaxError, RecursionError, MemoryError, ...
            return verdict("error", F_RAISED + describe_exception(e))
        if "answer_json" in job:
            answer_text = job["answer_json"]
        else:
            try:
                g_code = compile_source(job["g_source"], job["g_name"])
            except Exception as e:  # noqa: BLE001
                return verdict("error", "g raised " + describe_exception(e))
            g = run_child(child_run_g, job, limits, workdir, timeout, g_code)
            total += g.seconds
            if g.status:
                return verdict(g.status, g.detail)
            kind, payload = g.message[:1], g.message[1:]
            if kind == OUT_OF_MEMORY:
                return verdict("memory", "g ran out of memory (MemoryError)")
            if kind == EXCEPTION:
                return verdict("error", "g raised " + decode_message(g.message))
            if kind == NOT_PLAIN:
                return verdict("wrong", "answer is not plain data: " + decode_message(g.message))
            if kind != ANSWER:
                return verdict("error", "g sent a malformed answer")
            answer_text = payload.decode("utf-8", "surrogatepass")
        try:
            answer = json.loads(answer_text)
        except (ValueError, RecursionError):
            return verdict("error", "g sent a malformed answer")
        why = type_mismatch(answer, job["answer_type"])
        if why:
            return verdict("wrong", "answer has the wrong type: " + why)
        f = run_child(child_run_f, job, limits, workdir, timeout, f_code, answer)
        total += f.seconds
        if f.status:
            return verdict(f.status, "while running f: " + f.detail)
        kind = f.message[:1]
        if f.message == TRUE:  # exactly one byte: anything appended means f wrote to the channel itself
            return verdict("verified")
        if kind == NOT_TRUE:
            return verdict(
                "wrong", F_RETURNED + ("False" if f.message[1:] == b"bool" else decode_message(f.message))
            )
        if kind == OUT_OF_MEMORY:
            return verdict("memory", "f ran out of memory (MemoryError)")
        if kind == EXCEPTION:
            return verdict("error", F_RAISED + decode_message(f.message))
        return verdict("error", "f sent a malformed result")
    finally:
        for directory in limits.scratch_dirs:
            wipe(directory, keep=WORKDIR_NAME)
        wipe(workdir)
        try:
            os.chmod(workdir, 0o700)
        except OSError:
            os.makedirs(workdir, mode=0o700, exist_ok=True)


def set_prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def parse_args(argv: list[str]) -> tuple[Limits, bool]:
    """``--memory-mb=N --output-bytes=N --answer-bytes=N --scratch=DIR... --kill-all`` (no argparse:
    every module imported here makes each fork slower)."""
    options = {"memory-mb": "512", "output-bytes": str(64 * 1024), "answer-bytes": str(16 * 1024 * 1024)}
    scratch: list[str] = []
    kill_all = False
    for arg in argv:
        key, _, value = arg.removeprefix("--").partition("=")
        if key == "kill-all":
            kill_all = True
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
    os.makedirs(os.path.join(scratch[0], WORKDIR_NAME), mode=0o700, exist_ok=True)
    return limits, kill_all


def main(argv: list[str]) -> int:
    global KILL_ALL, OOM_KILLS_SEEN
    limits, KILL_ALL = parse_args(argv)
    sys.set_int_max_str_digits(MAX_INT_DIGITS)
    OOM_KILLS_SEEN = oom_kills()
    limit_worker(limits)
    json.loads(json.dumps([0, 0.5, "", None, {}]))
    gc.freeze()  # forked children then never touch (and copy) the worker's objects when they collect
    set_prctl(PR_SET_DUMPABLE, 0)
    set_prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)

    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    stdout.write(json.dumps({"ready": True, "pid": os.getpid()}).encode() + b"\n")
    stdout.flush()
    for line in stdin:
        if not line.strip():
            continue
        job = None
        try:
            job = json.loads(line)
            reply = run_job(job, limits)
        except Exception as e:  # noqa: BLE001 - a bad job must not take the worker down
            reply = {
                "id": None,
                "status": "crashed",
                "seconds": 0.0,
                "detail": f"worker: {describe_exception(e)}",
            }
            if isinstance(job, dict):
                reply["id"] = job.get("id")
        stdout.write(json.dumps(reply).encode() + b"\n")
        stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
