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
from puzzles.seeds import load_seeds

SEED_EVAL = "seeds-test"


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


def seed_training_pairs() -> list[tuple[str, str]]:
    """(f, g) sources of the seed set's training split: never the held-out evaluation split."""
    return [(s.puzzle.source, s.solutions[0].source) for s in load_seeds("train")]


EXTRA_INSTANCES_PER_FAMILY = 24


@functools.lru_cache(maxsize=4)  # every look-up of the embedded model fingerprints it: build it once
def seed_corpus(listings: int = 240, per_listing: int = 3) -> tuple[str, ...]:
    """Texts the embedded default model learns from: each training seed, plus more instances of the
    training families (``extra_training_seeds``), as a solve block (f, g, assert), and random listings
    of those puzzles, the shape of a propose prompt. Deterministic. Held-out families never appear."""
    from puzzles.seeds import extra_training_seeds

    pairs = seed_training_pairs()
    pairs += [(s.puzzle.source, s.solutions[0].source) for s in extra_training_seeds(EXTRA_INSTANCES_PER_FAMILY)]
    return tuple(training_texts(pairs, [f for f, _ in pairs], listings, per_listing, random.Random(0)))


@dataclass(frozen=True)
class EvalPuzzles:
    """An evaluation set: its name, the puzzles evaluated, and every puzzle of their source that the
    run's data must stay away from (all instances of the P3 split, even when one per problem is evaluated)."""

    name: str
    puzzles: list[NamedPuzzle]
    guarded: list[NamedPuzzle]


def load_eval_puzzles(p3_path: Path | None = None, split: str = "test", all_instances: bool = False) -> EvalPuzzles:
    """The held-out seeds by default; with ``p3_path``, a split of P3's puzzles.json: the paper's set,
    each problem's first instance (``p3-test``: 228 problems), or every instance (``p3-test-all``: 1,009)."""
    if p3_path is None:
        seeds = load_seeds("test")
        return EvalPuzzles(SEED_EVAL, seeds, seeds)
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
    p3_path: Path | None = None, split: str = "test", all_instances: bool = False
) -> tuple[str, list[NamedPuzzle]]:
    """The named evaluation set of ``load_eval_puzzles``: its name and the puzzles evaluated."""
    chosen = load_eval_puzzles(p3_path, split, all_instances)
    return chosen.name, chosen.puzzles


def embedded_model_path(log=None) -> str:
    """The embedded default model, built from the seed corpus on first use and cached."""
    from factory.models.embedded import default_model_path

    return str(default_model_path(seed_corpus, log=log))
