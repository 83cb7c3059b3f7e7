"""The propose stage: few-shot prompts from the pool, the model's proposals and seed variants
(``RunConfig.variant_share`` of the items, from round ``variants_from_round``), the filters' verdicts,
stored batch by batch (an arm with a reference copies round 1's batches from it instead)."""

from __future__ import annotations

import math
import random
import time
from dataclasses import replace

from factory.config import RunConfig
from factory.errors import UserError
from factory.loop.context import RunContext, batch_progress, generator_for, sampling_for
from factory.loop.filter import filter_proposals
from factory.loop.prompts import propose_prompt
from factory.loop.seeds import seed_of
from factory.loop.weights import with_seed_share
from factory.models.base import function_sources, token_usage
from factory.store import PROPOSE_STAGE, VARIANT, RunStore
from factory.store.copy import copy_stage
from puzzles.variants import literal_variant


def propose(ctx: RunContext, round: int, model: str, c: RunConfig) -> None:
    """Store the filtered proposals of every propose batch of ``round`` not yet done."""
    if round == 1 and ctx.arm.copies_round_one:
        ctx.log(f"round 1: copying the proposals and attempts of {ctx.arm.reference} (no generation)")
        with RunStore.open(ctx.arm.reference, create=False) as source:
            copy_stage(source, ctx.store, round, PROPOSE_STAGE)
        return
    if round > 1 and not ctx.arm.generates_later:
        ctx.log(f"round {round}: the {ctx.arm.name} arm trains on no generated pair: no generation")
        return
    batches = math.ceil(c.puzzles / c.batch_size)
    todo = [b for b in range(batches) if not ctx.store.is_batch_done(round, PROPOSE_STAGE, b)]
    if not todo:
        return
    pool = [p.source for p in ctx.store.pool_puzzles(up_to_round=round - 1)]
    if not pool:
        raise UserError("the seed pool is empty: nothing to show the model as examples")
    # the seeds keep their share of the examples, or later rounds imitate earlier rounds' puzzles alone
    seeds = [(p.key or "", p.source) for p in ctx.store.pool_puzzles(up_to_round=0)]
    pool = with_seed_share(pool, [source for _, source in seeds], c.seed_share)
    backend = ctx.models.backend(generator_for(c, "propose", model), c)
    share = c.variant_share if round >= c.variants_from_round else 0.0
    for b in batch_progress(ctx, todo, f"round {round} propose"):
        indices = range(b * c.batch_size, min((b + 1) * c.batch_size, c.puzzles))
        variants = {i: v for i in indices if is_variant(i, share) and (v := seed_variant(seeds, c, round, i))}
        asked = [i for i in indices if i not in variants]
        prompts, prefixes = [], []
        for i in asked:
            prompt, prefix = propose_prompt(pool, random.Random(f"{c.seed}:{round}:propose:{i}"), c.propose_examples)
            prompts.append(prompt)
            prefixes.append(prefix)
        t0 = time.perf_counter()
        sampling = sampling_for(c, 1, seed_of(c.seed, round, "propose", b), c.propose_temperature)
        outputs = ctx.models.generate(backend, prompts, sampling) if prompts else []
        t1 = time.perf_counter()
        written = dict(zip(asked, (sources[0] for sources in function_sources(backend.name, prefixes, outputs)), strict=True))
        raws = [variants[i][1] if i in variants else written[i] for i in indices]
        rows = filter_proposals(list(indices), raws, ctx.store.known_hashes(), ctx.eval.index, ctx.sandbox, c.timeout_s)
        rows = [replace(r, origin=VARIANT, parent=variants[r.idx][0]) if r.idx in variants else r for r in rows]
        timings = {"propose.generate": t1 - t0, "propose.filter": time.perf_counter() - t1}
        ctx.store.record_proposals(round, b, rows, timings=timings, usage=token_usage(outputs))


def is_variant(item: int, share: float) -> bool:
    """Whether item ``item`` of a round is a seed variant: ``share`` of the items, spread evenly."""
    return math.floor((item + 1) * share) > math.floor(item * share)


# A seed with no number or string in its default arguments has no variant: try another.
VARIANT_TRIES = 8


def seed_variant(seeds: list[tuple[str, str]], c: RunConfig, round: int, item: int) -> tuple[str, str] | None:
    """(parent key, source) of item ``item``'s seed variant, reproduced from the run seed; None when the
    seeds it drew have none (the model proposes that item instead)."""
    rng = random.Random(f"{c.seed}:{round}:variant:{item}")
    for _ in range(min(VARIANT_TRIES, len(seeds))):
        key, source = seeds[rng.randrange(len(seeds))]
        if (variant := literal_variant(source, rng)) is not None:
            return key, variant
    return None
