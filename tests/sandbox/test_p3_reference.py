"""P3's own reference solutions verify in the Docker sandbox, all but one known, explained failure."""

from __future__ import annotations

import pytest

from factory.verify_files import verify_p3
from puzzles.p3 import load_p3
from sandbox.backend import open_sandbox
from sandbox.verdicts import FLAKY, TIMEOUT
from sandbox.verify import SourcePair, verify_pairs

pytestmark = pytest.mark.docker

# ExponentialCoinMoves:0's reference answer is a list of more than 16 MiB of JSON (the answer cap),
# built in about 5 s: it ends as "wrong" (over the cap) or "timeout" on a loaded machine.
KNOWN_FAILURES = {"ExponentialCoinMoves:0#0": {"wrong", "timeout"}}
TIMEOUT_S = 5.0
# A few reference solutions (Mastermind's) take seconds: on a machine busy with other work they can
# pass 5 s, in the first run (timeout) or in the recheck of a verified pair (flaky: measured under
# load). Those get one more try with this much time, so the machine's load cannot change the outcome;
# a real failure fails both tries.
RETRY_TIMEOUT_S = 60.0


@pytest.mark.slow
def test_p3_reference_solutions_verify(p3_path, docker_ready):
    with open_sandbox("docker", log=lambda m: None) as sandbox:
        _, rows = verify_p3(p3_path, sandbox, timeout_s=TIMEOUT_S, split=None, out_path=None)
        failures = {row["id"]: row["status"] for row in rows if row["status"] != "verified"}
        slow = sorted(key for key, status in failures.items() if status in (TIMEOUT, FLAKY) and key not in KNOWN_FAILURES)
        sources = {
            f"{item.key}#{i}": SourcePair(item.puzzle.source, solution.source)
            for item in load_p3(p3_path, None)
            for i, solution in enumerate(item.solutions)
        }
        retried = verify_pairs([sources[key] for key in slow], sandbox, RETRY_TIMEOUT_S, trusted_puzzles=True)
    for key, result in zip(slow, retried, strict=True):
        if result.status == "verified":
            del failures[key]
        else:
            failures[key] = result.status
    assert len(rows) == 1698
    assert failures.keys() == KNOWN_FAILURES.keys(), failures
    assert all(failures[key] in KNOWN_FAILURES[key] for key in failures), failures
