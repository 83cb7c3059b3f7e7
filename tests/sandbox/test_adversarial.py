"""A catalogue of hostile solutions, each with the exact verdict it must get, run in real containers.

Every hostile job runs on a one-worker sandbox and is followed by a legit pair that must still verify
(on the same worker, or on its replacement when the hostile job broke it). Probes that try to escape
are written so that a breach would verify: ``f`` asks for "breach", ``g`` returns "breach" only when
the forbidden thing worked, so "contained" gets the verdict ``wrong``.
"""

from __future__ import annotations

import textwrap

import pytest

from sandbox.engine import OWNER_LABEL, docker_client, owner_id, sandbox_containers
from sandbox.verdicts import ERROR, FLAKY, INVALID, MEMORY, OUTPUT, TIMEOUT, VERIFIED, WRONG, Job
from sandbox.verify import SourcePair, verify_pairs

pytestmark = pytest.mark.docker

TIMEOUT_S = 1.5
F_BREACH = 'def f(x: str):\n    return x == "breach"\n'
F_SIX = "def f(x: int):\n    return x == 6\n"
LEGIT = SourcePair(
    "def f(x: List[int], n=3):\n    return x == list(range(n))\n", "def g(n=3):\n    return list(range(n))\n"
)


def g(body: str) -> str:
    return "def g():\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


def probe(attempt: str) -> str:
    """g that returns "breach" when ``attempt`` runs without raising."""
    return g(
        f"try:\n{textwrap.indent(textwrap.dedent(attempt).strip(), '    ')}\n    return 'breach'\nexcept BaseException:\n    return 'contained'"
    )


