"""Which stored pairs an export keeps: the filters (``ExportFilters``), the evaluation sets it stays
away from (``NearSet``), and the one rule that applies them (``ChunkSelector``), a chunk of
store-ordered rows at a time, so an export of any size holds only small global state."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from factory.errors import UserError
from factory.outputs.export_row import PairRow
from factory.store import GENERATED, SEED, RunStore
from factory.store.export_reads import duplicate_pair_keys, puzzle_pairs
from puzzles.canonical import NEAR_DUPLICATE_THRESHOLD
from puzzles.filters import EvalIndex


@dataclass(frozen=True)
class NearSet:
    """An evaluation set whose puzzles (and near-duplicates of them) an export leaves out."""

    name: str
    index: EvalIndex


@dataclass(frozen=True)
class ExportFilters:
    include_seeds: bool = False
    rounds: frozenset[int] | None = None  # None: every round
    min_solve_rate: float | None = None
    max_per_puzzle: int | None = None
    near: tuple[NearSet, ...] = ()

    def __post_init__(self) -> None:
        if self.min_solve_rate is not None and not 0.0 <= self.min_solve_rate <= 1.0:
            raise UserError(f"min_solve_rate must be between 0 and 1 (got {self.min_solve_rate})")
        if self.max_per_puzzle is not None and self.max_per_puzzle < 1:
            raise UserError(f"max_per_puzzle must be at least 1 (got {self.max_per_puzzle})")

    def describe(self) -> list[str]:
        lines = [
            "generated pairs and the seed puzzles' pairs"
            if self.include_seeds
            else "generated pairs only (no seed puzzles)"
        ]
        if self.rounds is not None:
            lines.append(f"rounds {format_rounds(self.rounds)}")
        if self.min_solve_rate is not None:
            lines.append(
                f"puzzles solved by at least {self.min_solve_rate:.0%} of their attempts in their round"
            )
        for near in self.near:
            lines.append(
                f"no puzzle equal or near (similarity >= {near.index.threshold:.2f}) to an evaluation puzzle of {near.name}"
            )
        if self.max_per_puzzle is not None:
            lines.append(f"at most {self.max_per_puzzle} solution(s) per puzzle, shortest first")
        lines.append("one row per distinct (puzzle hash, solution hash)")
        return lines


class ChunkSelector:
    """Apply ``filters`` in a fixed order to rows given a chunk at a time, counting how many rows each
    one removed (``dropped``, in the order applied); the rows kept and the counts do not depend on how
    the rows are cut into chunks, and only small global state is held. Rows must come in store (pair id)
    order, every stored pair once. Deduplication remembers only the keys the store has more than once
    (none under its unique constraints); ``max_per_puzzle`` ranks each puzzle of a chunk among that
    puzzle's stored pairs that pass the pair-level filters before it (the rounds filter and
    deduplication; the others decide per puzzle, for all its pairs alike)."""

    def __init__(self, store: RunStore, filters: ExportFilters) -> None:
        self.store, self.filters = store, filters
        names = ["seeds"]
        names += ["rounds"] if filters.rounds is not None else []
        names += ["min_solve_rate"] if filters.min_solve_rate is not None else []
        names += ["near_eval"] if filters.near else []
        names += ["duplicate"]
        names += ["max_per_puzzle"] if filters.max_per_puzzle is not None else []
        self.dropped: dict[str, int] = dict.fromkeys(names, 0)
        self.seen = 0  # rows given
        self.kept = 0
        self._repeated = duplicate_pair_keys(store)
        self._first_copies: set[tuple[str, str]] = set()

    def select(self, rows: Sequence[PairRow]) -> list[PairRow]:
        filters = self.filters
        kept = list(rows)
        self.seen += len(kept)

        def apply(name: str, keep: Callable[[PairRow], bool]) -> None:
            nonlocal kept
            before = len(kept)
            kept = [row for row in kept if keep(row)]
            self.dropped[name] += before - len(kept)

        def generated(row: PairRow) -> bool:
            return row.origin == GENERATED

        apply("seeds", lambda row: filters.include_seeds or row.origin != SEED)
        if filters.rounds is not None:
            apply("rounds", lambda row: not generated(row) or row.round in filters.rounds)
        if filters.min_solve_rate is not None:
            threshold = filters.min_solve_rate
            apply(
                "min_solve_rate",
                lambda row: not generated(row) or (row.solve_rate or 0.0) >= threshold - 1e-12,
            )
        if filters.near:
            verdicts: dict[str, bool] = {}  # per chunk: a puzzle's pairs are mostly stored together

            def far_from_eval(row: PairRow) -> bool:
                if row.puzzle_hash not in verdicts:
                    verdicts[row.puzzle_hash] = all(
                        n.index.contamination(row.puzzle) is None for n in filters.near
                    )
                return verdicts[row.puzzle_hash]

            apply("near_eval", lambda row: not generated(row) or far_from_eval(row))

        def first_copy(row: PairRow) -> bool:
            key = (row.puzzle_hash, row.solution_hash)
            if key not in self._repeated:
                return True
            if key in self._first_copies:
                return False
            self._first_copies.add(key)
            return True

        apply("duplicate", first_copy)
        if filters.max_per_puzzle is not None:
            chosen = self._shortest(row.puzzle_id for row in kept if generated(row))
            apply("max_per_puzzle", lambda row: not generated(row) or row.pair_id in chosen)
        self.kept += len(kept)
        return kept

    def _shortest(self, puzzle_ids: Iterable[int]) -> set[int]:
        """The pair ids ``max_per_puzzle`` keeps of each of ``puzzle_ids`` (shortest first, then id)."""
        chosen: set[int] = set()
        for pairs in puzzle_pairs(self.store, puzzle_ids).values():
            candidates, hashes = [], set()
            for pair_id, round, length, hash_ in pairs:  # in id order, as deduplication sees them
                if self.filters.rounds is not None and round not in self.filters.rounds:
                    continue
                if hash_ in hashes:
                    continue
                hashes.add(hash_)
                candidates.append((length, pair_id))
            chosen.update(pair_id for _, pair_id in sorted(candidates)[: self.filters.max_per_puzzle])
        return chosen


def parse_rounds(text: str) -> frozenset[int]:
    """``"1-3"``, ``"2,3"``, ``"1-2,5"`` -> the set of round numbers. UserError when malformed."""
    rounds: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise UserError(f"rounds {text!r}: expected numbers and ranges like 1-3 or 2,3 or 1-2,5")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if high < low:
            raise UserError(f"rounds {text!r}: the range {part} is empty (write the lower number first)")
        rounds.update(range(low, high + 1))
    return frozenset(rounds)


def format_rounds(rounds: frozenset[int]) -> str:
    ordered = sorted(rounds)
    spans: list[str] = []
    start = previous = None
    for r in ordered + [None]:
        if start is not None and (r is None or r != previous + 1):
            spans.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if r is not None and start is None:
            start = r
        previous = r
    return ",".join(spans)


def near_set(name: str, threshold: float = NEAR_DUPLICATE_THRESHOLD) -> NearSet:
    """A built-in evaluation set by name: ``task-test`` (the default seeds') or ``seeds-test``
    (``builtin-augmented``'s)."""
    from factory.loop.corpus import BUILTIN_EVALS, eval_set

    if name not in BUILTIN_EVALS:
        raise UserError(
            f"no evaluation set named {name!r}: known sets are {', '.join(BUILTIN_EVALS)} "
            "(P3's puzzles.json files: near_set_p3)"
        )
    label, puzzles = eval_set(None, "test", seeds=BUILTIN_EVALS[name])
    return NearSet(label, EvalIndex.from_sources(((p.key, p.puzzle.source) for p in puzzles), threshold))


def near_set_p3(path: Path, split: str = "test", threshold: float = NEAR_DUPLICATE_THRESHOLD) -> NearSet:
    """The puzzles of one split of P3's ``puzzles.json`` (``all``: every split)."""
    from puzzles.p3 import load_p3

    try:
        puzzles = load_p3(path, None if split == "all" else split)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"P3 evaluation set: {e}") from None
    if not puzzles:
        raise UserError(f"P3 evaluation set {path}: no puzzles in split {split!r}")
    index = EvalIndex.from_sources(((p.key, p.puzzle.source) for p in puzzles), threshold)
    return NearSet(f"p3-{split} ({path})", index)
