"""Where text comes from: the seed training pairs, the embedded model's corpus, the evaluation sets."""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from factory.errors import UserError
from factory.loop.prompts import puzzle_listing, training_example
from puzzles.records import NamedPuzzle
from puzzles.seeds import extra_training_seeds, load_seeds, load_task_seeds, pretraining_seeds

SEED_EVAL = "seeds-test"  # builtin-augmented's evaluation
TASK_EVAL = "task-test"  # builtin's evaluation
BUILTIN, BUILTIN_AUGMENTED = "builtin", "builtin-augmented"  # the built-in seed sets (``puzzles.seeds``)
BUILTIN_SETS = (BUILTIN, BUILTIN_AUGMENTED)
BUILTIN_EVALS = {TASK_EVAL: BUILTIN, SEED_EVAL: BUILTIN_AUGMENTED}  # each built-in evaluation's seed set


def regime_of(seeds: str) -> str:
    """The built-in set whose embedded model and evaluation a run with ``seeds`` uses: a user's file
    gets the default regime's."""
    return BUILTIN_AUGMENTED if seeds == BUILTIN_AUGMENTED else BUILTIN


def training_texts(
    pairs: Sequence[tuple[str, str]],
    listing_pool: Sequence[str],
    listings: int,
    per_listing: int,
    rng: random.Random,
) -> list[str]:
    """The fine-tuning texts of verified (f, g) pairs: each pair as a solve block (``training_example``),
    in order, then ``listings`` puzzle listings (``puzzle_listing``) of ``per_listing`` puzzles drawn
    from ``listing_pool`` with ``rng`` (all of them when the pool is smaller): the shape of a propose
    prompt, so the model keeps learning to propose. The seed corpus and every round's training use it."""
    texts = [training_example(f, g) for f, g in pairs]
    count = min(per_listing, len(listing_pool))
    texts += [puzzle_listing(rng.sample(listing_pool, count)) for _ in range(listings)]
    return texts


def pairs_of(puzzles: Sequence[NamedPuzzle]) -> list[tuple[str, str]]:
    """(f, g) sources of seed puzzles (each one's first solution)."""
    return [(s.puzzle.source, s.solutions[0].source) for s in puzzles]


def seed_training_pairs(seeds: str = BUILTIN) -> list[tuple[str, str]]:
    """(f, g) sources of a built-in seed set's training split: never its evaluation."""
    return pairs_of(builtin_seeds(seeds, "train"))


def builtin_seeds(seeds: str, split: str) -> list[NamedPuzzle]:
    """A built-in set's seeds (``"train"``) or evaluation (``"test"``): the task families' for
    ``builtin``, the whole seed split for ``builtin-augmented`` (``puzzles.seeds``)."""
    if seeds == BUILTIN_AUGMENTED:
        return load_seeds(split)
    if seeds == BUILTIN:
        return load_task_seeds(split)
    raise ValueError(f"{seeds!r} is not a built-in seed set; use {BUILTIN!r} or {BUILTIN_AUGMENTED!r}")


EXTRA_INSTANCES_PER_FAMILY = 24


@functools.lru_cache(maxsize=4)  # every look-up of the embedded model fingerprints it: build it once
def base_corpus(seeds: str = BUILTIN, listings: int = 240, per_listing: int = 3) -> tuple[str, ...]:
    """Texts the embedded model learns from, as solve blocks (f, g, assert) and random listings of
    their puzzles (the shape of a propose prompt). Deterministic; held-out families never appear.

    For a user's seeds and ``builtin``: the pretraining families (``pretraining_seeds``), never the
    task families the built-in seeds and evaluation are made of. For ``builtin-augmented``: the seed
    split's training puzzles plus ``EXTRA_INSTANCES_PER_FAMILY`` drawn instances of each training
    family: an oracle of the seeds' own families, which no user has."""
    if seeds == BUILTIN_AUGMENTED:
        pairs = seed_training_pairs(BUILTIN_AUGMENTED) + pairs_of(extra_training_seeds(EXTRA_INSTANCES_PER_FAMILY))
    else:
        pairs = pairs_of(pretraining_seeds(EXTRA_INSTANCES_PER_FAMILY))
    return tuple(training_texts(pairs, [f for f, _ in pairs], listings, per_listing, random.Random(0)))


@dataclass(frozen=True)
class EvalPuzzles:
    """An evaluation set: its name, the puzzles evaluated, and every puzzle of their source that the
    run's data must stay away from (all instances of the P3 split, even when one per problem is evaluated)."""

    name: str
    puzzles: list[NamedPuzzle]
    guarded: list[NamedPuzzle]


def load_eval_puzzles(
    p3_path: Path | None = None, split: str = "test", all_instances: bool = False, seeds: str = BUILTIN
) -> EvalPuzzles:
    """The built-in evaluation that goes with ``seeds`` by default (``builtin_seeds``: ``task-test``, or
    ``seeds-test`` for ``builtin-augmented``); with ``p3_path``, a split of P3's puzzles.json: the
    paper's set, each problem's first instance (``p3-test``: 228 problems), or every instance
    (``p3-test-all``: 1,009)."""
    if p3_path is None:
        name = SEED_EVAL if regime_of(seeds) == BUILTIN_AUGMENTED else TASK_EVAL
        held_out = builtin_seeds(BUILTIN_EVALS[name], "test")
        return EvalPuzzles(name, held_out, held_out)
    from puzzles.p3 import first_instances, load_p3

    try:
        puzzles = load_p3(p3_path, split)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    if not puzzles:
        raise UserError(f"{p3_path}: no puzzles in split {split!r}")
    if all_instances:
        return EvalPuzzles(f"p3-{split}-all", puzzles, puzzles)
    return EvalPuzzles(f"p3-{split}", first_instances(puzzles), puzzles)


def eval_set(
    p3_path: Path | None = None, split: str = "test", all_instances: bool = False, seeds: str = BUILTIN
) -> tuple[str, list[NamedPuzzle]]:
    """The named evaluation set of ``load_eval_puzzles``: its name and the puzzles evaluated."""
    chosen = load_eval_puzzles(p3_path, split, all_instances, seeds)
    return chosen.name, chosen.puzzles


def embedded_model_path(seeds: str = BUILTIN, log=None) -> str:
    """The embedded default model for a run with ``seeds``, built from ``base_corpus`` on first use
    and cached."""
    from factory.models.embedded import default_model_path

    return str(default_model_path(functools.partial(base_corpus, regime_of(seeds)), log=log))