CASES = {
    # time
    "infinite loop": (F_SIX, g("while True:\n    pass"), TIMEOUT),
    "loop ignoring signals": (
        F_SIX,
        g(
            "import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGXCPU):\n    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass"
        ),
        TIMEOUT,
    ),
    "loop swallowing exceptions": (
        F_SIX,
        g(
            "import time\nwhile True:\n    try:\n        time.sleep(10)\n    except BaseException:\n        pass"
        ),
        TIMEOUT,
    ),
    "one long C-level call": (F_SIX, g("return sum(range(10**13))"), TIMEOUT),
    "catastrophic regex": (F_SIX, g("import re\nreturn re.match('(a*)*b', 'a' * 60)"), TIMEOUT),
    "slow f": ("def f(x: int):\n    while True:\n        x += 1\n", g("return 6"), TIMEOUT),
    # memory
    "memory bomb": (F_SIX, g("return len(bytearray(10**11))"), MEMORY),
    "memory slow creep": (
        F_SIX,
        g(
            "import time\nkeep = []\nwhile True:\n    keep.append(bytearray(8 * 2**20))\n    time.sleep(0.005)"
        ),
        MEMORY,
    ),
    "huge answer": ("def f(x: str):\n    return len(x) > 0\n", g("return 'x' * (32 * 2**20)"), WRONG),
    # processes
    "fork bomb": (
        F_SIX,
        g("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"),
        TIMEOUT,
    ),
    # one process per job, as an unprivileged uid: the per-process limits are the job's limits
    "fork": (F_BREACH, probe("import os\nos.fork()"), WRONG),
    "thread": (F_BREACH, probe("import threading\nthreading.Thread(target=print).start()"), WRONG),
    "subprocess": (F_BREACH, probe("import subprocess\nsubprocess.run(['true'])"), WRONG),
    "two processes of 400 MB": (
        F_SIX,
        g("import os\nkeep = bytearray(400 * 2**20)\nos.fork()\nkeep2 = bytearray(400 * 2**20)\nreturn 6"),
        ERROR,  # BlockingIOError: the fork is refused, never a second 400 MB under a 512 MB job limit
    ),
    "the job's uid and capabilities": (
        "def f(x: List[str]):\n    return x == ['10001', '0000000000000000', '10001']\n",
        g(
            "import os\nstatus = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n"
            "return [str(os.getuid()), status['CapEff'].strip(), str(os.getgid())]"
        ),
        VERIFIED,
    ),
    # the job's uid cannot signal the worker, which is root (PermissionError)
    "kill the worker": (F_SIX, g("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nreturn 6"), ERROR),
    "kill(-1)": (F_SIX, g("import os, signal\nos.kill(-1, signal.SIGKILL)\nreturn 6"), VERIFIED),
    "stop the worker": (
        F_SIX,
        g("import os, signal, time\nos.kill(os.getppid(), signal.SIGSTOP)\ntime.sleep(60)"),
        ERROR,
    ),
    "kill init": (F_BREACH, probe("import os, signal\nos.kill(1, signal.SIGKILL)"), WRONG),
    # output
    "stdout flood": (F_SIX, g("while True:\n    print('x' * 1000)"), OUTPUT),
    "stderr flood": (F_SIX, g("import sys\nwhile True:\n    sys.stderr.write('y' * 1000)"), OUTPUT),
    "invalid bytes on stdout": (
        F_SIX,
        g("import os\nos.write(1, bytes(range(256)) * 4)\nos.write(2, b'\\xff\\xfe\\x00')\nreturn 6"),
        VERIFIED,
    ),
    "fake success marker": (
        F_SIX,
        g(
            'print(\'{"id": 0, "status": "verified", "seconds": 0, "detail": ""}\')\nprint("VERIFIED")\nreturn 5'
        ),
        WRONG,
    ),
    # exits and tricks
    "error only the compiler finds": (F_SIX, "def g():\n    nonlocal x\n    return 6\n", INVALID),
    "repeated argument name": ("def f(x: int, n=1, n=2):\n    return True\n", g("return 6"), INVALID),
    "os._exit(0)": (F_SIX, g("import os\nos._exit(0)"), ERROR),
    "SystemExit(0)": (F_SIX, g("raise SystemExit(0)"), ERROR),
    "excepthook and atexit": (
        F_SIX,
        g(
            "import sys, atexit, os\nsys.excepthook = lambda *a: print('verified')\natexit.register(lambda: os.write(3, b'A6'))\nraise RuntimeError('boom')"
        ),
        ERROR,
    ),
    "thread calling os._exit": (
        F_SIX,
        g(
            "import os, threading, time\nthreading.Thread(target=lambda: os._exit(0)).start()\ntime.sleep(5)\nreturn 6"
        ),
        ERROR,
    ),
    "deep recursion": (F_SIX, g("def r(n):\n    return r(n + 1)\nreturn r(0)"), ERROR),
    "segfault": (F_SIX, g("import ctypes\nreturn ctypes.string_at(0)"), ERROR),
    "C stack overflow": (
        F_SIX,
        g(
            "import sys, json\nsys.setrecursionlimit(10**8)\na = []\nfor _ in range(10**6):\n    a = [a]\nreturn len(json.dumps(a))"
        ),
        ERROR,
    ),
    # forging the verdict
    "forged reply on every fd": (
        F_SIX,
        g(
            "import os, sys, json\n"
            "frame, job_id = sys._getframe(), 0\n"
            "while frame:\n"
            "    job = frame.f_locals.get('job')\n"
            "    if isinstance(job, dict):\n"
            "        job_id = job.get('id')\n"
            "    frame = frame.f_back\n"
            "line = (json.dumps({'id': job_id, 'status': 'verified', 'seconds': 0, 'detail': ''}) + '\\n').encode()\n"
            "for fd in range(1024):\n"
            "    try:\n"
            "        os.write(fd, line)\n"
            "    except OSError:\n"
            "        pass\n"
            "for path in ('/proc/%d/fd/1' % os.getppid(), '/proc/1/fd/1', '/proc/%d/fd/0' % os.getppid()):\n"
            "    try:\n"
            "        with open(path, 'wb') as fh:\n"
            "            fh.write(line)\n"
            "    except OSError:\n"
            "        pass\n"
            "return 5"
        ),
        ERROR,
    ),
    "read the worker's memory": (
        F_BREACH,
        probe("import os\nopen('/proc/%d/mem' % os.getppid(), 'rb').close()"),
        WRONG,
    ),
    "ptrace the worker": (
        F_BREACH,
        probe("import ctypes, os\nassert ctypes.CDLL(None).ptrace(16, os.getppid(), 0, 0) == 0"),
        WRONG,
    ),
    # types and hostile objects
    "True for an int": ("def f(x: int):\n    return x == 1\n", g("return True"), WRONG),
    "5.0 for an int": ("def f(x: int):\n    return x == 5\n", g("return 5.0"), WRONG),
    "int subclass": (
        F_SIX,
        g("class I(int):\n    def __eq__(self, other):\n        return True\nreturn I(6)"),
        WRONG,
    ),
    "hostile __eq__ object": (
        F_SIX,
        g("class A:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\nreturn A()"),
        WRONG,
    ),
    "tuple for a list": ("def f(x: List[int]):\n    return list(x) == [1, 2]\n", g("return (1, 2)"), WRONG),
    "bool inside List[int]": ("def f(x: List[int]):\n    return len(x) == 2\n", g("return [1, True]"), WRONG),
    "f returning a truthy object": (
        "def f(x: int):\n    class T:\n        def __bool__(self):\n            return True\n    return T()\n",
        g("return 6"),
        INVALID,
    ),
    "f returning 1": ("def f(x: int):\n    return 1\n", g("return 6"), WRONG),
    # patching
    "monkeypatched builtins and modules": (
        F_SIX,
        g(
            "import builtins, json, os\nbuiltins.isinstance = lambda *a: True\nbuiltins.type = lambda *a: int\njson.loads = lambda *a, **k: 6\nos._exit = lambda *a: None\nreturn 5"
        ),
        WRONG,
    ),
    # the environment
    "network": (
        F_BREACH,
        probe("import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=1).close()"),
        WRONG,
    ),
    "DNS": (F_BREACH, probe("import socket\nsocket.getaddrinfo('example.com', 80)"), WRONG),
    "write /etc": (F_BREACH, probe("open('/etc/factory-breach', 'w').write('x')"), WRONG),
    "overwrite the worker": (F_BREACH, probe("open('/opt/factory/worker.py', 'a').write('x')"), WRONG),
    "Docker socket": (
        F_BREACH,
        probe("import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('/var/run/docker.sock')"),
        WRONG,
    ),
    "exec from /tmp": (
        F_BREACH,
        probe(
            "import os, shutil\nshutil.copy('/bin/true', '/tmp/t')\nos.chmod('/tmp/t', 0o755)\nassert os.system('/tmp/t') == 0"
        ),
        WRONG,
    ),
    "setuid to root": (F_BREACH, probe("import os\nos.setuid(0)"), WRONG),
}


