"""The arms of an experiment, as data: runs that differ only in what they fine-tune on.

An ``Arm`` is passed to the same stages every run goes through (``factory.loop.context.RunContext.arm``);
a plain run is the verified arm with no reference. What each arm trains on is
``factory.loop.training_data``; how an experiment runs them is ``factory.loop.experiment``; the comparison
of their evaluations is ``factory.outputs.comparison``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from factory.config import RunConfig
from factory.errors import UserError

VERIFIED_ARM = "verified"
UNVERIFIED_ARM = "unverified"
SEEDS_ONLY_ARM = "seeds-only"
# Arms that train on the verified arm's data with another objective (RunConfig.objective).
OBJECTIVE_ARMS = {"dpo": "dpo", "spin": "spin", "sft+dpo": "sft+dpo", "grpo": "grpo"}
LEARNABILITY_ARM = "sft+learnability"  # the verified arm's data resampled by learnability
NOVELTY_ARM = "sft+novelty"  # the verified arm's data resampled by novelty
# Arms that train on the verified arm's data resampled by a weighting (RunConfig.weighting).
WEIGHTING_ARMS = {LEARNABILITY_ARM: "learnability", NOVELTY_ARM: "novelty"}
# The verified arm's recipe with its propose listings resampled by the proposer's learnability reward
# (RunConfig.proposer_weighting): a proposer that learns what to propose.
PROPOSER_ARM = "sft+proposer"
ARMS = (VERIFIED_ARM, UNVERIFIED_ARM, SEEDS_ONLY_ARM, *OBJECTIVE_ARMS, *WEIGHTING_ARMS, PROPOSER_ARM)
# Arms whose training data is not the recipe's (seeds plus verified pairs).
CONTROL_ARMS = (UNVERIFIED_ARM, SEEDS_ONLY_ARM)
# The control arms an arm's pass@k is compared with, and the key of that comparison in an arm's record
# (``factory.outputs.comparison``): seeds-only for every arm; unverified for the verified arm (what the
# filter adds).
CONTROLS = ((SEEDS_ONLY_ARM, "over_seeds_only"), (UNVERIFIED_ARM, "over_unverified"))
ALIASES = {"sft": VERIFIED_ARM}  # the verified arm is the sft objective


@dataclass(frozen=True)
class Arm:
    """What a run trains on, and what it shares with the experiment's verified arm.

    ``reference``: the verified arm's run directory (None for the verified arm and for a plain run):
    round 1's proposals, attempts and base evaluation are copied from it, and its round's optimizer
    steps are this arm's. ``equal_steps``: every sft pass trains a fixed number of steps (the verified
    arm's recipe's), so that the arms of an experiment differ only in their data.
    """

    name: str = VERIFIED_ARM
    reference: Path | None = None
    equal_steps: bool = False

    def __post_init__(self) -> None:
        if self.name not in ARMS:
            raise ValueError(f"unknown arm {self.name!r}")
        if (self.name == VERIFIED_ARM) != (self.reference is None):
            raise ValueError("the verified arm has no reference; every other arm has the verified arm's")

    @property
    def copies_round_one(self) -> bool:
        return self.reference is not None

    @property
    def generates_later(self) -> bool:
        """Whether the arm proposes and solves after round 1: not seeds-only, whose training reads no
        generated pair (its round 2 generated for 1,270 s of a 2-round experiment, for nothing)."""
        return self.name != SEEDS_ONLY_ARM

    @property
    def is_control(self) -> bool:
        return self.name in CONTROL_ARMS


PLAIN_RUN = Arm()


def experiment_arm(name: str, verified_dir: Path) -> Arm:
    """The arm ``name`` of an experiment whose verified arm lives in ``verified_dir``."""
    return Arm(name, None if name == VERIFIED_ARM else Path(verified_dir), equal_steps=True)


def parse_arms(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"verified,seeds-only"`` -> the arms in ``ARMS`` order; the verified arm is required (round 1
    generates in it, and it sets the other arms' steps)."""
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else [n.strip() for n in text]
    names = [ALIASES.get(n, n) for n in names]
    unknown = [n for n in names if n not in ARMS]
    if unknown or not names:
        raise UserError(
            f"unknown arm {', '.join(map(repr, unknown)) or '(none)'}: choose among {', '.join(ARMS)} (sft = verified)"
        )
    if VERIFIED_ARM not in names:
        raise UserError(f"the arms must include {VERIFIED_ARM!r}: round 1 generates in it and it sets the steps")
    return tuple(arm for arm in ARMS if arm in names)


def arm_config(config: RunConfig, arm: str) -> RunConfig:
    """The settings an arm runs with: the experiment's, with the arm's objective (sft but for the
    objective arms), weighting (none but for the weighting arms) and proposer weighting (none but for
    the proposer arm)."""
    return replace(config, objective=OBJECTIVE_ARMS.get(arm, "sft"), weighting=WEIGHTING_ARMS.get(arm, "none"),
                   proposer_weighting="learnability" if arm == PROPOSER_ARM else "none")
