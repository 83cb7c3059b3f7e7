"""The parts of an evaluation set and pass@k on each, so a reader sees where a gain is.

The held-out seeds (``seeds-test``) hold two kinds of puzzle: a fresh instance of every training
family (its last, never trained on: can the model read new constants of a family it knows?) and every
instance of the held-out families (never seen at all: does it read a new puzzle?). Other sets have
no parts."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from factory.loop.confidence import pass_at_k_interval, per_puzzle_pass_at_k, puzzle_counts, rounded
from factory.loop.corpus import SEED_EVAL
from factory.store import EvalRecord

FRESH_INSTANCES = "fresh instances of training families"
HELD_OUT_FAMILIES = "held-out families"


@functools.lru_cache(maxsize=1)
def _seed_eval_parts() -> dict[str, frozenset[str]]:
    from puzzles.seeds import held_out_families, load_seeds

    held_out = held_out_families()
    test = load_seeds("test")
    return {
        FRESH_INSTANCES: frozenset(s.key for s in test if s.family not in held_out),
        HELD_OUT_FAMILIES: frozenset(s.key for s in test if s.family in held_out),
    }


def eval_parts(dataset: str) -> dict[str, frozenset[str]]:
    """Part name -> puzzle keys of ``dataset``; empty for a set without parts."""
    return _seed_eval_parts() if dataset == SEED_EVAL else {}


def part_pass_at_k(
    records: Sequence[EvalRecord], dataset: str, intervals: bool = True
) -> dict[str, dict[str, object]]:
    """For each part of ``dataset``: its puzzle count, and pass@k (with its 95% bootstrap interval
    unless ``intervals`` is False) per k, from the per-puzzle counts the evaluations of ``records``
    keep (``details["solved"]``)."""
    parts = eval_parts(dataset)
    out: dict[str, dict[str, object]] = {}
    for e in records:
        solved = puzzle_counts(e)
        if e.dataset != dataset:
            continue
        for part, keys in parts.items():
            counts = {key: c for key, c in solved.items() if key in keys}
            if not counts:
                continue
            values = per_puzzle_pass_at_k(counts, e.n, e.k)
            entry = out.setdefault(part, {"puzzles": len(counts), "pass_at_k": {}, "pass_at_k_ci": {}})
            entry["pass_at_k"][str(e.k)] = round(sum(values.values()) / len(values), 4)
            if intervals:
                entry["pass_at_k_ci"][str(e.k)] = rounded(pass_at_k_interval(counts, e.n, e.k))
    return out