@pytest.fixture(scope="module")
def one_worker(docker_ready):
    from sandbox.backend import open_sandbox

    with open_sandbox("docker", workers=1, log=lambda m: None) as sandbox:
        yield sandbox


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_job_gets_its_verdict_and_the_next_job_still_verifies(one_worker, name):
    f, g_source, expected = CASES[name]
    hostile, after = verify_pairs([SourcePair(f, g_source), LEGIT], one_worker, timeout_s=TIMEOUT_S)
    assert hostile.status == expected, hostile
    assert after.status == VERIFIED, after


def test_nothing_survives_into_the_next_job(one_worker):
    plant = g(
        """
        import os, time
        open('planted-cwd', 'w').write('x')
        open('/tmp/planted-tmp', 'w').write('x')
        os.mkdir('/tmp/planted-dir', 0o000)
        os.mkdir('locked')
        open('locked/inside', 'w').write('x')
        os.chmod('locked', 0o000)  # the worker (root, no override) cannot look inside
        try:
            pid = os.fork()
        except OSError:  # one process per job: the container refuses
            return 6
        if pid == 0:
            os.setsid()
            if os.fork() == 0:
                while True:
                    open('/tmp/planted-late', 'w').write('x')
                    time.sleep(0.05)
            os._exit(0)
        return 6
        """
    )
    inspect = g(
        """
        import os, time
        time.sleep(0.3)
        me, parent = os.getpid(), os.getppid()
        uid = os.getuid()
        others = []
        for pid in os.listdir('/proc'):
            if pid.isdigit() and int(pid) not in (me, parent):
                status = open('/proc/%s/status' % pid).read()
                zygote = b'--zygote-fd=' in open('/proc/%s/cmdline' % pid, 'rb').read()
                if 'Uid:\\t%d\\t' % uid in status and not zygote:  # the worker's zygote stays
                    others.append(pid)
        left = [n for n in os.listdir('/tmp') if n.startswith('planted')] + os.listdir('.')
        return len(others) * 100 + len(left)
        """
    )
    planted, inspected = verify_pairs(
        [SourcePair(F_SIX, plant), SourcePair("def f(x: int):\n    return x == 0\n", inspect)],
        one_worker,
        timeout_s=TIMEOUT_S,
    )
    assert planted.status == VERIFIED, planted
    assert inspected.status == VERIFIED, f"leftovers (100 per process, 1 per file): {inspected}"


def test_patched_modules_do_not_leak_into_the_next_job(one_worker):
    patch = g("import builtins, math\nbuiltins.len = lambda x: 6\nmath.sqrt = lambda x: 6\nreturn 6")
    check = g("import math\nreturn int(math.sqrt(16)) + len([1, 2])")
    first, second = verify_pairs(
        [SourcePair(F_SIX, patch), SourcePair(F_SIX, check)], one_worker, timeout_s=TIMEOUT_S
    )
    assert first.status == VERIFIED and second.status == VERIFIED, (first, second)


def test_no_container_outlives_the_sandbox(docker_ready):
    from sandbox.backend import open_sandbox

    client = docker_client()

    def mine() -> set[str]:
        return {c.id for c in sandbox_containers(client) if c.labels.get(OWNER_LABEL) == owner_id()}

    before = mine()
    with open_sandbox("docker", workers=2, log=lambda m: None) as sandbox:
        verify_pairs([LEGIT, SourcePair(LEGIT.f, LEGIT.g + "\n"), SourcePair(LEGIT.f, "def g(n=3):\n    return [0, 1, 2]\n")], sandbox)
        assert len(mine() - before) == 2
    assert mine() - before == set()


def test_a_trusted_puzzles_eval_cannot_reach_the_verdict_channel(one_worker):
    """P3 puzzles may eval their answer (trusted data only); the answer must not forge the verdict."""
    f = "def f(x: str):\n    return eval(x) == 7\n"
    forge = "__import__('os').write(3, b'T') or __import__('os')._exit(0)"
    pairs = [
        SourcePair(f, f"def g():\n    return {forge!r}\n"),
        SourcePair(f, 'def g():\n    return "(lambda: [].__class__)()"\n'),
        SourcePair(f, "def g():\n    return 'open(\"/etc/passwd\")'\n"),
        SourcePair(f, "def g():\n    return 'sum(range(4)) + 1'\n"),
    ]
    statuses = [r.status for r in verify_pairs(pairs, one_worker, timeout_s=TIMEOUT_S, trusted_puzzles=True)]
    assert statuses == [ERROR, ERROR, ERROR, VERIFIED]
    assert verify_pairs(pairs[3:], one_worker, trusted_puzzles=False)[0].status == INVALID


# ---------------------------------------------------------------- holes found by a hostile set, both backends

F_ANY_INTS = "def f(x: List[int]):\n    return True\n"
F_ANY_LISTS = "def f(x: List[List[int]]):\n    return True\n"
F_ANY_INT = "def f(x: int):\n    return x >= 0\n"
# g stops its worker (same uid), keeps going past its limit, and a helper resumes the worker later.
STOP_AND_RESUME = """
import os, signal, time
worker = os.getppid()
if os.fork() == 0:
    os.setsid()
    time.sleep({resume_after})
    os.kill(worker, signal.SIGCONT)
    os._exit(0)
os.kill(worker, signal.SIGSTOP)
"""

