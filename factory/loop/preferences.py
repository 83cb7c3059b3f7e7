"""Preference pairs from a run's store: a verified solution preferred over a failed attempt at the same
puzzle, with the solve prompt the model saw (DPO), or over the generating model's own sample (SPIN).

A row pairs, for one generated puzzle of one round, a stored pair of it (``chosen``: its solution
verified) with one attempt of the same round that did not verify (``rejected``). Only real failures
count for DPO (``REJECTED_VERDICTS``: wrong, error, timeout, memory); ``crashed`` (the sandbox lost
the job), ``invalid`` (never ran) and ``flaky`` (verified once but not again: not a wrong answer) say
nothing about the solution and are never rejected. Each
failed attempt (distinct solution hash) appears once, paired with the puzzle's verified solutions in
turn. SPIN (``spin_rows``) takes every sample of the model that is not verified (``invalid`` and
``output`` too: any own sample is a negative there), never ``crashed``.

The prompt is rebuilt exactly as the solve stage built it (``round_solve_prompt``: a pure function of
the run seed, the round, the puzzle and the pairs stored before the round), and ``chosen``/``rejected``
are the two completions after it (each attempt's source minus the prompt's final ``def g..(...):``
line), the columns TRL's DPOTrainer reads. Each row carries its puzzle's weight under the run's
weighting (``factory.loop.weights``); ``weighted_rows`` resamples rows by it for training.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from factory.config import RunConfig
from factory.loop.prompts import ExampleIndex, round_solve_prompt
from factory.loop.weights import NONE, copies, puzzle_weights
from factory.store import GENERATED, RunStore, StoredAttempt, StoredPuzzle
from sandbox.verdicts import CRASHED, ERROR, MEMORY, TIMEOUT, VERIFIED, WRONG

REJECTED_VERDICTS = (WRONG, ERROR, TIMEOUT, MEMORY)
DPO = "dpo"
SPIN = "spin"


@dataclass(frozen=True)
class PreferenceRow:
    prompt: str
    chosen: str  # the completion after ``prompt`` whose solution verified
    rejected: str  # the completion after ``prompt`` whose solution did not
    puzzle: str
    chosen_solution: str  # the whole function, as verified
    rejected_solution: str
    puzzle_hash: str
    rejected_verdict: str
    solve_rate: float  # verified attempts / attempts at the puzzle in its round
    round: int
    model: str | None  # the model that wrote both solutions
    puzzle_id: int
    chosen_attempt_id: int
    rejected_attempt_id: int
    weight: float = 1.0  # the puzzle's weight under the run's weighting (``factory.loop.weights``)

    def to_dict(self) -> dict:
        return asdict(self)


def completion_after(prefix: str, source: str) -> str:
    """The text a model wrote after the prompt's ``prefix`` to give ``source`` (the solve stage stores
    ``complete_function(prefix, completion)``); the whole source when it does not start with it."""
    return source[len(prefix) :] if source.startswith(prefix) else source


def preference_rows(store: RunStore, rounds: Sequence[int] | None = None, kind: str = DPO) -> list[PreferenceRow]:
    """The preference rows of ``rounds`` (default: every round with attempts), in store order, each
    with its puzzle's weight under the run's weighting."""
    recorded = store.config() or {}
    wanted = rounds if rounds is not None else [r.round for r in store.rounds() if r.round > 0]
    weighting = recorded.get("weighting", NONE)
    weights = puzzle_weights(store, max(wanted, default=0), weighting)
    pairs_by_attempt = {p.attempt_id: p for p in store.stored_pairs() if p.attempt_id is not None}
    rows: list[PreferenceRow] = []
    for round in sorted(set(wanted)):
        attempts = store.attempts_of_round(round)
        if not attempts:
            continue
        settings = {**recorded, **(store.round_settings(round) or {})}
        run_seed = settings.get("seed", RunConfig.seed)
        k = settings.get("solve_examples", RunConfig.solve_examples)
        examples = ExampleIndex(store.training_pairs(up_to_round=round - 1))
        by_puzzle: dict[int, list[StoredAttempt]] = defaultdict(list)
        for attempt in attempts:
            by_puzzle[attempt.puzzle_id].append(attempt)
        for puzzle_id, tried in by_puzzle.items():
            puzzle = store.puzzle(puzzle_id)
            if puzzle is None or puzzle.origin != GENERATED or puzzle.round != round:
                continue
            rows += [
                replace(row, weight=weights.get(puzzle_id, 1.0))
                for row in _puzzle_rows(puzzle, tried, pairs_by_attempt, examples, run_seed, round, k, kind)
            ]
    return rows


def weighted_rows(rows: Sequence[PreferenceRow], weighting: str) -> list[PreferenceRow]:
    """``rows`` resampled by their weights as training pairs are (``factory.loop.weights.copies``): each
    row ``copies(row.weight)`` times in a row; unchanged with no weighting."""
    return [row for row in rows for _ in range(copies(row.weight, weighting))]


def _puzzle_rows(
    puzzle: StoredPuzzle,
    tried: list[StoredAttempt],
    pairs_by_attempt: dict,
    examples: ExampleIndex,
    run_seed: int,
    round: int,
    k: int,
    kind: str,
) -> list[PreferenceRow]:
    chosen = [a for a in tried if a.id in pairs_by_attempt]
    if kind == DPO:
        failed = [a for a in tried if a.status in REJECTED_VERDICTS]
    else:
        failed = [a for a in tried if a.status not in (VERIFIED, CRASHED)]
    seen: set[str] = set()
    rejected = [a for a in failed if not (a.solution_hash in seen or seen.add(a.solution_hash))]
    if not chosen or not rejected:
        return []
    prompt, prefix = round_solve_prompt(examples, puzzle.source, puzzle.canonical_hash, run_seed, round, k)
    solve_rate = sum(a.status == VERIFIED for a in tried) / len(tried)
    return [
        PreferenceRow(
            prompt=prompt,
            chosen=completion_after(prefix, good.source),
            rejected=completion_after(prefix, bad.source),
            puzzle=puzzle.source,
            chosen_solution=good.source,
            rejected_solution=bad.source,
            puzzle_hash=puzzle.canonical_hash,
            rejected_verdict=bad.status,
            solve_rate=solve_rate,
            round=round,
            model=bad.model,
            puzzle_id=puzzle.id,
            chosen_attempt_id=good.id,
            rejected_attempt_id=bad.id,
        )
        for i, bad in enumerate(rejected)
        for good in [chosen[i % len(chosen)]]
    ]


def spin_rows(store: RunStore, round: int) -> list[PreferenceRow]:
    """SPIN's rows for training after ``round``: that round's verified solutions preferred over the
    generating model's own other samples of the same prompt."""
    return preference_rows(store, [round], kind=SPIN)
