"""The evaluate stage: a model's pass@k on the run's evaluation set, recorded once per round (round 0:
the base model; an arm with a reference copies the base evaluation from it)."""

from __future__ import annotations

from factory.config import RunConfig
from factory.loop.context import RunContext, student_of
from factory.loop.evaluate import eval_settings, evaluate
from factory.store import RunStore
from factory.store.copy import copy_evals

EVAL_STAGE = "eval"


def evaluate_model(ctx: RunContext, round: int, model: str, c: RunConfig) -> dict[int, float]:
    """``model``'s pass@k for ``round`` (recorded; a no-op when every k is recorded already)."""
    settings = eval_settings(c)
    recorded = {e.k: e.pass_at_k for e in ctx.store.evals(round) if e.dataset == ctx.eval.name}
    if settings.ks and all(k in recorded for k in settings.ks):
        return recorded
    puzzles = ctx.eval.evaluated(c.eval_limit)
    ctx.log(f"round {round}: evaluating {model} on {ctx.eval.name} ({len(puzzles)} puzzles x {c.eval_samples})")
    result = evaluate(
        ctx.models.backend(student_of(c, model), c), puzzles, ctx.seeds.pairs, ctx.sandbox, ctx.eval.name, settings,
        before_batch=ctx.before_step,
    )
    if round > 0:  # round 0 (the base model) has no rounds row to hang a marker on
        timings = {f"eval.{k}": v for k, v in result.seconds.items()}
        ctx.store.mark_batch_done(round, EVAL_STAGE, 0, result.total, timings=timings, tokens=result.tokens)
    for k, value in result.pass_at_k.items():
        ctx.store.record_eval(
            round=round, model=model, dataset=ctx.eval.name, k=k, n=c.eval_samples, pass_at_k=value,
            solved=result.solved_puzzles, total=result.total,
            details={"solved": result.solved, "first_verified": result.first_verified},
        )
    return result.pass_at_k


def evaluate_base(ctx: RunContext) -> dict[int, float]:
    """Round 0: the base model's pass@k, measured once per run (copied from the arm's reference)."""
    if ctx.arm.reference is not None:
        with RunStore.open(ctx.arm.reference, create=False) as source:
            copied = copy_evals(source.evals(0), ctx.store, ctx.eval.name)
        if copied:
            return copied
    return evaluate_model(ctx, 0, ctx.base_model, ctx.config)
