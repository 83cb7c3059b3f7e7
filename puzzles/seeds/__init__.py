"""The project's own seed puzzles: template families by topic, filled with fixed parameter instances.

``load_seeds()`` gives one :class:`NamedPuzzle` per (family, instance), keyed ``seed/<family>:<i>``.
Split: every instance of a ``held_out`` family is ``"test"``; so is the last instance of every other
family (a fresh instance of a seen family); everything else is ``"train"``. That split, with more drawn
instances of every training family in the embedded model's corpus, is the ``builtin-augmented`` regime.

The default regime is a user's: ``load_task_seeds`` splits the families three ways. The *task* families
(every third training family, so every topic has some) are what the user wants better at: a few of each
family's fixed instances are the seeds, the others are evaluated as fresh instances. The other training
families are the embedded model's *pretraining* (``pretraining_seeds``: every fixed and many drawn
instances), never seeds or evaluated. The held-out families are evaluated in both regimes.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import replace

from puzzles.records import NamedPuzzle, Puzzle, Solution
from puzzles.seeds import (
    algorithms,
    arithmetic,
    bits,
    combinatorics,
    glance,
    graphs,
    lists,
    matrices,
    number_theory,
    search,
    strings,
)
from puzzles.seeds.family import Family, fill_defaults, find_function

__all__ = [
    "Family",
    "SPLITS",
    "all_families",
    "extra_training_seeds",
    "load_seeds",
    "load_task_seeds",
    "pretraining_seeds",
    "task_families",
]

SPLITS = ("train", "test")

_TOPICS = (
    strings,
    lists,
    arithmetic,
    number_theory,
    search,
    combinatorics,
    algorithms,
    graphs,
    matrices,
    bits,
    glance,
)


def all_families() -> tuple[tuple[str, Family], ...]:
    """Every seed family with its topic, in a fixed order."""
    return tuple((module.TOPIC, family) for module in _TOPICS for family in module.FAMILIES)


def held_out_families() -> frozenset[str]:
    """Names of the families used for evaluation only (every instance in the test split)."""
    return frozenset(family.name for _, family in all_families() if family.held_out)


def load_seeds(split: str | None = None) -> list[NamedPuzzle]:
    """The seed puzzles of one split (``"train"`` or ``"test"``), or all of them when ``split`` is None."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS} or None for all")
    return [seed for seed in _build_all() if split is None or seed.split == split]


TASK_EVERY = 3  # every third training family is a task family
TASK_SEEDS_PER_FAMILY = 2  # the seeds of a task family: its first fixed instances


@functools.lru_cache(maxsize=1)
def task_families() -> frozenset[str]:
    """Names of the built-in task's families: every ``TASK_EVERY``-th training family in topic order."""
    training = [family.name for _, family in all_families() if not family.held_out]
    return frozenset(training[::TASK_EVERY])


def load_task_seeds(split: str) -> list[NamedPuzzle]:
    """The default regime's seeds (``"train"``: the first ``TASK_SEEDS_PER_FAMILY`` instances of each
    task family) or its evaluation (``"test"``: the task families' other fixed instances and every
    instance of the held-out families), in family order, each with that split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    return [replace(seed, split=split) for seed in _build_all() if _task_split(seed) == split]


def pretraining_seeds(per_family: int) -> list[NamedPuzzle]:
    """The embedded model's pretraining in the default regime: every fixed instance of the training
    families that are not task families, and ``per_family`` more drawn instances of each."""
    fixed = [replace(seed, split="train") for seed in _build_all() if _task_split(seed) is None]
    tasks = task_families()
    return fixed + [s for s in extra_training_seeds(per_family) if s.family not in tasks]


def _task_split(seed: NamedPuzzle) -> str | None:
    """A fixed instance's split in the default regime; None for a pretraining family's."""
    if seed.family in task_families():
        index = int(seed.key.rsplit(":", 1)[1])
        return "train" if index < TASK_SEEDS_PER_FAMILY else "test"
    return "test" if seed.family in held_out_families() else None


def extra_training_seeds(per_family: int) -> list[NamedPuzzle]:
    """``per_family`` more instances of every training family, drawn past its fixed ones, keyed
    ``seed/<family>:x<i>``: corpus for the embedded default model only. They are not seeds (never
    stored, shown in prompts or evaluated). The draw never repeats an instance's values, so none is
    a fixed instance, the held-out one included."""
    return [
        _build_one(topic, family, index, values, key=f"seed/{family.name}:x{index}", split="train")
        for topic, family in all_families()
        if not family.held_out
        for index, values in enumerate(family.instances.more(per_family))
    ]


@functools.lru_cache(maxsize=1)
def _build_all() -> tuple[NamedPuzzle, ...]:
    seeds = []
    names: set[str] = set()
    for topic, family in all_families():
        if family.name in names:
            raise ValueError(f"two seed families are named {family.name!r}")
        names.add(family.name)
        for index, values in enumerate(family.instances):
            seeds.append(_build_one(topic, family, index, values))
    return tuple(seeds)


def _build_one(
    topic: str,
    family: Family,
    index: int,
    values: dict[str, object],
    key: str | None = None,
    split: str | None = None,
) -> NamedPuzzle:
    f_source, defaults = fill_defaults(family.f, "f", values)
    g_source, _ = fill_defaults(family.g, "g", values)
    answer = find_function(f_source, "f").args.args[0]
    if answer.annotation is None:
        raise ValueError(f"seed family {family.name!r}: the answer argument has no type annotation")
    puzzle = Puzzle(
        source=f_source,
        name="f",
        answer_arg=answer.arg,
        answer_type=ast.unparse(answer.annotation),
        defaults=defaults,
    )
    if split is None:
        last = index == len(family.instances) - 1
        split = "test" if family.held_out or last else "train"
    return NamedPuzzle(
        key=key or f"seed/{family.name}:{index}",
        puzzle=puzzle,
        solutions=(Solution(source=g_source, name="g"),),
        split=split,
        family=family.name,
        tags=(topic,),
    )
