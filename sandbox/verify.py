"""Verifying (puzzle, solution) source pairs: P3 rules on the host, execution in the sandbox."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from puzzles.parse import parse_puzzle, parse_solution
from puzzles.records import InvalidProgram, Puzzle, Solution
from sandbox.interface import Sandbox
from sandbox.verdicts import CRASHED, DEFAULT_TIMEOUT_S, ERROR, FLAKY, INVALID, VERIFIED, WRONG, Job, Result
from sandbox.worker import F_RAISED, F_RETURNED

# What one probe of a puzzle showed (``probe_outcome``).
PROBE_SOLVED = "solved"  # f returned True: the probe answer solves the puzzle
PROBE_UNDEFINED_NAME = (
    "undefined name"  # f raised NameError/UnboundLocalError: it uses a name it never defines
)
PROBE_NOT_BOOL = "not a bool"  # f returned something other than a bool
PROBE_OTHER = "other"  # False, another exception, a limit: says nothing against the puzzle


@dataclass(frozen=True)
class SourcePair:
    f: str
    g: str


def job_for(index: int, puzzle: Puzzle, solution: Solution, timeout_s: float) -> Job:
    return _puzzle_job(index, puzzle, timeout_s, g_source=solution.source, g_name=solution.name)


def probe_job(index: int, puzzle: Puzzle, answer: object, timeout_s: float) -> Job:
    """Run ``f`` on a given answer (no ``g``): used to reject puzzles that a trivial answer solves."""
    return _puzzle_job(index, puzzle, timeout_s, answer_json=json.dumps(answer))


def _puzzle_job(index: int, puzzle: Puzzle, timeout_s: float, **answer_from: str) -> Job:
    """A job checking ``puzzle``; ``answer_from`` says where the answer comes from (a ``g``, or JSON)."""
    return Job(
        id=index,
        f_source=puzzle.source,
        f_name=puzzle.name,
        answer_type=puzzle.answer_type,
        timeout_s=timeout_s,
        **answer_from,
    )


def probe_outcome(result: Result) -> str:
    """What the result of a ``probe_job`` says about its puzzle: one of the ``PROBE_*`` values."""
    if result.status == VERIFIED:
        return PROBE_SOLVED
    if result.status == ERROR and result.detail.startswith(F_RAISED):
        exception = result.detail[len(F_RAISED) :]
        if exception.startswith(("NameError", "UnboundLocalError")):
            return PROBE_UNDEFINED_NAME
    if (
        result.status == WRONG
        and result.detail.startswith(F_RETURNED)
        and result.detail != F_RETURNED + "False"
    ):
        return PROBE_NOT_BOOL
    return PROBE_OTHER


def verify_pairs(
    pairs: Sequence[SourcePair],
    sandbox: Sandbox,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_result: Callable[[int, Result], None] | None = None,
    trusted_puzzles: bool = False,
) -> list[Result]:
    """One verdict per pair, in order. Pairs that break the P3 rules are ``invalid`` and never run.
    A pair that repeats an earlier one of the call runs once and shares its verdict (verdicts are
    reproducible: a sampled batch holds many identical attempts). Every pair that verifies runs a second
    time, in fresh processes, and stays ``verified`` only if that run verifies the same answer (else it
    is ``flaky``, see ``rechecked``): a verified pair verifies the same anywhere. ``on_result`` hears each
    pair's final verdict once (a verified pair's after its second run).

    ``trusted_puzzles`` (P3's own data) lets a puzzle call ``eval(answer)``; the worker gives it a
    guarded eval. Model-written puzzles never get it.
    """
    results: list[Result | None] = [None] * len(pairs)
    jobs: list[Job] = []
    positions: list[list[int]] = []  # per job, the pairs it answers
    job_of: dict[SourcePair, int] = {}
    for i, pair in enumerate(pairs):
        if pair in job_of:
            positions[job_of[pair]].append(i)
            continue
        try:
            puzzle = parse_puzzle(pair.f, allow_eval=trusted_puzzles)
            solution = parse_solution(pair.g, puzzle)
        except InvalidProgram as e:
            results[i] = Result(INVALID, 0.0, str(e))
            if on_result is not None:
                on_result(i, results[i])
            continue
        job_of[pair] = len(jobs)
        positions.append([i])
        jobs.append(job_for(len(jobs), puzzle, solution, timeout_s))

    def forward(job_index: int, result: Result) -> None:
        if on_result is not None:
            for position in positions[job_index]:
                on_result(position, result)

    def forward_unless_verified(job_index: int, result: Result) -> None:
        if result.status != VERIFIED:  # a verified pair's verdict waits for its second run
            forward(job_index, result)

    first = sandbox.run(jobs, forward_unless_verified)
    verified = [j for j, result in enumerate(first) if result.status == VERIFIED]
    final = list(first)
    again = sandbox.run([replace(jobs[j], recheck=True) for j in verified])
    for j, second in zip(verified, again, strict=True):
        final[j] = rechecked(first[j], second)
        forward(j, final[j])
    for answered, result in zip(positions, final, strict=True):
        for position in answered:
            results[position] = result
    return results  # type: ignore[return-value]


def rechecked(first: Result, second: Result) -> Result:
    """A verified pair's verdict once it ran again in fresh processes: ``verified`` only when the second
    run verified the same answer; a second run the sandbox lost stays ``crashed`` (no verdict), anything
    else is ``flaky``. The seconds are both runs'."""
    seconds = first.seconds + second.seconds
    if second.status == CRASHED:
        return replace(second, seconds=seconds)
    if second.status == VERIFIED and second.answer_digest == first.answer_digest:
        return replace(first, seconds=seconds)
    again = "another answer" if second.status == VERIFIED else f"{second.status} ({second.detail})"
    return Result(FLAKY, seconds, f"verified, then {again} in a second run", first.answer_digest)
