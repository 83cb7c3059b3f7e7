"""Control arms: runs that differ only in what they fine-tune on.

`factory experiment --run-dir D --arms verified,unverified,seeds-only` keeps one run directory per arm
(``D/<arm>/``, a store of its own, so status, report and export work on each) and runs them round by
round with the same settings, base model and evaluation, and (but for dpo and spin) the same number of
optimizer steps. The arms (``factory.loop.arms``) are data given to the same stages as every run:
what each trains on is ``factory.loop.training_data``, its objective's passes ``factory.loop.training``.

- ``verified``: the recipe of every run: seeds plus verified pairs; ``unverified``: the same attempts
  with the verdicts ignored; ``seeds-only``: the seed pairs alone;
- ``dpo``, ``spin``, ``sft+dpo``: the verified arm's data with another training objective;
- ``grpo``: online RL on solve prompts of the verified arm's round-1 puzzles (its own later) and the seeds,
  rewarded by the sandbox; it trains the verified arm's optimizer steps, each over as many sequences as
  an sft step (8 samples), so the arms see equal sequences and updates, not equal wall-clock: a grpo step
  also generates and verifies its samples;
- ``sft+learnability``, ``sft+novelty``: the verified arm's pairs resampled by learnability or novelty;
- ``sft+proposer``: the verified arm's recipe with its propose listings resampled by the proposer's
  learnability reward (``factory.loop.proposer_reward.listing_pool``).

Every sft arm trains for the steps the verified arm's recipe takes in that round, so the learning-rate
schedule is the same too; dpo and spin train their own schedule. The steps are in each checkpoint's
``training.json`` and the comparison's ``train``.

Round 1 generates once, in the verified arm; the other arms copy its proposals and attempts, batch by
batch with their markers, and its base-model evaluation, so round 1 compares the filters on one set of
generations. Later rounds continue each arm with its own model (its generation, verification and
pairs are its own; only its training texts follow its arm). The verified arm runs each round first.
Rounds run through ``run_rounds`` on each arm's store, so a killed experiment resumes where it
stopped: rerun the same command. The comparison is ``factory.outputs.comparison``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from factory.config import RunConfig
from factory.errors import UserError
from factory.loop.arms import (
    PROPOSER_ARM,
    VERIFIED_ARM,
    WEIGHTING_ARMS,
    arm_config,
    experiment_arm,
    parse_arms,
)
from factory.loop.context import check_run_store, prepare_run
from factory.loop.rounds import ROUND_STAGES, RoundEvents, Stages, rounds_finished, run_rounds
from factory.loop.summary import format_summary
from factory.store import STORE_FILENAME
from sandbox.backend import Sandbox, log_to_stderr


class ArmEvents(RoundEvents):
    """The default round messages, each line prefixed with the arm."""

    def __init__(self, arm: str, log: Callable[[str], None] = log_to_stderr):
        self.arm, self.log = arm, log

    def base_evaluated(self, pass_at_k: dict[int, float]) -> None:
        self.log(f"[{self.arm}] round 0 (base model): " + ", ".join(f"pass@{k} {v:.3f}" for k, v in pass_at_k.items()))

    def round_finished(self, summary: dict) -> None:
        self.log("\n".join(f"[{self.arm}] {line}" for line in format_summary(summary).splitlines()))


def check_settings(config: RunConfig) -> None:
    """Refuse settings that cannot run an experiment (before any directory is touched)."""
    if not config.train:
        raise UserError("an experiment compares what models train on: it needs train = true (drop --no-train)")
    if config.weighting != "none":
        arms = [arm for arm, weighting in WEIGHTING_ARMS.items() if weighting == config.weighting]
        raise UserError(
            f"the arms of an experiment set the weighting: drop --weighting {config.weighting} and add the "
            f"{' or '.join(arms or WEIGHTING_ARMS)} arm"
        )
    if config.proposer_weighting != "none":
        raise UserError(
            f"the arms of an experiment set the proposer weighting: drop --proposer-weighting "
            f"{config.proposer_weighting} and add the {PROPOSER_ARM} arm"
        )
    if config.objective != "sft":
        raise UserError(
            f"the arms of an experiment set the objective: drop --objective {config.objective} and add the "
            f"{config.objective} arm (--arms verified,{config.objective})"
        )


def check_arms(root: Path, config: RunConfig, arms: Sequence[str]) -> None:
    """Refuse, before any work: settings that cannot train, and an arm directory started otherwise."""
    check_settings(config)
    if (Path(root) / STORE_FILENAME).exists():
        raise UserError(f"{root} is a run directory; an experiment keeps its arms in subdirectories of a new one")
    for arm in arms:
        check_run_store(Path(root) / arm, arm_config(config, arm))


def run_experiment(
    root: Path | str,
    config: RunConfig,
    rounds: int,
    arms: Sequence[str],
    sandbox: Sandbox,
    *,
    log: Callable[[str], None] = log_to_stderr,
    show_progress: bool = True,
    events: Callable[[str], RoundEvents] | None = None,
    stages: Stages = ROUND_STAGES,
    generation: Mapping[str, object] | None = None,
    after_round: Callable[[Path], None] = lambda root: None,
) -> None:
    """Run every arm until ``rounds`` are finished, the verified arm first in each round, calling
    ``after_round(root)`` after each round of all arms (the CLI writes the comparison). Resumable."""
    from factory.store.lock import RunLock

    root = Path(root)
    arms = parse_arms(arms)
    if rounds < 1:
        raise UserError("--rounds must be at least 1")
    check_arms(root, config, arms)
    for number in range(1, rounds + 1):
        for arm in arms:
            arm_log = lambda message, arm=arm: log(f"[{arm}] {message}")  # noqa: E731
            with RunLock(root / arm), prepare_run(
                root / arm, arm_config(config, arm), sandbox, arm=experiment_arm(arm, root / VERIFIED_ARM),
                log=arm_log, show_progress=show_progress, generation=generation,
            ) as ctx:
                run_rounds(ctx, rounds_finished(number), events(arm) if events else ArmEvents(arm, log), stages=stages)
        after_round(root)