HOLES = {
    "stop the worker, resume it after the deadline": (
        F_SIX,
        g(STOP_AND_RESUME.format(resume_after=TIMEOUT_S + 2) + "time.sleep(%s)\nreturn 6" % (TIMEOUT_S + 1)),
        {"process": TIMEOUT, "docker": ERROR},  # in a container the job can neither fork nor signal
    ),
    "print past the cap while the worker is stopped": (
        F_SIX,
        g(
            STOP_AND_RESUME.format(resume_after=0.5)
            + "import fcntl\nfcntl.fcntl(1, fcntl.F_SETPIPE_SZ, 2**20)\nos.write(1, b'x' * 900000)\nreturn 6"
        ),
        {"process": OUTPUT, "docker": ERROR},
    ),
    "print past the cap and exit at once": (
        F_SIX,
        g(
            "import fcntl, os\nfcntl.fcntl(1, fcntl.F_SETPIPE_SZ, 2**20)\nos.write(1, b'x' * 900000)\nreturn 6"
        ),
        OUTPUT,
    ),
    "work dir replaced by a dangling symlink": (
        F_SIX,
        g("import os\nd = os.getcwd()\nos.chdir('/')\nos.rmdir(d)\nos.symlink('/nonexistent', d)\nreturn 6"),
        ERROR,  # f's process cannot enter the work dir: this job broke itself, the next one is fine
    ),
    "work dir replaced by a file": (
        F_SIX,
        g("import os\nd = os.getcwd()\nos.chdir('/')\nos.rmdir(d)\nopen(d, 'w').write('x')\nreturn 6"),
        ERROR,
    ),
    "1,500-level directory tree": (
        F_SIX,
        g("import os\nfor _ in range(1500):\n    os.mkdir('d')\n    os.chdir('d')\nreturn 6"),
        VERIFIED,
    ),
    "unreadable directories and a symlink to the root": (
        F_SIX,
        g(
            "import os\nos.makedirs('a/b/c')\nopen('a/b/c/x', 'w').write('x')\nos.symlink('/', 'a/root')\n"
            "os.chmod('a/b/c', 0)\nos.chmod('a/b', 0)\nos.chmod('a', 0)\nreturn 6"
        ),
        VERIFIED,
    ),
    "invalid UTF-8 in the answer": (
        F_SIX,
        g("import os\nos.write(3, b'A\"\\xff\\xfe\"')\nos._exit(0)"),
        ERROR,
    ),
    "16 MB of 99,999-digit ints": (
        F_ANY_INTS,
        g("import os\nos.write(3, b'A[' + b','.join([b'9' * 99999] * 160) + b']')\nos._exit(0)"),
        WRONG,
    ),
    "a puzzle about set order": (
        "def f(x: List[str]):\n    return x == list(set(str(i) for i in range(100)))\n",
        g("return list(set(str(i) for i in range(100)))"),
        WRONG,
    ),
    "g kills the zygote f forks from": (
        F_SIX,
        g(
            "import os, signal\nfor pid in os.listdir('/proc'):\n    try:\n"
            "        if int(pid) != os.getpid() and b'--zygote-fd=' in open('/proc/%s/cmdline' % pid, 'rb').read():\n"
            "            os.kill(int(pid), signal.SIGKILL)\n    except (OSError, ValueError):\n        pass\nreturn 6"
        ),
        VERIFIED,  # a new zygote runs f: the job costs nothing but a restart
    ),
    "g stops the zygote f forks from": (
        F_SIX,
        g(
            "import os, signal\nfor pid in os.listdir('/proc'):\n    try:\n"
            "        if int(pid) != os.getpid() and b'--zygote-fd=' in open('/proc/%s/cmdline' % pid, 'rb').read():\n"
            "            os.kill(int(pid), signal.SIGSTOP)\n    except (OSError, ValueError):\n        pass\nreturn 6"
        ),
        VERIFIED,  # the worker resumes it before f
    ),
    # hygiene by value: an allowed helper must not hand a puzzle what the allow-list refuses by name
    "a puzzle gets type from typing.get_origin": (
        "def f(x: int):\n    from typing import get_origin, Type\n    d = '_' * 2\n"
        "    Everything = get_origin(Type)('E', (), {d + 'eq' + d: lambda a, b: True})\n"
        "    return Everything() == x * 7919 + 1\n",
        g("return 0"),
        INVALID,
    ),
    "a puzzle gets type from Counter.copy(int)": (
        "def f(x: int):\n    from collections import Counter\n    d = '_' * 2\n"
        "    Everything = Counter.copy(int)('E', (), {d + 'eq' + d: lambda a, b: True})\n"
        "    return Everything() == x * 7919 + 1\n",
        g("return 0"),
        INVALID,
    ),
    # the host's compiler keeps every folded intermediate: 1.6 GB for this one before the bound
    "constant-folding chain in g": (
        F_SIX,
        g("return len(" + " + ".join(["'a' * 4096"] * 900) + ")"),
        INVALID,
    ),
    "4 million one-element lists": (
        F_ANY_LISTS,
        g("import os\nos.write(3, b'A[' + b','.join([b'[0]'] * 4_000_000) + b']')\nos._exit(0)"),
        WRONG,
    ),
    # A verified pair runs a second time in fresh processes (the worker's second zygotes): an answer that
    # g cannot give again is `flaky`, not verified. Draws of `random` come from the pair's seed, those
    # that would read os.urandom too, and g's string hashes are fixed: those verify, reproducibly.
    "g's answer from an unseeded Random": (
        F_ANY_INT,
        g("import random\nr = random.Random()\nr.seed()\nrandom.seed()\nreturn r.getrandbits(60) + random.getrandbits(60)"),
        VERIFIED,
    ),
    "g's answer from SystemRandom": (F_ANY_INT, g("import random\nreturn random.SystemRandom().getrandbits(60)"), VERIFIED),
    "g's answer from os.urandom": (F_ANY_INT, g("import os\nreturn int.from_bytes(os.urandom(8), 'big')"), FLAKY),
    "g's answer from an object's address": (F_ANY_INT, g("return id(object())"), FLAKY),
    "g's answer from an object's hash": (F_ANY_INT, g("return hash(object())"), FLAKY),
    "g's answer from the clock": (F_ANY_INT, g("import time\nreturn time.time_ns()"), FLAKY),
    "g's answer from its pid": (F_ANY_INT, g("import os\nreturn os.getpid()"), FLAKY),
    "g's seeded draws": (
        F_ANY_INT,
        g("import random\nreturn random.Random(7).getrandbits(60) + random.getrandbits(60)"),
        VERIFIED,
    ),
    "g's order of a set of strings": (
        F_ANY_INT,
        g("return sum(i * int(s) for i, s in enumerate(set(str(k) for k in range(100))))"),
        VERIFIED,
    ),
}


