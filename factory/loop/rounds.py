"""A self-play round as a sequence of stages over a ``RunContext``, and the loop of rounds.

propose -> solve -> select -> train -> evaluate. Every stage reads its input from the run's store and
writes its output there in batches, each batch in one transaction with its completion marker. The
settings a round runs with are recorded when it starts and a resumed round runs with those, whatever
the command line or config file says now (the new values apply from the next round): the batches that
partition its work never change. Prompts depend only on the run seed, the round and the item; sampling
seeds on the run seed, the round and the batch. So a round that was killed and rerun redoes exactly the
unfinished batches and ends with the same store as a round that was never interrupted.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TypeVar

from factory.config import BEFORE_SETTING, RunConfig
from factory.loop.context import RunContext, generator_for, student_of
from factory.loop.evaluation import evaluate_base, evaluate_model
from factory.loop.propose import propose
from factory.loop.select import select_pairs
from factory.loop.solve import solve
from factory.loop.summary import format_summary, round_summary
from factory.loop.training import train
from sandbox.backend import log_to_stderr

# Settings a resumed round takes from the current config rather than from its start: where the model
# is served, not what the round does.
CURRENT_SETTINGS = ("base_url",)
T = TypeVar("T")


def select(ctx: RunContext, round: int, c: RunConfig) -> int:
    """The select stage (``factory.loop.select``): the round's verified attempts become pairs."""
    return select_pairs(ctx.store, round, c.max_pairs_per_puzzle)


@dataclass(frozen=True)
class Stages:
    """The stage functions a round runs, in order (tests replace one to stop a round there)."""

    propose: Callable[[RunContext, int, str, RunConfig], None] = propose
    solve: Callable[[RunContext, int, str, RunConfig], None] = solve
    select: Callable[[RunContext, int, RunConfig], int] = select
    train: Callable[[RunContext, int, RunConfig], str] = train
    evaluate: Callable[[RunContext, int, str, RunConfig], dict[int, float]] = evaluate_model


ROUND_STAGES = Stages()


def round_config(started_with: dict | None, current: RunConfig) -> RunConfig:
    """The settings a round runs with: those recorded at its start (``current`` for a round started
    before settings were recorded), with the ``CURRENT_SETTINGS`` taken from ``current``."""
    if started_with is None:
        return current
    # a setting the round's record predates ran with its old value, not today's default
    predates = {name: value for name, value in BEFORE_SETTING.items() if name not in started_with}
    data = {**current.to_json(), **predates, **started_with}
    data.update({name: getattr(current, name) for name in CURRENT_SETTINGS})
    return RunConfig.from_json(data)


def start_round(ctx: RunContext, round: int) -> tuple[str, RunConfig]:
    """Record ``round`` as started (model and settings, kept from its first start); returns the model
    it generates with and the settings it runs with."""
    current = ctx.config.to_json()
    started = ctx.store.start_round(round, ctx.model_for_round(round), settings=current)
    c = round_config(ctx.store.round_settings(round), ctx.config)
    kept = c.to_json()
    changed = [f"{name}={kept[name]!r}" for name, value in current.items() if kept.get(name) != value]
    if changed:
        ctx.log(
            f"round {round} resumes with the settings it started with ({', '.join(changed)}); "
            f"the new values apply from round {round + 1}"
        )
    return started.model, c


def run_round(ctx: RunContext, round: int, stages: Stages = ROUND_STAGES) -> dict:
    """Run (or resume) ``round`` through ``stages``; returns its summary, also written to
    ``RUN_DIR/rounds/round-N.json``."""
    model, c = start_round(ctx, round)
    started = time.perf_counter()
    ctx.log(f"round {round}: generating with {model}")
    stages.propose(ctx, round, model, c)
    stages.solve(ctx, round, model, c)
    stages.select(ctx, round, c)
    trained = stages.train(ctx, round, c) if c.train else None
    pass_at_k = stages.evaluate(ctx, round, trained or model, c)
    models = {
        "propose": asdict(generator_for(c, "propose", model)),
        "solve": asdict(generator_for(c, "solve", model)),
        "student": asdict(student_of(c, model)),
        "evaluated": trained or model,
    }
    seconds = time.perf_counter() - started
    summary = round_summary(ctx.store, round, model, ctx.eval.name, pass_at_k, seconds, c.prices(), models)
    ctx.store.finish_round(round, summary)
    write_summary(ctx, round, summary)
    return summary


def write_summary(ctx: RunContext, round: int, summary: dict) -> None:
    path = ctx.run_dir / "rounds" / f"round-{round}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".partial")
    temporary.write_text(json.dumps(summary, indent=2))
    temporary.replace(path)


class RoundEvents:
    """What ``run_rounds`` tells its caller; the default prints the summaries to stderr (the CLI's)."""

    def base_evaluated(self, pass_at_k: dict[int, float]) -> None:
        log_to_stderr("round 0 (base model): " + ", ".join(f"pass@{k} {v:.3f}" for k, v in pass_at_k.items()))

    def round_started(self, round: int, model: str) -> None:
        pass

    def round_finished(self, summary: dict) -> None:
        log_to_stderr(format_summary(summary))


def run_rounds(
    ctx: RunContext,
    stop_reason: Callable[[RunContext], str | None],
    events: RoundEvents | None = None,
    attempt: Callable[[Callable[[], T]], T] = lambda step: step(),
    stages: Stages = ROUND_STAGES,
) -> str:
    """The loop shared by `factory round/run`, `factory experiment` and the daemon: evaluate the base
    model once (a no-op when the store has it), then run rounds until ``stop_reason(ctx)`` gives a
    reason, which is returned. ``attempt`` runs each evaluation and round (the daemon's retries it after
    a sandbox outage)."""
    events = events or RoundEvents()
    if (reason := stop_reason(ctx)) is not None:
        return reason
    events.round_started(0, ctx.base_model)
    events.base_evaluated(attempt(functools.partial(evaluate_base, ctx)))
    while (reason := stop_reason(ctx)) is None:
        number = ctx.next_round()
        events.round_started(number, ctx.model_for_round(number))
        events.round_finished(attempt(functools.partial(run_round, ctx, number, stages)))
    return reason


def rounds_finished(target: int) -> Callable[[RunContext], str | None]:
    """A ``stop_reason``: stop once ``target`` rounds are finished."""
    return lambda ctx: f"{target} rounds are finished" if ctx.finished_rounds() >= target else None
