"""Copying a finished round's work from one run's store into another's (an experiment's arms share
round 1's generation and the base evaluation), batch by batch with the markers, so a killed copy
resumes with the batches it lacks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from factory.errors import UserError
from factory.store.records import (
    ACCEPTED,
    PROPOSE_STAGE,
    SOLVE_STAGE,
    AttemptRow,
    EvalRecord,
    ProposalRow,
    StoredAttempt,
    StoredProposal,
    StoredPuzzle,
    TokenUsage,
)
from factory.store.run_store import RunStore
from sandbox.canaries import CanaryCounts


def copy_evals(records: Iterable[EvalRecord], target: RunStore, dataset: str) -> dict[int, float]:
    """Record ``records`` of ``dataset`` in ``target`` (the same round, model and per-puzzle counts)."""
    copied: dict[int, float] = {}
    for e in records:
        if e.dataset != dataset:
            continue
        target.record_eval(
            round=e.round, model=e.model, dataset=e.dataset, k=e.k, n=e.n, pass_at_k=e.pass_at_k,
            solved=e.solved, total=e.total, details=e.details,
        )
        copied[e.k] = e.pass_at_k
    return copied


def copy_stage(source: RunStore, target: RunStore, round: int, stage: str) -> None:
    """Copy the propose or solve batches of ``round`` from ``source`` (where the round is finished)
    into ``target``, one batch per transaction with its marker, timings and tokens (and the solve
    batches' canary counts): a copy that is killed resumes with the batches it lacks."""
    info = source.round_info(round)
    if info is None or info.finished_at is None:
        raise UserError(f"round {round} of {source.path.parent} is not finished: nothing to copy yet")
    with source.snapshot() as db:
        batches = db.execute(
            "SELECT batch, timings_json, tokens, prompt_tokens, tokens_counted_by FROM batches "
            "WHERE round = ? AND stage = ? ORDER BY batch",
            (round, stage),
        ).fetchall()
        canaries = {
            row[0]: CanaryCounts(*row[1:])
            for row in db.execute(
                "SELECT batch, cheats, cheats_passed, good, good_failed FROM canaries WHERE round = ? AND stage = ?",
                (round, stage),
            )
        }
        proposals = source.proposals_of_round(round)
        attempts = source.attempts_of_round(round)
        puzzles = {p.id: p for p in source.puzzles_of_round(round)}
    if stage == SOLVE_STAGE:
        ids = {p.canonical_hash: p.id for p in target.puzzles_of_round(round)}
        new_id = {old: ids[p.canonical_hash] for old, p in puzzles.items()}
    for batch, timings_json, tokens, prompt_tokens, counted_by in batches:
        if target.is_batch_done(round, stage, batch):
            continue
        timings = json.loads(timings_json)
        usage = TokenUsage(prompt_tokens, tokens, counted_by) if counted_by is not None else None
        if stage == PROPOSE_STAGE:
            rows = [proposal_row(p, puzzles) for p in proposals if p.batch == batch]
            target.record_proposals(round, batch, rows, timings=timings, tokens=tokens, usage=usage)
        else:
            chosen = [a for a in attempts if a.batch == batch]
            target.record_attempts(
                round, batch, [attempt_row(a, new_id[a.puzzle_id]) for a in chosen],
                timings=timings, tokens=tokens, usage=usage, canaries=canaries.get(batch),
            )


def proposal_row(p: StoredProposal, puzzles: Mapping[int, StoredPuzzle]) -> ProposalRow:
    if p.status == ACCEPTED:
        assert p.puzzle_id is not None
        stored = puzzles[p.puzzle_id]
        return ProposalRow(p.idx, p.raw, p.status, p.reason, p.prompt_seed, stored.puzzle, stored.canonical_hash,
                           p.origin, p.parent)
    return ProposalRow(p.idx, p.raw, p.status, p.reason, p.prompt_seed, origin=p.origin, parent=p.parent)


def attempt_row(a: StoredAttempt, puzzle_id: int) -> AttemptRow:
    return AttemptRow(puzzle_id, a.idx, a.source, a.status, a.seconds, a.detail, a.prompt_seed, a.solution_hash)