# On the process backend a hostile g reaches every process of its uid on the host (it kills or stops
# every zygote it finds in /proc), so those run `alone`, not beside another test's sandbox.
@pytest.fixture(scope="module", params=[pytest.param("process", marks=pytest.mark.alone), "docker"])
def each_backend(request):
    from sandbox.backend import open_sandbox

    if request.param == "docker":
        request.getfixturevalue("docker_ready")
    with open_sandbox(request.param, workers=1, log=lambda m: None) as sandbox:
        yield sandbox


@pytest.mark.parametrize("name", list(HOLES))
def test_closed_hole_gets_its_verdict_and_the_next_job_still_verifies(each_backend, name):
    f, g_source, expected = HOLES[name]
    if isinstance(expected, dict):  # the verdict differs between backends
        expected = expected[each_backend.kind]
    hostile, after = verify_pairs([SourcePair(f, g_source), LEGIT], each_backend, timeout_s=TIMEOUT_S)
    assert hostile.status == expected, hostile
    assert after.status == VERIFIED, after


def test_answers_over_the_parsing_bounds_say_why(each_backend):
    ints, lists = HOLES["16 MB of 99,999-digit ints"], HOLES["4 million one-element lists"]
    results = verify_pairs([SourcePair(*ints[:2]), SourcePair(*lists[:2])], each_backend, timeout_s=30)
    assert [r.status for r in results] == [WRONG, WRONG], results
    assert "ints too long" in results[0].detail and "lists and dicts" in results[1].detail


IPC_KEYS = (0x5EED01, 0x5EED02, 0x5EED03)
IPC_PROBE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
shm, msg, sem = {keys}
"""


def test_no_ipc_object_survives_into_the_next_job(each_backend):
    """SysV shared memory (here 3 x 100 MB, touched), message queues, semaphores and a POSIX message
    queue made by one job are gone before the next: no channel between jobs, no memory held."""
    plant = g(
        IPC_PROBE.format(keys=IPC_KEYS)
        + """
libc.shmat.restype = ctypes.c_void_p
libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
made = 0
for i in range(3):
    ident = libc.shmget(shm + 16 * i, 100 * 2**20, 0o1600)
    if ident >= 0:
        made += 1
        address = libc.shmat(ident, None, 0)
        ctypes.memset(address, 1, 100 * 2**20)
        libc.shmdt(ctypes.c_void_p(address))
made += libc.msgget(msg, 0o1600) >= 0
made += libc.semget(sem, 1, 0o1600) >= 0
if os.path.isdir('/dev/mqueue'):  # else no worker could find it to remove it
    libc.mq_open(b'/factory-planted', os.O_CREAT | os.O_RDWR, 0o600, None)
return made
"""
    )
    inspect = g(
        IPC_PROBE.format(keys=IPC_KEYS)
        + """
libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
left = sum(libc.shmget(shm + 16 * i, 0, 0) >= 0 for i in range(3))
left += libc.msgget(msg, 0) >= 0
left += libc.semget(sem, 0, 0) >= 0
if os.path.isdir('/dev/mqueue'):  # POSIX queues are found through it (absent on some hosts)
    left += libc.mq_open(b'/factory-planted', os.O_RDONLY) >= 0
