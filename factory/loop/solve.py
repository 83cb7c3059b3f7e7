"""The solve stage: solve prompts for the round's accepted puzzles, the model's attempts, verified in
the sandbox with the batch's canaries, stored batch by batch (an arm with a reference copies round 1's
batches from it instead)."""

from __future__ import annotations

import math
import random
import time

from factory.config import RunConfig
from factory.errors import VerifierError
from factory.loop.context import RunContext, batch_progress, generator_for, sampling_for
from factory.loop.prompts import ExampleIndex, round_solve_prompt
from factory.loop.seeds import seed_of
from factory.models.base import function_sources, token_usage
from factory.store import SOLVE_STAGE, AttemptRow, RunStore
from factory.store.copy import copy_stage
from sandbox.canaries import Canary, CanaryFlip, draw
from sandbox.canaries import check as check_canaries
from sandbox.verify import SourcePair, verify_pairs


def canaries_for(run_seed: int, round: int, batch: int) -> list[Canary]:
    """The canary pairs verified with solve batch ``batch`` of ``round`` (two cheats, one good pair)."""
    return draw(random.Random(f"{run_seed}:{round}:canaries:{batch}"))


def solve(ctx: RunContext, round: int, model: str, c: RunConfig) -> None:
    """Store the verified attempts of every solve batch of ``round`` not yet done."""
    if round == 1 and ctx.arm.copies_round_one:
        with RunStore.open(ctx.arm.reference, create=False) as source:
            copy_stage(source, ctx.store, round, SOLVE_STAGE)
        return
    puzzles = ctx.store.puzzles_of_round(round)
    batches = math.ceil(len(puzzles) / c.batch_size)
    todo = [b for b in range(batches) if not ctx.store.is_batch_done(round, SOLVE_STAGE, b)]
    if not todo:
        return
    examples = ExampleIndex(ctx.store.training_pairs(up_to_round=round - 1))
    backend = ctx.models.backend(generator_for(c, "solve", model), c)
    for b in batch_progress(ctx, todo, f"round {round} solve"):
        chunk = puzzles[b * c.batch_size : (b + 1) * c.batch_size]
        prompts, prefixes = [], []
        for stored in chunk:
            prompt, prefix = round_solve_prompt(
                examples, stored.source, stored.canonical_hash, c.seed, round, c.solve_examples
            )
            prompts.append(prompt)
            prefixes.append(prefix)
        t0 = time.perf_counter()
        sampling = sampling_for(c, c.attempts, seed_of(c.seed, round, "solve", b), c.temperature)
        outputs = ctx.models.generate(backend, prompts, sampling)
        t1 = time.perf_counter()
        sources = function_sources(backend.name, prefixes, outputs)
        pairs = [SourcePair(stored.source, g) for stored, gs in zip(chunk, sources, strict=True) for g in gs]
        canaries = canaries_for(c.seed, round, b)
        verdicts = verify_pairs(pairs + [SourcePair(k.f, k.g) for k in canaries], ctx.sandbox, c.timeout_s)
        try:
            canary_counts = check_canaries(canaries, verdicts[len(pairs) :])
        except CanaryFlip as e:
            raise VerifierError(f"round {round} solve batch {b}: {e}") from None
        rows = []
        for p_index, stored in enumerate(chunk):
            for j, g in enumerate(sources[p_index]):
                v = verdicts[p_index * c.attempts + j]
                rows.append(AttemptRow(stored.id, j, g, v.status, v.seconds, v.detail, prompt_seed=j))
        timings = {"solve.generate": t1 - t0, "solve.verify": time.perf_counter() - t1}
        ctx.store.record_attempts(
            round, b, rows, timings=timings, usage=token_usage(outputs), canaries=canary_counts
        )
