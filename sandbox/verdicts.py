"""Verdicts and the job/result records exchanged with a sandbox backend.

The host's side of the wire contract: the worker (sandbox/worker.py, stdlib only) spells the same
verdict names in its contract block; tests/sandbox/test_contract.py ties the two."""

from __future__ import annotations

from dataclasses import dataclass

VERIFIED = "verified"  # f(g()) returned exactly True and the answer had exactly the annotated type
WRONG = "wrong"  # f returned anything but True, or the answer had the wrong type / was not plain data
ERROR = "error"  # an exception (type and message in detail), or the process died without an answer
TIMEOUT = "timeout"  # wall-clock limit exceeded; the job was SIGKILLed from outside
MEMORY = "memory"  # memory limit exceeded
OUTPUT = "output"  # printed more than the output cap
INVALID = "invalid"  # does not parse or breaks the P3 rules; never executed
CRASHED = "crashed"  # the sandbox lost the job (worker or container died)
FLAKY = "flaky"  # verified once, but a second run in fresh processes gave another verdict or answer

ALL_VERDICTS = (VERIFIED, WRONG, ERROR, TIMEOUT, MEMORY, OUTPUT, INVALID, CRASHED, FLAKY)

# Seconds each of g and f may run when the caller sets no limit (`factory verify`'s --timeout); a round's
# limit is its own setting (factory.config.RunConfig.timeout_s).
DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Job:
    """One unit of sandbox work: run ``g`` (or take ``answer_json``), check its type, run ``f`` on it.

    Sources are executed in fresh processes with the P3 prelude (``List`` and friends) in scope.
    Exactly one of ``g_source`` and ``answer_json`` is set: the latter runs ``f`` on a given answer
    (probe inputs for trivial-puzzle rejection). ``recheck`` runs a verified pair again, in the worker's
    second zygotes (another hash secret and address layout for f, another address layout for g).
    """

    id: int
    f_source: str
    f_name: str
    answer_type: str
    g_source: str | None = None
    g_name: str | None = None
    answer_json: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    recheck: bool = False

    def to_wire(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None and v is not False}


@dataclass(frozen=True)
class Result:
    """The verdict for one job. ``seconds`` is the time spent running it (both processes);
    ``answer_digest`` identifies g's answer (empty when g gave none that passed the type check)."""

    status: str
    seconds: float = 0.0
    detail: str = ""
    answer_digest: str = ""
