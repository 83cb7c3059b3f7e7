"""The seed set and the evaluation set a run works with, chosen by its settings (``seeds``,
``eval_set`` or its alias ``eval_p3``), loaded and checked by ``factory.loop.puzzle_sets`` where a user
brings them, and recorded (source, hash, count) with the run so that a changed file is refused."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from factory.config import RunConfig
from factory.errors import UserError
from factory.loop.corpus import BUILTIN_SETS, EvalPuzzles, builtin_seeds, load_eval_puzzles, pairs_of
from factory.loop.puzzle_sets import P3, content_hash, kind_of, load_seed_set
from factory.loop.puzzle_sets import load_eval_set as load_user_eval_set
from factory.store import RunStore
from puzzles.filters import EvalIndex
from puzzles.records import NamedPuzzle
from sandbox.backend import Sandbox

SEED_SET, EVAL_SET = "seed_set", "eval_set"  # the store's records of them


@dataclass(frozen=True)
class SeedSet:
    """The run's seed puzzles, their (f, g) pairs (the few-shot examples of evaluation prompts), and
    what the store records of them."""

    puzzles: list[NamedPuzzle]
    pairs: list[tuple[str, str]]
    record: dict


@dataclass(frozen=True)
class EvalSet:
    """The puzzles a run evaluates on, the index that keeps them out of its data, and its record."""

    name: str
    puzzles: list[NamedPuzzle]
    index: EvalIndex
    record: dict

    def evaluated(self, limit: int | None) -> list[NamedPuzzle]:
        """The puzzles a round evaluates: the first ``limit`` (``RunConfig.eval_limit``), or all."""
        return self.puzzles[:limit] if limit else self.puzzles


def eval_puzzles(config: RunConfig, sandbox: Sandbox | None) -> tuple[EvalPuzzles, dict]:
    """The evaluation puzzles ``config`` names, and their record: the built-in evaluation of the seeds'
    regime by default (``corpus.load_eval_puzzles``); a P3
    file (``eval_set`` or ``eval_p3``) as ``factory.loop.corpus.load_eval_puzzles`` reads it; a JSONL
    file through ``puzzle_sets`` (checked, and any ``g`` it gives verified in ``sandbox``)."""
    source = config.eval_set or config.eval_p3
    if config.eval_set is not None and kind_of(Path(config.eval_set)) != P3:
        loaded = load_user_eval_set(config.eval_set, sandbox, split=config.eval_split)
        chosen = EvalPuzzles(Path(config.eval_set).stem, list(loaded.puzzles), list(loaded.guarded))
        return chosen, {**loaded.describe(), "name": chosen.name, "source": config.eval_set}
    chosen = load_eval_puzzles(
        Path(source) if source else None, config.eval_split, config.eval_all_instances, config.seeds
    )
    record = {"name": chosen.name, "source": source or chosen.name, "hash": content_hash(chosen.puzzles, False),
              "count": len(chosen.puzzles)}
    return chosen, record


def load_run_seeds(config: RunConfig, sandbox: Sandbox | None, evaluation: list[NamedPuzzle]) -> SeedSet:
    """The seeds ``config.seeds`` names: a built-in set (verified by the test suite, not at every
    start), or a user's file, checked against the ``evaluation`` puzzles and verified in ``sandbox``
    (``skip_bad_seeds``: bad entries skipped and counted)."""
    if config.seeds in BUILTIN_SETS:
        seeds = builtin_seeds(config.seeds, "train")
        record = {"name": config.seeds, "source": config.seeds, "hash": content_hash(seeds, True), "count": len(seeds)}
        return SeedSet(seeds, pairs_of(seeds), record)
    loaded = load_seed_set(config.seeds, sandbox, split=config.seeds_split, evaluation=evaluation,
                           skip_bad=config.skip_bad_seeds, timeout_s=config.timeout_s)
    return SeedSet(list(loaded.puzzles), loaded.pairs(), {**loaded.describe(), "source": config.seeds})


def guarded_index(chosen: EvalPuzzles, training: list[NamedPuzzle]) -> EvalIndex:
    """The decontamination index over every puzzle of the set's source (all instances of a P3 split);
    near-duplicates are checked only against those that no training seed already comes near."""
    return EvalIndex.from_sources(
        ((p.key, p.puzzle.source) for p in chosen.guarded), training=(s.puzzle.source for s in training)
    )


def load_run_sets(config: RunConfig, sandbox: Sandbox | None) -> tuple[SeedSet, EvalSet]:
    """The run's seed set and evaluation set (the evaluation set first: a seed may not duplicate it)."""
    chosen, eval_record = eval_puzzles(config, sandbox)
    seeds = load_run_seeds(config, sandbox, chosen.guarded)
    return seeds, EvalSet(chosen.name, chosen.puzzles, guarded_index(chosen, seeds.puzzles), eval_record)


def run_eval_set(config: RunConfig, training_seeds: list[NamedPuzzle], sandbox: Sandbox | None = None) -> EvalSet:
    """The evaluation set ``config`` names, indexed against ``training_seeds``."""
    chosen, record = eval_puzzles(config, sandbox)
    return EvalSet(chosen.name, chosen.puzzles, guarded_index(chosen, training_seeds), record)


def check_recorded_sets(store: RunStore, run_dir: Path, seeds: SeedSet, eval_set: EvalSet) -> None:
    """Record the sets with the run, refusing a seed or evaluation file that changed since it started."""
    stored = store.record_puzzle_sets({SEED_SET: seeds.record, EVAL_SET: eval_set.record})
    for key, given in ((SEED_SET, seeds.record), (EVAL_SET, eval_set.record)):
        before = stored.get(key, given)
        if before["hash"] != given["hash"]:
            what = "seed set" if key == SEED_SET else "evaluation set"
            raise UserError(
                f"{run_dir} was started with the {what} {before['source']} of hash {before['hash'][:12]} "
                f"({before['count']} puzzles); it is now {given['hash'][:12]} ({given['count']}): use another "
                "run directory, or the same file to resume"
            )