return left
"""
    )
    planted, inspected = verify_pairs(
        [
            SourcePair("def f(x: int):\n    return x == 5\n", plant),
            SourcePair("def f(x: int):\n    return x == 0\n", inspect),
        ],
        each_backend,
        timeout_s=10,
    )
    assert planted.status == VERIFIED, planted
    assert inspected.status == VERIFIED, f"IPC objects left (one per object): {inspected}"
    memory_hungry = g("return len(bytearray(400 * 2**20)) // 2**20")
    assert (
        verify_pairs(
            [SourcePair("def f(x: int):\n    return x == 400\n", memory_hungry)], each_backend, timeout_s=10
        )[0].status
        == VERIFIED
    )


def test_a_worker_that_cannot_restore_its_scratch_space_retires(tmp_path):
    """Outside containers the job can replace the worker's scratch dir itself; the worker then
    answers that job truly, exits, and the pool replaces it before the next job."""
    from sandbox.backend import open_sandbox

    replace_scratch = g(
        f"import os\nscratch = os.path.dirname(os.getcwd())\nos.chdir('/')\n"
        f"os.rename(scratch, {str(tmp_path / 'moved')!r})\nos.symlink('/nonexistent', scratch)\nreturn 6"
    )
    with open_sandbox("process", workers=1, log=lambda m: None) as sandbox:
        results = verify_pairs(
            [SourcePair(F_SIX, replace_scratch), LEGIT, LEGIT], sandbox, timeout_s=TIMEOUT_S
        )
        # f's process cannot enter the work dir any more: the job broke itself (error), no one else
        assert [r.status for r in results] == [ERROR, VERIFIED, VERIFIED], results
        assert sandbox.pool.replaced == 1


def test_an_f_that_kills_or_stops_its_zygote_costs_nothing_later(each_backend):
    """The host never lets a puzzle import, so this is sent as raw jobs: the worker must cope anyway."""
    from sandbox.verdicts import Job

    def job(i: int, f: str) -> Job:
        return Job(
            id=i,
            f_source=f,
            f_name="f",
            answer_type="int",
            g_source="def g():\n    return 6\n",
            g_name="g",
            timeout_s=TIMEOUT_S,
        )

    hit = "def f(x: int):\n    import os, signal\n    os.kill(os.getppid(), signal.%s)\n    return x == 6\n"
    plain = "def f(x: int):\n    return x == 6\n"
    jobs = [job(0, hit % "SIGKILL"), job(1, plain), job(2, hit % "SIGSTOP"), job(3, plain)]
    # in a container f's uid cannot signal the zygote (root): f raises PermissionError
    hit_verdict = ERROR if each_backend.kind == "docker" else VERIFIED
    assert [r.status for r in each_backend.run(jobs)] == [hit_verdict, VERIFIED] * 2


def test_a_g_that_kills_the_zygote_again_and_again_never_takes_the_worker_down(each_backend):
    """The worker's next request to a zygote killed a moment ago meets a closed socket: that must
    be a new zygote, never the worker dying of SIGPIPE (1 time in 15 before the fix)."""
    from sandbox.verdicts import Job

    f, g_source, _ = HOLES["g kills the zygote f forks from"]
    jobs = [
        Job(id=i, f_source=f, f_name="f", answer_type="int", g_source=g_source, g_name="g", timeout_s=TIMEOUT_S)
        for i in range(100)
    ]
    replaced = each_backend.pool.replaced
    assert [r.status for r in each_backend.run(jobs)] == [VERIFIED] * 100
    assert each_backend.pool.replaced == replaced


def test_f_shares_no_per_process_secret_with_g(each_backend):
    """g asking its own process for hash() or set order proves nothing about f's: f runs in a child
    of the zygote, an interpreter of its own (sent as raw jobs: the host may refuse hash in puzzles)."""
    from sandbox.verdicts import Job

    def job(i: int, f: str, g_source: str, answer_type: str) -> Job:
        return Job(
            id=i,
            f_source=f,
            f_name="f",
            answer_type=answer_type,
            g_source=g_source,
            g_name="g",
            timeout_s=TIMEOUT_S,
        )

    words = "[str(i) for i in range(100)]"
    jobs = [
        job(0, "def f(x: int):\n    return x == hash('abc')\n", g("return hash('abc')"), "int"),
        job(1, "def f(x: int):\n    return x == hash(b'abc')\n", g("return hash(b'abc')"), "int"),
        job(
            2,
            f"def f(x: List[str]):\n    return x == list(set({words}))\n",
            g(f"return list(set({words}))"),
            "List[str]",
        ),
        job(3, "def f(x: int):\n    return x == 6\n", g("return 6"), "int"),
    ]
    assert [r.status for r in each_backend.run(jobs)] == [WRONG, WRONG, WRONG, VERIFIED]


# ---------------------------------------------------------------- no job's process holds another job's data

# A puzzle no g can solve in time but by knowing the answer: a factor of a 40-digit semiprime.
SEMIPRIME, FACTOR = 2644364958700808672169542738359489765103, 39724522804359957299
F_FACTOR = f"def f(x: int):\n    return 1 < x < {SEMIPRIME} and {SEMIPRIME} % x == 0\n"
G_FACTOR = f"def g():\n    return {FACTOR}\n"
# Returns the first digit run in ``blobs`` that solves the puzzle (an answer of another job), else 1.
PICK_FACTOR = f"""
import re
for blob in blobs:
    for m in re.finditer(rb'[0-9]{{15,}}', blob):
        c = int(m.group())
        if 1 < c < {SEMIPRIME} and {SEMIPRIME} % c == 0:
            return c
return 1
"""
# g walks its frames up to the worker's loop and peeks into its stdin buffer: the jobs queued behind.
G_READS_THE_QUEUE = g(
    """
import sys
blobs = []
frame = sys._getframe()
while frame is not None:
    for value in list(frame.f_locals.values()):
        try:
            blobs.append(bytes(value.peek(1 << 20)))
        except BaseException:
            pass
    frame = frame.f_back
"""
    + PICK_FACTOR
)
# Reads every anonymous mapping of its own process through ctypes: freed copies of earlier jobs.
SCAN_OWN_MEMORY = """
import ctypes
blobs = []
for line in open('/proc/self/maps'):
    fields = line.split()
    if fields[1][0] != 'r' or (len(fields) > 5 and fields[5] != '[heap]'):
        continue
    low, high = (int(x, 16) for x in fields[0].split('-'))
    if high - low < 256 * 2**20:
        blobs.append(ctypes.string_at(low, high - low))
