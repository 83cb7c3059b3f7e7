"""The train stage: each objective is a plan of passes (what to train on, from and against which model,
for how many steps), and one function carries a plan out.

- sft: one sft pass over the seeds plus every verified pair so far (``training_data.sft_texts``), from
  the base model (the previous round's with ``incremental``);
- dpo: one preference pass over the round's preference rows, from and against the model that generated
  them; spin: the same over its own rows (verified solutions over the generating model's samples);
- sft+dpo: an sft pass into ``round-N-sft``, then a dpo pass from and against that checkpoint; with fixed
  steps the dpo pass takes up to half of them (``preference_steps``);
- grpo: one GRPO pass from the generating model over solve prompts of the round's accepted puzzles and
  the seeds (``training_data.grpo_rows``), rewarded by the sandbox's verdicts (``factory.rewards``).
dpo and spin always train their own epochs over their rows: an experiment's fixed steps over a round's
few preference rows are many epochs of DPO, which over-optimises (measured: 166 steps on 14 pairs took
pass@1 from 0.157 to 0.021). With a weighting the rows are resampled by their puzzle's weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from factory.config import RunConfig
from factory.errors import UserError
from factory.loop.context import RunContext
from factory.loop.preferences import DPO, SPIN
from factory.loop.prompts import STOP_SEQUENCES
from factory.loop.seeds import seed_of
from factory.loop.training_data import (
    grpo_rows,
    held_out_probes,
    information_probes,
    preference_data,
    sft_texts,
)
from factory.models.grpo_trainer import GrpoSettings
from factory.models.steps import HELD_OUT, optimizer_steps, read_training_facts
from factory.store import RunStore

TRAIN_STAGE = "train"
SFT = "sft"
SFT_DPO = "sft+dpo"
GRPO = "grpo"


@dataclass(frozen=True)
class TrainingPass:
    """One fine-tuning run: ``kind`` sft (over texts), dpo (over preference rows, against a reference
    model) or grpo (over solve prompts), saved in ``out_dir``; ``steps`` None: the epochs decide."""

    kind: str
    out_dir: Path
    steps: int | None


@dataclass(frozen=True)
class TrainingPlan:
    """What a round trains on, and its passes in order (none: the round is not trained)."""

    texts: list[str]
    rows: list[dict]
    passes: tuple[TrainingPass, ...]
    examples: int  # what the checkpoint record counts: texts (sft, sft+dpo), preference rows or solve prompts (grpo)


def preference_steps(objective: str, rows: int, epochs: float, steps: int | None) -> int:
    """The optimizer steps of a round's preference pass over ``rows`` rows: dpo and spin take
    ``epochs`` over their own rows whatever ``steps`` (fixed steps, e.g. an experiment's verified arm's)
    say; sft+dpo's pass takes half of fixed ``steps``, never more than its rows' own epochs."""
    own = optimizer_steps(rows, epochs)
    return own if objective in (DPO, SPIN) or steps is None else min(own, steps // 2)


def fixed_steps(ctx: RunContext, round: int, c: RunConfig, texts: list[str]) -> int | None:
    """The steps of ``round``'s sft training: None in a plain run (the epochs decide); in an
    experiment, the verified arm's recipe's (``optimizer_steps`` over its texts), read by the other
    arms from its checkpoint."""
    if not ctx.arm.equal_steps:
        return None
    if ctx.arm.reference is None:
        return optimizer_steps(len(texts), c.epochs)
    with RunStore.open(ctx.arm.reference, create=False) as source:
        checkpoint = source.checkpoint(round)
    if checkpoint is None:
        raise UserError(
            f"round {round} of {ctx.arm.name}: the verified arm ({ctx.arm.reference}) has not trained "
            "that round yet, and its steps set this arm's"
        )
    facts = read_training_facts(checkpoint.path)
    return int(facts.total_steps) if facts else optimizer_steps(checkpoint.examples, c.epochs)


def training_plan(ctx: RunContext, round: int, c: RunConfig, steps: int | None = None) -> TrainingPlan:
    """``round``'s plan under ``c.objective`` (see the module docstring); ``steps``: the steps of the sft
    and sft+dpo passes together (default: ``fixed_steps``)."""
    out_dir = ctx.run_dir / "checkpoints" / f"round-{round}"
    if c.objective == GRPO:
        prompts = grpo_rows(ctx, round, c)
        steps = steps if steps is not None else fixed_steps(ctx, round, c, [])
        return TrainingPlan([], prompts, (TrainingPass(GRPO, out_dir, steps),), len(prompts))
    rows = preference_data(ctx, round, c)
    if c.objective in (DPO, SPIN):
        passes = (TrainingPass(DPO, out_dir, preference_steps(c.objective, len(rows), c.epochs, None)),) if rows else ()
        return TrainingPlan([], rows, passes, len(rows))
    texts = sft_texts(ctx, round, c)  # dpo and spin train on rows alone
    steps = steps if steps is not None else fixed_steps(ctx, round, c, texts)
    if c.objective == SFT_DPO and rows and (steps is None or steps >= 2):
        dpo_steps = None if steps is None else preference_steps(c.objective, len(rows), c.epochs, steps)
        sft_steps = None if steps is None else steps - dpo_steps
        passes = (TrainingPass(SFT, out_dir.with_name(f"round-{round}-sft"), sft_steps), TrainingPass(DPO, out_dir, dpo_steps))
    else:
        passes = (TrainingPass(SFT, out_dir, steps),)
    return TrainingPlan(texts, rows, passes, len(texts))


def train(ctx: RunContext, round: int, c: RunConfig, plan: TrainingPlan | None = None) -> str:
    """Carry out ``round``'s training plan (``training_plan`` unless given); returns the checkpoint path
    (the generating model's when the plan has no pass: it is not trained then). A pass whose checkpoint
    was saved is not trained again."""
    done = ctx.store.checkpoint(round)
    if done is not None and Path(done.path, "config.json").exists():
        return done.path
    plan = plan or training_plan(ctx, round, c)
    generator = ctx.model_for_round(round)
    base = generator if c.incremental or c.objective in (DPO, SPIN, GRPO) else ctx.base_model
    out_dir = ctx.run_dir / "checkpoints" / f"round-{round}"
    if (out_dir / "config.json").exists():  # saved (atomically) but killed before it was recorded
        record_training(ctx.store, round, out_dir, base, plan.examples, None)
        return str(out_dir)
    if not plan.passes:
        ctx.log(f"round {round}: no preference pairs ({c.objective}); the model is not trained this round")
        return generator
    from factory.models.grpo import fine_tune_grpo
    from factory.models.train import fine_tune, fine_tune_preferences

    ctx.before_step()
    ctx.models.release()
    options = {"epochs": c.epochs, "learning_rate": c.learning_rate, "lora": c.lora,
               "seed": seed_of(c.seed, round, "train", 0), "log": ctx.log}
    seconds, facts, reference = 0.0, {"sft_steps": 0}, generator
    for step in plan.passes:
        if step.kind == SFT:
            if not (step.out_dir / "config.json").exists():
                ctx.log(f"round {round}: fine-tuning {base} on {len(plan.texts)} texts")
                probes = information_probes(ctx.store, round, c.seed)
                if held_out := held_out_probes(ctx, c):
                    probes[HELD_OUT] = held_out
                seconds += fine_tune(base, plan.texts, step.out_dir, steps=step.steps, probes=probes,
                                     probes_after=(HELD_OUT,), **options).seconds
            sft = read_training_facts(step.out_dir)
            if (gain := sft.information_gain) is not None:
                ctx.log(f"round {round}: information gain {gain:+.3f} (base loss on its pairs minus on seeds)")
            facts = {"sft_steps": sft.steps, **({"probe_loss": sft.probe_loss} if sft.probe_loss else {})}
            if step.out_dir != out_dir:  # the dpo pass goes on from and against this checkpoint
                base = reference = str(step.out_dir)
        elif step.kind == GRPO:
            ctx.log(f"round {round}: grpo of {base} on {len(plan.rows)} solve prompts, rewarded by the sandbox")
            report = fine_tune_grpo(base, plan.rows, step.out_dir, steps=step.steps, settings=grpo_settings(ctx, c),
                                    **options)
            seconds += report.seconds
        else:
            ctx.log(f"round {round}: {c.objective} of {base} on {len(plan.rows)} preference pairs against {reference}")
            report = fine_tune_preferences(
                base, plan.rows, step.out_dir, ref_model=reference, steps=step.steps, facts=facts,
                **options,
            )
            seconds += report.seconds
    record_training(ctx.store, round, out_dir, base, plan.examples, {"train": seconds})
    return str(out_dir)


def grpo_settings(ctx: RunContext, c: RunConfig) -> GrpoSettings:
    """GRPO's sampling from the run's settings, and a sandbox of the run's kind and size for the reward."""
    return GrpoSettings(
        generations=c.grpo_generations, max_completion_length=c.max_new_tokens,
        temperature=c.temperature or 1.0,  # greedy samples of one prompt are all alike: no group to compare
        top_p=c.top_p, sandbox=ctx.sandbox.kind, workers=ctx.sandbox.workers, timeout_s=c.timeout_s,
        vllm=c.backend == "vllm", stop=STOP_SEQUENCES,
    )


def record_training(
    store: RunStore, round: int, out_dir: Path, base: str, examples: int, timings: dict[str, float] | None
) -> None:
    """Record ``round``'s checkpoint and mark its train stage done (``timings`` None: not timed, the
    checkpoint was saved by a process killed before it recorded it)."""
    store.record_checkpoint(round, str(out_dir), base, examples, (timings or {}).get("train", 0.0))
    store.mark_batch_done(round, TRAIN_STAGE, 0, examples, timings=timings)
