"""The parts of an evaluation set and pass@k on each, so a reader sees where a gain is.

The built-in evaluations hold two kinds of puzzle. ``task-test`` (the default regime's): the task
families' instances that are not seeds (can the model solve new constants of the families it was given
a few seeds of?) and every instance of the held-out families (never seen at all: does it read a new
puzzle?). ``seeds-test`` (``builtin-augmented``'s): a fresh instance of every training family (its last,
never trained on) and the held-out families. Other sets have no parts."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from factory.loop.confidence import pass_at_k_interval, per_puzzle_pass_at_k, puzzle_counts, rounded
from factory.loop.corpus import BUILTIN_EVALS, SEED_EVAL, builtin_seeds
from factory.store import EvalRecord

FRESH_INSTANCES = "fresh instances of training families"
TASK_INSTANCES = "fresh instances of task families"
HELD_OUT_FAMILIES = "held-out families"


@functools.lru_cache(maxsize=2)
def _builtin_eval_parts(dataset: str) -> dict[str, frozenset[str]]:
    from puzzles.seeds import held_out_families

    fresh = FRESH_INSTANCES if dataset == SEED_EVAL else TASK_INSTANCES
    held_out = held_out_families()
    test = builtin_seeds(BUILTIN_EVALS[dataset], "test")
    return {
        fresh: frozenset(s.key for s in test if s.family not in held_out),
        HELD_OUT_FAMILIES: frozenset(s.key for s in test if s.family in held_out),
    }


def eval_parts(dataset: str) -> dict[str, frozenset[str]]:
    """Part name -> puzzle keys of ``dataset``; empty for a set without parts."""
    return _builtin_eval_parts(dataset) if dataset in BUILTIN_EVALS else {}


def part_pass_at_k(
    records: Sequence[EvalRecord], dataset: str, intervals: bool = True
) -> dict[str, dict[str, object]]:
    """For each part of ``dataset``: its puzzle count, and pass@k (with its 95% bootstrap interval
    unless ``intervals`` is False) per k, from the per-puzzle counts the evaluations of ``records``
    keep (``details["solved"]``)."""
    out: dict[str, dict[str, object]] = {}
    for e in records:
        if e.dataset == dataset:
            add_parts(out, puzzle_counts(e), e.n, e.k, dataset, intervals)
    return out


def add_parts(
    out: dict[str, dict[str, object]],
    solved: dict[str, int],
    n: int,
    k: int,
    dataset: str,
    intervals: bool = True,
) -> dict[str, dict[str, object]]:
    """Add pass@``k`` of each part of ``dataset`` to ``out`` (the shape ``part_pass_at_k`` returns),
    from ``solved`` (puzzle key -> verified samples of ``n``); returns ``out``."""
    for part, keys in eval_parts(dataset).items():
        counts = {key: c for key, c in solved.items() if key in keys}
        if not counts:
            continue
        values = per_puzzle_pass_at_k(counts, n, k)
        entry = out.setdefault(part, {"puzzles": len(counts), "pass_at_k": {}, "pass_at_k_ci": {}})
        entry["pass_at_k"][str(k)] = round(sum(values.values()) / len(values), 4)
        if intervals:
            entry["pass_at_k_ci"][str(k)] = rounded(pass_at_k_interval(counts, n, k))
    return out
