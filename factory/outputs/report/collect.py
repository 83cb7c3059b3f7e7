"""The report's read model: a :class:`RunReport` built from the store's round stats in one snapshot.

Per round the numbers are ``factory.store.stats.RoundStats`` (funnel, verdicts, stage seconds,
tokens); the report adds the round's wall time and how diverse its puzzles were: distinct and new
canonical forms, how far accepted puzzles are from the seeds (1 - the highest token-shingle
similarity to any seed: ``factory.loop.weights.PuzzleDistance``), and the mean training weight of the
round's pairs under the run's weighting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from factory.loop.parts import part_pass_at_k
from factory.loop.weights import NONE, PuzzleDistance, pair_weights
from factory.models.steps import checkpoint_information_gain
from factory.store import INVALID, SEED, EvalRecord, RoundStats, RunStore, StoredPuzzle, rounds_stats
from puzzles.canonical import canonical_hash, near_duplicate_tokens
from puzzles.parse import parse_puzzle
from puzzles.records import InvalidProgram

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
    seed_distances: tuple[float, ...] = field(default=())  # per accepted puzzle: 1 - max similarity to a seed
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

    def pass_at_k(self) -> dict[tuple[str, int], dict[int, float]]:
        """(dataset, k) -> {round: pass@k}; a set with parts (``factory.loop.parts``) also has one
        series per part, named "dataset: part"."""
        series: dict[tuple[str, int], dict[int, float]] = {}
        for e in self.evals:
            series.setdefault((e.dataset, e.k), {})[e.round] = e.pass_at_k
            for part, entry in part_pass_at_k([e], e.dataset, intervals=False).items():
                series.setdefault((f"{e.dataset}: {part}", e.k), {})[e.round] = entry["pass_at_k"][str(e.k)]
        return dict(sorted(series.items()))


class SeedDistance(PuzzleDistance):
    """1 - the highest near-duplicate similarity of a puzzle to any seed (the rule of novelty)."""

    def __init__(self, seed_sources: Sequence[str]):
        super().__init__(near_duplicate_tokens(source) for source in seed_sources)


def collect_report(store: RunStore, run_dir: Path | str = "") -> RunReport:
    """Everything the report shows, read from ``store`` in one snapshot."""
    with store.snapshot():
        seeds = [p for p in store.pool_puzzles(up_to_round=0, solved_only=False) if p.origin == SEED]
        distance = SeedDistance([p.source for p in seeds])
        known = {p.canonical_hash for p in seeds}
        weights = pair_weights(store, None, (store.config() or {}).get("weighting", NONE))
        pair_rounds: dict[int, list[float]] = {}
        for pair in store.stored_pairs():
            pair_rounds.setdefault(pair.round, []).append(weights[pair.id])
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
            puzzles = {p.id: p for p in store.puzzles_of_round(stats.round)}
            checkpoint = store.checkpoint(stats.round)
            produced = _produced(store, stats.round, puzzles)
            new = produced - known
            known |= produced
            rounds.append(
                RoundReport(
                    stats=stats,
                    seconds=seconds,
                    distinct=len(produced),
                    new=len(new),
                    seed_distances=tuple(distance(p.source) for p in puzzles.values()),
                    information_gain=checkpoint_information_gain(checkpoint.path if checkpoint else None),
                    weight_mean=_mean(pair_rounds.get(stats.round, [])),
                )
            )
        return RunReport(
            run_dir=str(run_dir),
            config=store.config(),
            rounds=tuple(rounds),
            evals=tuple(store.evals()),
            seed_puzzles=len(seeds),
            seed_pairs=len(store.stored_pairs(up_to_round=0)),
        )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _produced(store: RunStore, round: int, puzzles: Mapping[int, StoredPuzzle]) -> set[str]:
    """Canonical hashes of the round's parsable proposals (accepted, trivial, duplicate, ...)."""
    produced: set[str] = set()
    for proposal in store.proposals_of_round(round):
        if proposal.status == INVALID:  # some parse (the probes found them unsolvable), none is a puzzle
            continue
        if proposal.puzzle_id is not None and proposal.puzzle_id in puzzles:
            produced.add(puzzles[proposal.puzzle_id].canonical_hash)
            continue
        try:
            produced.add(canonical_hash(parse_puzzle(proposal.raw).source))
        except InvalidProgram:
            continue
    return produced