"""
G_SCANS_ITS_MEMORY = g(SCAN_OWN_MEMORY + PICK_FACTOR)
F_SCANS_ITS_MEMORY = "def f(x: int):\n" + textwrap.indent(
    (SCAN_OWN_MEMORY + PICK_FACTOR).replace("return c", "return True").replace("return 1", "return False"),
    "    ",
)


def factor_job(i: int, g_source: str, f_source: str = F_FACTOR) -> Job:
    return Job(id=i, f_source=f_source, f_name="f", answer_type="int", g_source=g_source, g_name="g", timeout_s=10)


def test_g_cannot_read_the_jobs_queued_behind_it(each_backend):
    """Many attempts at one puzzle share a batch: one real solution queued behind a fake one must
    not let the fake verify (sent as raw jobs: the sandbox holds whatever the host's hygiene lets by)."""
    # while the first job sleeps, the host queues the next three at the worker
    sleeper = factor_job(0, g(f"import time\ntime.sleep(0.5)\nreturn {FACTOR}"))
    jobs = [sleeper, factor_job(1, G_READS_THE_QUEUE), factor_job(2, G_FACTOR), factor_job(3, G_FACTOR)]
    assert [r.status for r in each_backend.run(jobs)] == [VERIFIED, WRONG, VERIFIED, VERIFIED]


def test_g_cannot_find_an_earlier_jobs_answer_in_its_memory(each_backend):
    jobs = [factor_job(0, G_FACTOR), factor_job(1, G_SCANS_ITS_MEMORY), factor_job(2, G_FACTOR)]
    assert [r.status for r in each_backend.run(jobs)] == [VERIFIED, WRONG, VERIFIED]


def test_f_cannot_find_an_earlier_jobs_answer_in_its_memory(each_backend):
    jobs = [factor_job(0, G_FACTOR), factor_job(1, g("return 1"), F_SCANS_ITS_MEMORY), factor_job(2, G_FACTOR)]
    assert [r.status for r in each_backend.run(jobs)] == [VERIFIED, WRONG, VERIFIED]


def test_an_answer_of_astral_characters_crosses_compactly(each_backend):
    """16 MB of UTF-8 (4 million astral characters) reaches f as 16 MB, not 12 bytes of escapes per
    character: under the answer cap, so it verifies (it came back 'answer larger than' before)."""
    chars = 4 * 2**20 - 16
    pair = SourcePair(f"def f(x: str):\n    return len(x) == {chars}\n", g(f"return chr(0x1F600) * {chars}"))
    hostile, after = verify_pairs([pair, LEGIT], each_backend, timeout_s=10)
    assert hostile.status == VERIFIED, hostile
    assert after.status == VERIFIED, after


# ---------------------------------------------------------------- f's hash seed stays out of g's reach

# g looks for ``needles`` in its environment, the environment and command line of every process it can
# see, every regular file open in them, and every file under ``roots``; "breach" when it finds one.
SEARCH_FOR_NEEDLES = """
import os, stat
def contents(path):
    try:
        if '/fd/' in path or not path.startswith('/proc/'):  # a file, or what a process has open
            if not stat.S_ISREG(os.stat(path).st_mode):
                return b''  # no fifo, socket or device (reading a pipe would steal its data)
        with open(path, 'rb') as fh:
            return fh.read(2**20)
    except OSError:
        return b''
paths = []
for pid in os.listdir('/proc'):
    if pid.isdigit():
        paths += [f'/proc/{pid}/environ', f'/proc/{pid}/cmdline']
        try:
            paths += [f'/proc/{pid}/fd/{fd}' for fd in os.listdir(f'/proc/{pid}/fd')]
        except OSError:
            pass
for root in roots:
    for top, _, names in os.walk(root):
        paths += [os.path.join(top, name) for name in names]
blobs = [b''.join(k + b'=' + v + b'\\0' for k, v in os.environb.items())] + [contents(p) for p in paths]
return 'breach' if any(needle in blob for blob in blobs for needle in needles) else 'contained'
"""


def searching_g(needles: list[bytes], roots: list[str]) -> str:
    return g(f"needles = {needles!r}\nroots = {roots!r}\n" + SEARCH_FOR_NEEDLES)


def test_g_finds_neither_f_hash_seeds_nor_the_secret(each_backend):
    """f's hash seeds are derived from the installation's secret: g finds neither the seeds (first run,
    recheck) nor the secret anywhere it looks (its environment, every process's environment, command line
    and open files, and the files it may write: in a container all of them; on the process backend its
    scratch space, since there g runs as your user and reads your files, the secret's among them: not an
    isolation boundary), while the same search finds g's own hash seed."""
    from sandbox.installation import installation_hash_seeds, installation_secret

    secret, seeds = installation_secret(), installation_hash_seeds()
    needles = [str(seeds.first).encode(), str(seeds.recheck).encode(), secret, secret.hex().encode()]
    roots = ["/tmp", "/dev/shm"] if each_backend.kind == "docker" else ["."]
    looks = SourcePair(F_BREACH, searching_g(needles, roots))
    finds_its_own = SourcePair(F_BREACH, searching_g([b"PYTHONHASHSEED=0"], roots))
    hostile, control, after = verify_pairs([looks, finds_its_own, LEGIT], each_backend, timeout_s=10)
    assert (hostile.status, control.status, after.status) == (WRONG, VERIFIED, VERIFIED), (hostile, control)



def str_hash_with_seed(seed: int) -> int:
    import subprocess
    import sys

    run = [sys.executable, "-c", "print(hash('abc'))"]
    return int(subprocess.run(run, env={"PYTHONHASHSEED": str(seed)}, capture_output=True, check=True).stdout)


def test_f_runs_with_the_hash_seeds_derived_from_the_installations_secret(each_backend):
    """The first run's f hashes with one derived seed, the recheck's with the other (sent as raw jobs: the
    host refuses hash in puzzles). The image's Python (3.11) hashes str as this one does from 3.11 on."""
    import sys

    from sandbox.installation import installation_hash_seeds

    if each_backend.kind == "docker" and sys.hash_info.algorithm != "siphash13":
        pytest.skip("this Python hashes str otherwise than the image's")
    seeds = installation_hash_seeds()

    def job(i: int, seed: int, recheck: bool) -> Job:
        f = f"def f(x: int):\n    return x == 1 and hash('abc') == {str_hash_with_seed(seed)}\n"
        return Job(i, f, "f", "int", g_source="def g():\n    return 1\n", g_name="g", recheck=recheck)

    jobs = [job(0, seeds.first, False), job(1, seeds.recheck, True), job(2, seeds.recheck, False)]
    assert [r.status for r in each_backend.run(jobs)] == [VERIFIED, VERIFIED, WRONG]


# ---------------------------------------------------------------- reproducible verdicts

def coin_flip_pairs(count: int) -> list[SourcePair]:
    """Pairs whose verdicts hang on randomness in g, on randomness in f (the module's, an unseeded
    Random's, SystemRandom's), on g's hash secret, and on a value g cannot give again (the clock)."""
    pairs = []
    for i in range(count):
        f_one = f"def f(x: int, n={i}):\n    return x == 1\n"
        draw = ("random.randrange(2)", "random.Random().randrange(2)", "random.SystemRandom().randrange(2)")[i % 3]
        f_draws = f"def f(x: int, n={i}):\n    import random\n    return x == {draw}\n"
        pairs += [
            SourcePair(f_one, f"def g(n={i}):\n    import random\n    return random.randrange(2)\n"),
            SourcePair(f_draws, f"def g(n={i}):\n    return 1\n"),
            SourcePair(f_one, f"def g(n={i}):\n    return len(list(set(str(k) for k in range(n + 9)))[0]) % 2\n"),
            SourcePair(f"def f(x: int, n={i}):\n    return x >= n\n", f"def g(n={i}):\n    import time\n    return time.time_ns()\n"),
        ]
    return pairs


def test_the_same_pairs_get_the_same_verdicts_in_every_run_and_worker(each_backend):
    """A run on one worker and a run on two fresh ones: identical verdicts, and a mix of them (so the
    draws decided something). g's random is seeded from the pair, f's from the puzzle (unseeded
    generators and SystemRandom too), and g's hash secret is fixed (f's stays its own); an answer g
    cannot give again is flaky in every run. Before, such runs flipped 14 of 40 verdicts."""
    from sandbox.backend import open_sandbox

    pairs = coin_flip_pairs(10)
    first = [r.status for r in verify_pairs(pairs, each_backend, timeout_s=5)]
    with open_sandbox(each_backend.kind, workers=2, log=lambda m: None) as fresh:
        second = [r.status for r in verify_pairs(pairs, fresh, timeout_s=5)]
    assert first == second
    assert set(first) == {VERIFIED, WRONG, FLAKY}
    assert first[3::4] == [FLAKY] * 10


def test_an_f_that_hangs_on_its_hash_secret_is_caught_as_flaky(each_backend):
    """f's hash seed is derived from the installation's secret (g must not know it), so a puzzle whose
    verdict hangs on the order of a set of strings is a coin of that secret. Its second run has the other
    seed, so each such coin comes back flaky a quarter of the time (verified once, then not); an
    installation where none of 60 comes back flaky has probability (3/4)**60, under 1e-7."""
    statuses = [r.status for r in verify_pairs(set_order_pairs(60), each_backend, timeout_s=5)]
    assert FLAKY in statuses
    assert set(statuses) <= {VERIFIED, WRONG, FLAKY}


def set_order_pairs(count: int) -> list[SourcePair]:
    """Pairs whose verdict is f's order of a set of two strings: a coin of f's hash seed."""
    one = g("return 1")
    return [
        SourcePair(f"def f(x: int):\n    return x == 1 and list({{'a{i}', 'b{i}'}})[0] == 'a{i}'\n", one)
        for i in range(count)
    ]


@pytest.mark.parametrize("kind", ["process", "docker"])
def test_an_f_that_hangs_on_its_hash_order_gets_the_same_verdict_in_every_run(kind, request):
    """f's hash seeds come from the installation's secret: two runs in fresh sandboxes (one worker, then
    two) give the same verdicts. Benign jobs: the process backend needs not run alone. Before, 12 of 20
    such verdicts differed between two runs."""
    from sandbox.backend import open_sandbox

    if kind == "docker":
        request.getfixturevalue("docker_ready")
    runs = []
    for workers in (1, 2):
        with open_sandbox(kind, workers=workers, log=lambda m: None) as sandbox:
            runs.append([r.status for r in verify_pairs(set_order_pairs(20), sandbox, timeout_s=5)])
    assert runs[0] == runs[1]
