"""What a round fine-tunes on, by arm: texts for sft, preference rows for dpo and spin, solve prompts for grpo.

- the recipe (every run, and the verified arm and its objective and weighting arms): seeds plus every
  verified pair so far as solve blocks (resampled by ``RunConfig.weighting``), then ``len(pairs) // 3``
  listings of the pool (resampled by ``RunConfig.proposer_weighting``), so the model keeps learning to
  propose;
- ``unverified``: seeds plus the same generated puzzles and attempts with the verdicts ignored: every
  attempt whose source parses, deduplicated and capped per puzzle by the select stage's own rule
  (``choose_pairs``: the ``max_pairs_per_puzzle`` shortest distinct), verified or not (the ablation of
  Haluptzok et al. 2023);
- ``seeds-only``: the seed pairs alone.
Each arm's pairs, and the pool its listings are drawn from, then repeat the seeds up to
``RunConfig.seed_share`` of them (``weights.with_seed_share``), and go through the same ``training_texts``.
"""

from __future__ import annotations

import random
from dataclasses import replace
from itertools import islice

from factory.config import RunConfig
from factory.loop.arms import SEEDS_ONLY_ARM, UNVERIFIED_ARM
from factory.loop.context import RunContext
from factory.loop.corpus import training_texts
from factory.loop.preferences import DPO, SPIN, preference_rows, round_solve_prompt, weighted_rows
from factory.loop.prompts import ExampleIndex, training_example
from factory.loop.proposer_reward import listing_pool
from factory.loop.select import choose_pairs
from factory.loop.weights import weighted_pairs, with_seed_share
from factory.store import RunStore, StoredAttempt
from puzzles.source import parses
from sandbox.verdicts import VERIFIED


def unverified_attempts(store: RunStore, round: int, max_per_puzzle: int) -> list[StoredAttempt]:
    """The attempts of ``round`` the unverified arm keeps: those that parse, chosen by the select
    stage's rule as if every one were verified (distinct, shortest first, ``max_per_puzzle`` a puzzle),
    in its order (puzzle by puzzle), with their own verdicts."""
    attempts = {a.id: a for a in store.attempts_of_round(round) if parses(a.source)}
    as_if_verified = [replace(a, status=VERIFIED) for a in attempts.values()]
    return [attempts[a.id] for a in choose_pairs(as_if_verified, {}, max_per_puzzle)]


def control_data(
    store: RunStore, round: int, arm: str, max_per_puzzle: int
) -> tuple[list[tuple[str, str]], list[str]]:
    """(pairs, listing pool) of a control arm (unverified or seeds-only) up to ``round``: the seed
    pairs, plus for the unverified arm the ``unverified_attempts`` of every round so far."""
    pairs = store.training_pairs(up_to_round=0)
    pool = [p.source for p in store.pool_puzzles(up_to_round=0)]
    if arm == SEEDS_ONLY_ARM:
        return pairs, pool
    if arm != UNVERIFIED_ARM:
        raise ValueError(f"{arm!r} is not a control arm")
    for r in range(1, round + 1):
        attempts = unverified_attempts(store, r, max_per_puzzle)
        sources = {p.id: p.source for p in store.puzzles_of_round(r)}
        pairs += [(sources[a.puzzle_id], a.source) for a in attempts]
        pool += [sources[i] for i in sorted({a.puzzle_id for a in attempts})]
    return pairs, pool


def sft_texts(ctx: RunContext, round: int, c: RunConfig) -> list[str]:
    """The sft texts of ``round`` for the context's arm (see the module docstring)."""
    if ctx.arm.is_control:
        pairs, pool = control_data(ctx.store, round, ctx.arm.name, c.max_pairs_per_puzzle)
    else:
        pairs = weighted_pairs(ctx.store, round, c.weighting)
        pool = listing_pool(ctx.store, round, c.proposer_weighting)
    rng = random.Random(f"{c.seed}:{round}:listings")
    listings = len(pairs) // 3
    pairs = with_seed_share(pairs, ctx.store.training_pairs(up_to_round=0), c.seed_share)
    pool = with_seed_share(pool, [p.source for p in ctx.store.pool_puzzles(up_to_round=0)], c.seed_share)
    return training_texts(pairs, pool, listings, c.propose_examples, rng)


def preference_data(ctx: RunContext, round: int, c: RunConfig) -> list[dict]:
    """The preference rows ``round`` trains on (none for sft): the round's dpo rows (spin's for spin),
    resampled by their puzzle's weight under ``c.weighting``."""
    if c.objective == "sft":
        return []
    rows = preference_rows(ctx.store, [round], kind=SPIN if c.objective == SPIN else DPO)
    return [r.to_dict() for r in weighted_rows(rows, c.weighting)]


def grpo_rows(ctx: RunContext, round: int, c: RunConfig) -> list[dict]:
    """The solve prompts grpo trains on in ``round``: one per puzzle accepted in the round and per seed
    puzzle (distinct canonical forms), built as the solve stage builds them (``prompt``, the ``prefix`` it
    ends with, and the ``puzzle`` the sandbox verifies the sample against)."""
    examples = ExampleIndex(ctx.store.training_pairs(up_to_round=round - 1))
    puzzles = {p.canonical_hash: p for p in ctx.store.pool_puzzles(up_to_round=0) + ctx.store.puzzles_of_round(round)}
    rows = []
    for stored in puzzles.values():
        prompt, prefix = round_solve_prompt(examples, stored.source, stored.canonical_hash, c.seed, round, c.solve_examples)
        rows.append({"prompt": prompt, "prefix": prefix, "puzzle": stored.source})
    return rows


def information_probes(store: RunStore, round: int, run_seed: int) -> dict[str, list[str]]:
    """The texts whose loss under the base model measures what ``round`` adds (``probe_loss`` of the
    checkpoint's ``training.json``): its new verified pairs, and as many seed pairs (a seeded sample)."""
    new = [(p.puzzle_source, p.solution_source) for p in store.stored_pairs(round) if p.round == round]
    if not new:
        return {}
    seeds = store.training_pairs(up_to_round=0)
    sample = random.Random(f"{run_seed}:{round}:probes").sample(seeds, min(len(seeds), max(len(new), 32)))
    return {"round": [training_example(f, g) for f, g in new], "seeds": [training_example(f, g) for f, g in sample]}


HELD_OUT_PROBES = 512  # evaluation puzzles whose reference pair is a held-out probe, at most


def held_out_probes(ctx: RunContext, c: RunConfig) -> list[str]:
    """The evaluation puzzles' reference pairs as solve blocks (the first ``HELD_OUT_PROBES`` of those
    evaluated that have one): their loss before and after training is the round's held-out loss. Only
    a loss is measured on them; they are never trained on."""
    with_solution = (p for p in ctx.eval.evaluated(c.eval_limit) if p.solutions)
    return [training_example(p.puzzle.source, p.solutions[0].source) for p in islice(with_solution, HELD_OUT_PROBES)]
