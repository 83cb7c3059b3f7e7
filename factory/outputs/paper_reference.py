"""A run's P3 figure beside the paper's published ones (``factory.loop.paper``): the rows that the
report and the dataset card both show when the run evaluated on P3."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from factory.loop.paper import NOT_COMPARABLE, PAPER_DATASET, PAPER_PROBLEMS, PUBLISHED, PUBLISHED_SOURCE

P3_PREFIX = "p3-"


class EvalLike(Protocol):
    """What is read of an evaluation record (``factory.store.EvalRecord``, the card's ``EvalFacts``)."""

    round: int
    dataset: str
    n: int
    solved: int | None
    total: int | None


@dataclass(frozen=True)
class P3Row:
    who: str  # "this run, round 0 (base model)" or the published model and stage
    dataset: str
    solved: float
    total: int
    samples: int | None  # attempts per puzzle (None: as published)
    published: bool


def p3_rows(evals: Iterable[EvalLike]) -> list[P3Row]:
    """One row per round and P3 set the run evaluated on (problems solved with any of its n samples),
    then the published figures; no rows at all when the run never evaluated on P3."""
    seen: dict[tuple[int, str], P3Row] = {}
    for e in evals:
        if not e.dataset.startswith(P3_PREFIX) or e.solved is None or not e.total:
            continue
        who = "this run, round 0 (base model)" if e.round == 0 else f"this run, round {e.round}"
        seen[(e.round, e.dataset)] = P3Row(who, e.dataset, e.solved, e.total, e.n, False)
    if not seen:
        return []
    published = [
        P3Row(f"published: {f.model}, {f.stage}", PAPER_DATASET, f.solved, f.total, None, True) for f in PUBLISHED
    ]
    return [seen[key] for key in sorted(seen)] + published


def p3_note(rows: Iterable[P3Row]) -> str:
    """What the comparison means, and where this run's set differs from the paper's."""
    own = [r for r in rows if not r.published]
    note = (
        f"The published figures ({PUBLISHED_SOURCE}) are problems of the paper's test set solved, as its "
        f"authors report them (P3's test split, each problem's first instance: {PAPER_PROBLEMS} puzzles); this "
        f"run's rows count problems solved with any of its n samples. {NOT_COMPARABLE}"
    )
    if any(r.dataset != PAPER_DATASET or r.total != PAPER_PROBLEMS for r in own):
        note += f" This run's P3 set is not the paper's {PAPER_PROBLEMS} problems (another split, every instance, or a limit)."
    return note
