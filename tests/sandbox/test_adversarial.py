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
from sandbox.verdicts import CRASHED, ERROR, INVALID, MEMORY, OUTPUT, TIMEOUT, VERIFIED, WRONG
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
    "kill the worker": (
        F_SIX,
        g("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nreturn 6"),
        CRASHED,
    ),
    "kill(-1)": (F_SIX, g("import os, signal\nos.kill(-1, signal.SIGKILL)\nreturn 6"), CRASHED),
    "stop the worker": (
        F_SIX,
        g("import os, signal, time\nos.kill(os.getppid(), signal.SIGSTOP)\ntime.sleep(60)"),
        CRASHED,
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
        if os.fork() == 0:
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
                if 'Uid:\\t%d\\t' % uid in status:
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
        verify_pairs([LEGIT, LEGIT, LEGIT], sandbox)
        assert len(mine() - before) == 2
    assert mine() - before == set()


def test_a_trusted_puzzles_eval_cannot_reach_the_verdict_channel(one_worker):
    """P3 puzzles may eval their answer (trusted data only); the answer must not forge the verdict."""
    f = "def f(x: str):\n    return eval(x) == 7\n"
    forge = "__import__('os').write(3, b'T') or __import__('os')._exit(0)"
    pairs = [
        SourcePair(f, f"def g():\n    return {forge!r}\n"),
        SourcePair(f, "def g():\n    return \"(lambda: [].__class__)()\"\n"),
        SourcePair(f, "def g():\n    return 'open(\"/etc/passwd\")'\n"),
        SourcePair(f, "def g():\n    return 'sum(range(4)) + 1'\n"),
    ]
    statuses = [r.status for r in verify_pairs(pairs, one_worker, timeout_s=TIMEOUT_S, trusted_puzzles=True)]
    assert statuses == [ERROR, ERROR, ERROR, VERIFIED]
    assert verify_pairs(pairs[3:], one_worker, trusted_puzzles=False)[0].status == INVALID
