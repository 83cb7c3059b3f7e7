"""The report's read model: a :class:`RunReport` built from the store's round stats in one snapshot.

Per round the numbers are ``factory.store.stats.RoundStats`` (funnel, verdicts, stage seconds,
tokens); the report adds the round's wall time and how diverse its puzzles were: distinct and new
canonical forms (``forms``), how far accepted puzzles are from the seeds (1 - the highest token-shingle
similarity to any seed: ``factory.loop.weights.PuzzleDistance``; on at most ``DISTANCE_SAMPLE`` of a
round's accepted puzzles, a seeded sample: ``distances``), and the mean training weight of the round's
pairs under the run's weighting. Memory grows with a round or a chunk of rows, not with the store,
but for the canonical forms no stored puzzle has (``forms``) and, under a training weighting, one
weight per generated puzzle (as in the export).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from factory.loop.parts import part_pass_at_k
from factory.loop.weights import NONE, puzzle_weights
from factory.models.steps import checkpoint_information_gain
from factory.outputs.report.distances import DISTANCE_SAMPLE, SeedDistance, seed_distances
from factory.outputs.report.forms import CanonicalForms
from factory.store import SEED, EvalRecord, RoundStats, RunStore, rounds_stats
from factory.store.report_reads import pair_chunks_by_round, pair_counts

__all__ = [
    "CHUNK_ROWS",
    "DISTANCE_SAMPLE",
    "PIPELINE_STEPS",
    "RoundReport",
    "RunReport",
    "SeedDistance",
    "collect_report",
    "step_order",
]

# Rows (proposals, pairs) read at a time: the report's memory grows with this and with one round's
# canonical forms, not with the store.
CHUNK_ROWS = 2000

# The named steps of a round's timings, in pipeline order.
PIPELINE_STEPS = (
    "propose.generate",
    "propose.filter",
    "solve.generate",
    "solve.verify",
    "train",
    "eval.generate",
    "eval.verify",
)


def step_order(key: str) -> tuple[int, int, str]:
    """Steps in pipeline order; unknown steps after the known ones of their stage."""
    stages = {"propose": 0, "solve": 1, "train": 2, "eval": 3}
    step = PIPELINE_STEPS.index(key) if key in PIPELINE_STEPS else len(PIPELINE_STEPS)
    return stages.get(key.split(".")[0], 9), step, key


@dataclass(frozen=True)
class RoundReport:
    """One generation round: its stats from the store, plus what the report measures on top."""

    stats: RoundStats
    seconds: float  # the round's wall time (summary), else the sum of its stage timings
    distinct: int  # distinct canonical forms among the round's parsable proposals
    new: int  # of those, how many no earlier round (nor the seeds) had produced
    # per accepted puzzle (at most DISTANCE_SAMPLE of them, a seeded sample): 1 - max similarity to a seed
    seed_distances: tuple[float, ...] = field(default=())
    information_gain: float | None = None  # base model's loss on the round's new pairs minus on seeds
    weight_mean: float | None = None  # mean weight of the round's pairs under the run's weighting

    @property
    def round(self) -> int:
        return self.stats.round

    @property
    def model(self) -> str:
        return self.stats.model or ""

    @property
    def finished(self) -> bool:
        return self.stats.finished

    @property
    def funnel(self) -> Mapping[str, int]:
        return self.stats.funnel

    @property
    def verdicts(self) -> Mapping[str, int]:
        return self.stats.verdicts

    @property
    def timings(self) -> Mapping[str, float]:
        return self.stats.timings

    @property
    def tokens(self) -> int:
        return self.stats.tokens

    @property
    def pairs(self) -> int:
        return self.stats.pairs

    @property
    def attempts(self) -> int:
        return self.stats.attempts

    @property
    def verified_share(self) -> float | None:
        return self.stats.verified_share

    @property
    def tokens_per_second(self) -> float | None:
        return self.stats.tokens_per_second

    @property
    def pairs_per_second(self) -> float | None:
        return self.pairs / self.seconds if self.seconds else None

    @property
    def new_share(self) -> float | None:
        return self.new / self.distinct if self.distinct else None

    @property
    def distance_mean(self) -> float | None:
        return sum(self.seed_distances) / len(self.seed_distances) if self.seed_distances else None

    @property
    def distance_min(self) -> float | None:
        return min(self.seed_distances) if self.seed_distances else None


@dataclass(frozen=True)
class RunReport:
    run_dir: str
    config: Mapping[str, object] | None
    rounds: tuple[RoundReport, ...]
    evals: tuple[EvalRecord, ...]
    seed_puzzles: int
    seed_pairs: int
    puzzle_sets: Mapping[str, Mapping[str, object]] = field(default_factory=dict)  # RunStore.puzzle_sets

    def pass_at_k(self) -> dict[tuple[str, int], dict[int, float]]:
        """(dataset, k) -> {round: pass@k}; a set with parts (``factory.loop.parts``) also has one
        series per part, named "dataset: part"."""
        series: dict[tuple[str, int], dict[int, float]] = {}
        for e in self.evals:
            series.setdefault((e.dataset, e.k), {})[e.round] = e.pass_at_k
            for part, entry in part_pass_at_k([e], e.dataset, intervals=False).items():
                series.setdefault((f"{e.dataset}: {part}", e.k), {})[e.round] = entry["pass_at_k"][str(e.k)]
        return dict(sorted(series.items()))


def collect_report(store: RunStore, run_dir: Path | str = "") -> RunReport:
    """Everything the report shows, read from ``store`` in one snapshot.

    The store is read a round or a chunk at a time (``factory.store.report_reads``), so memory grows
    with a round, not with the store (see the module's doc). Counts are exact; the distance from the seeds is measured on at most
    ``DISTANCE_SAMPLE`` accepted puzzles per round (a seeded sample; every one in a smaller round).
    """
    with store.snapshot():
        seeds = [p for p in store.pool_puzzles(up_to_round=0, solved_only=False) if p.origin == SEED]
        distance = SeedDistance([p.source for p in seeds])
        forms = CanonicalForms(store, CHUNK_ROWS)
        weight_means = _weight_means(store, (store.config() or {}).get("weighting", NONE))
        rounds = []
        for stats in rounds_stats(store):
            if stats.round == 0:
                continue  # round 0 is the base model and the seeds, not a generation round
            summary_seconds = ((stats.info.summary if stats.info else None) or {}).get("seconds")
            seconds = (
                float(summary_seconds)
                if isinstance(summary_seconds, (int, float))
                else sum(stats.timings.values())
            )
            checkpoint = store.checkpoint(stats.round)
            distinct, new = forms.count(stats.round)
            rounds.append(
                RoundReport(
                    stats=stats,
                    seconds=seconds,
                    distinct=distinct,
                    new=new,
                    seed_distances=seed_distances(store, stats.round, distance),
                    information_gain=checkpoint_information_gain(checkpoint.path if checkpoint else None),
                    weight_mean=weight_means.get(stats.round),
                )
            )
        return RunReport(
            run_dir=str(run_dir),
            config=store.config(),
            rounds=tuple(rounds),
            evals=tuple(store.evals()),
            seed_puzzles=len(seeds),
            seed_pairs=pair_counts(store).get(0, 0),
            puzzle_sets=store.puzzle_sets(),
        )


def _weight_means(store: RunStore, weighting: str) -> dict[int, float]:
    """Round -> the mean weight of its pairs (``pair_weights``), for rounds with pairs; summed in pair
    id order, as a list of the round's weights would be."""
    if weighting == NONE:  # every pair weighs 1: only the counts are needed
        return {round: 1.0 for round, count in pair_counts(store).items() if count}
    weights = puzzle_weights(store, None, weighting)
    sums: dict[int, list[float]] = {}  # round -> [sum, count]
    for chunk in pair_chunks_by_round(store, CHUNK_ROWS):
        for _, round, puzzle_id in chunk:
            total = sums.setdefault(round, [0.0, 0])
            total[0] += weights.get(puzzle_id, 1.0)
            total[1] += 1
    return {round: total / count for round, (total, count) in sums.items()}
