"""Export a run's verified pairs as a Hugging Face dataset (parquet + dataset card).

The store is the single source of truth: rows are read from it, filtered, and written as one parquet
split in the Hub's layout (``data/train-00000-of-00001.parquet`` and ``README.md`` with the YAML
``configs`` and ``dataset_info``), so ``datasets.load_dataset(out_dir)`` and a copy pushed to the Hub
(``factory.outputs.hub``) load the same rows with the same features.

Which pairs: by default the generated ones (puzzles the model proposed; the synthetic data), one row
per distinct (puzzle, solution). ``include_seeds`` adds the seed puzzles' reference solutions and any
model solutions of seed puzzles. The other filters (rounds, minimum solve rate, solutions per puzzle,
distance from evaluation sets) apply to generated pairs; seed rows, when included, are kept whole.
"""

from __future__ import annotations

import ast
import random
import re
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from factory.errors import StoreError, UserError
from factory.loop.weights import NONE, pair_weights
from factory.models.quiet import without_library_chatter
from factory.outputs.dataset_card import (
    CARD_FILENAME,
    DATA_FILE,
    SPLIT,
    CardFacts,
    EvalFacts,
    RoundFacts,
    render_card,
)
from factory.store import GENERATED, SEED, RunStore, rounds_stats
from puzzles.canonical import NEAR_DUPLICATE_THRESHOLD
from puzzles.filters import EvalIndex
from sandbox.backend import Sandbox
from sandbox.verdicts import VERIFIED
from sandbox.verify import SourcePair, verify_pairs

# Column names and types, in order. Nullable columns hold None where COLUMN_DOCS says so.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("puzzle", "string"),
    ("solution", "string"),
    ("puzzle_name", "string"),
    ("solution_name", "string"),
    ("answer_arg", "string"),
    ("answer_type", "string"),
    ("round", "int64"),
    ("model", "string"),
    ("puzzle_model", "string"),
    ("puzzle_hash", "string"),
    ("solution_hash", "string"),
    ("verify_seconds", "float64"),
    ("solve_rate", "float64"),
    ("solution_length", "int64"),
    ("origin", "string"),
    ("seed_key", "string"),
    ("prompt_seed", "int64"),
    ("puzzle_round", "int64"),
    ("pair_id", "int64"),
    ("puzzle_id", "int64"),
    ("attempt_id", "int64"),
    ("weight", "float64"),
)

SEEDS_TEST = "seeds-test"
NEAR_SET_NAMES = (SEEDS_TEST,)


def features():
    """The dataset's ``datasets.Features`` (imported lazily: ``datasets`` is slow to import)."""
    from datasets import Features, Value

    return Features({name: Value(dtype) for name, dtype in COLUMNS})


# ---------------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class PairRow:
    """One verified pair with its provenance: one row of the exported dataset."""

    puzzle: str
    solution: str
    puzzle_name: str
    solution_name: str
    answer_arg: str
    answer_type: str
    round: int
    model: str | None
    puzzle_model: str | None
    puzzle_hash: str
    solution_hash: str
    verify_seconds: float | None
    solve_rate: float | None
    solution_length: int
    origin: str
    seed_key: str | None
    prompt_seed: int | None
    puzzle_round: int
    pair_id: int
    puzzle_id: int
    attempt_id: int | None
    weight: float  # under the run's weighting (``factory.loop.weights``); 1.0 with none

    def to_dict(self) -> dict:
        return asdict(self)


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


@dataclass(frozen=True)
class Selection:
    rows: list[PairRow]
    dropped: dict[str, int]  # rows removed by each filter, in the order applied


@dataclass(frozen=True)
class Reverify:
    """Verify the selected pairs again in ``sandbox`` before writing them (all, or a seeded sample of
    ``sample``); a pair that no longer verifies is dropped and counted (invariant: a verified pair
    verifies the same anywhere)."""

    sandbox: Sandbox
    timeout_s: float
    sample: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class Reverified:
    checked: int
    failed: dict[str, int]  # verdict -> pairs that got it instead of verified

    def describe(self) -> str:
        lost = sum(self.failed.values())
        why = f" ({', '.join(f'{v} {n}' for v, n in sorted(self.failed.items()))})" if lost else ""
        return f"{self.checked - lost} of {self.checked} verified again{why}"


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    rows: int
    puzzles: int
    dropped: dict[str, int]
    data_file: Path
    card_file: Path
    rows_by_round: dict[int, int] = field(default_factory=dict)
    reverified: Reverified | None = None


# ---------------------------------------------------------------------------------------------------
# reading the store


def open_run(run_dir: Path | str) -> RunStore:
    """The store of an existing run directory, or a UserError saying what is wrong."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a directory: give the directory of a factory run")
    try:
        return RunStore.open(run_dir, create=False)
    except StoreError as e:
        raise UserError(str(e)) from None


def pair_rows(store: RunStore) -> list[PairRow]:
    """Every stored pair (evaluation puzzles never), with its puzzle's and attempt's provenance, in store order."""
    pairs = store.stored_pairs()
    puzzles = {p.id: p for p in store.pool_puzzles(solved_only=False)}
    attempts = store.pair_attempts()
    solve_rate = store.solve_rates()
    weights = pair_weights(store, None, (store.config() or {}).get("weighting", NONE))
    rows = []
    for pair in pairs:
        puzzle = puzzles.get(pair.puzzle_id) or store.puzzle(pair.puzzle_id)
        assert puzzle is not None, f"pair {pair.id} has no puzzle"
        attempt = attempts.get(pair.attempt_id) if pair.attempt_id is not None else None
        rows.append(
            PairRow(
                puzzle=puzzle.source,
                solution=pair.solution_source,
                puzzle_name=puzzle.name,
                solution_name=function_name(pair.solution_source),
                answer_arg=puzzle.answer_arg,
                answer_type=puzzle.answer_type,
                round=pair.round,
                model=attempt.model if attempt else None,
                puzzle_model=puzzle.model,
                puzzle_hash=puzzle.canonical_hash,
                solution_hash=pair.solution_hash,
                verify_seconds=attempt.seconds if attempt else None,
                solve_rate=solve_rate.get(puzzle.id),
                solution_length=pair.length,
                origin=puzzle.origin,
                seed_key=puzzle.key,
                prompt_seed=puzzle.prompt_seed,
                puzzle_round=puzzle.round,
                pair_id=pair.id,
                puzzle_id=puzzle.id,
                attempt_id=pair.attempt_id,
                weight=weights[pair.id],
            )
        )
    return rows


def function_name(source: str) -> str:
    """The name of the (first) top-level function of ``source``; "" when it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return node.name
    return ""


# ---------------------------------------------------------------------------------------------------
# filters


def select_rows(rows: Sequence[PairRow], filters: ExportFilters) -> Selection:
    """Apply ``filters`` in a fixed order; say how many rows each one removed. Keeps store order."""
    dropped: dict[str, int] = {}
    kept = list(rows)

    def apply(name: str, keep: Callable[[PairRow], bool]) -> None:
        nonlocal kept
        before = len(kept)
        kept = [row for row in kept if keep(row)]
        dropped[name] = before - len(kept)

    def generated(row: PairRow) -> bool:
        return row.origin == GENERATED

    apply("seeds", lambda row: filters.include_seeds or row.origin != SEED)
    if filters.rounds is not None:
        apply("rounds", lambda row: not generated(row) or row.round in filters.rounds)
    if filters.min_solve_rate is not None:
        threshold = filters.min_solve_rate
        apply(
            "min_solve_rate", lambda row: not generated(row) or (row.solve_rate or 0.0) >= threshold - 1e-12
        )
    if filters.near:
        verdicts: dict[str, bool] = {}

        def far_from_eval(row: PairRow) -> bool:
            if row.puzzle_hash not in verdicts:
                verdicts[row.puzzle_hash] = all(
                    n.index.contamination(row.puzzle) is None for n in filters.near
                )
            return verdicts[row.puzzle_hash]

        apply("near_eval", lambda row: not generated(row) or far_from_eval(row))
    seen: set[tuple[str, str]] = set()

    def first_copy(row: PairRow) -> bool:
        key = (row.puzzle_hash, row.solution_hash)
        if key in seen:
            return False
        seen.add(key)
        return True

    apply("duplicate", first_copy)
    if filters.max_per_puzzle is not None:
        by_puzzle: dict[str, list[PairRow]] = defaultdict(list)
        for row in kept:
            by_puzzle[row.puzzle_hash].append(row)
        chosen = {
            row.pair_id
            for group in by_puzzle.values()
            for row in sorted(group, key=lambda r: (r.solution_length, r.pair_id))[: filters.max_per_puzzle]
        }
        apply("max_per_puzzle", lambda row: not generated(row) or row.pair_id in chosen)
    return Selection(kept, dropped)


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
    """A named evaluation set: ``seeds-test`` (the held-out seeds)."""
    from factory.loop.corpus import eval_set

    if name != SEEDS_TEST:
        raise UserError(
            f"no evaluation set named {name!r}: known sets are {', '.join(NEAR_SET_NAMES)} "
            "(P3's puzzles.json files: near_set_p3)"
        )
    label, puzzles = eval_set(None, "test")
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


# ---------------------------------------------------------------------------------------------------
# writing


def export_dataset(
    run_dir: Path | str,
    out_dir: Path | str,
    filters: ExportFilters = ExportFilters(),
    *,
    force: bool = False,
    license: str = "mit",
    pretty_name: str | None = None,
    reverify: Reverify | None = None,
) -> ExportResult:
    """Write the run's verified pairs to ``out_dir`` as a Hugging Face dataset with its card, after
    verifying them again when ``reverify`` says so.

    ``out_dir`` must not exist or be empty; with ``force`` an earlier export there (its ``data/`` and
    ``README.md``) is replaced. The new files are written beside it first and moved in at the end, so
    a failed export leaves nothing half-written.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    check_out_dir(out_dir, force)
    with open_run(run_dir) as store, store.snapshot():  # the rows and the card's numbers agree
        rows = pair_rows(store)
        selection = select_rows(rows, filters)
        if not selection.rows:
            removed = ", ".join(f"{k} {v}" for k, v in selection.dropped.items() if v) or "none"
            raise UserError(
                f"nothing to export from {run_dir}: {len(rows)} stored pairs, none left after the filters "
                f"(removed: {removed}); relax the filters or include the seed puzzles' pairs (include_seeds)"
            )
        reverified = None
        if reverify is not None:
            selection, reverified = reverify_rows(selection, reverify)
        facts = _card_facts(store, run_dir, filters, selection, license, pretty_name, reverified)

    return write_export(out_dir, selection.rows, features(), facts, selection.dropped, reverified)


def write_export(
    out_dir: Path, rows: Sequence, features, facts: CardFacts, dropped: dict[str, int], reverified: Reverified | None
) -> ExportResult:
    """Write ``rows`` (records with ``to_dict``, ``round`` and ``puzzle_hash``) and their card; what was written."""
    write_dataset(out_dir, [row.to_dict() for row in rows], features, lambda info: render_card(facts, info))
    return ExportResult(
        out_dir=out_dir,
        rows=len(rows),
        puzzles=len({row.puzzle_hash for row in rows}),
        dropped=dropped,
        data_file=out_dir / DATA_FILE,
        card_file=out_dir / CARD_FILENAME,
        rows_by_round=dict(sorted(Counter(row.round for row in rows).items())),
        reverified=reverified,
    )


def write_dataset(out_dir: Path, records: list[dict], features, card: Callable[[dict], str]) -> None:
    """Write ``records`` as the one parquet split of a Hub-layout dataset in ``out_dir`` with the card
    ``card(dataset_info)`` (the split's ``DatasetInfo`` as YAML); written beside ``out_dir`` and moved in
    at the end, so a failure leaves nothing half-written."""
    from datasets import Dataset, DatasetInfo, SplitDict, SplitInfo

    dataset = Dataset.from_list(records, features=features)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        data_file = staging / DATA_FILE
        data_file.parent.mkdir(parents=True)
        with without_library_chatter():
            dataset.to_parquet(str(data_file))
        splits = SplitDict()
        splits.add(SplitInfo(name=SPLIT, num_bytes=dataset.data.nbytes, num_examples=len(dataset)))
        info = DatasetInfo(
            features=dataset.features,
            splits=splits,
            download_size=data_file.stat().st_size,
            dataset_size=dataset.data.nbytes,
        )
        (staging / CARD_FILENAME).write_text(card(info._to_yaml_dict()), encoding="utf-8")
        _move_into(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run_timeout(run_dir: Path | str, default: float = 2.0) -> float:
    """The sandbox time limit the run verified its pairs with (``timeout_s`` of its settings)."""
    with open_run(run_dir) as store:
        config = store.config() or {}
    return float(config.get("timeout_s", default))


def reverify_rows(selection: Selection, reverify: Reverify) -> tuple[Selection, Reverified]:
    """``selection`` without the rows that no longer verify (of those checked), and what was found."""
    rows = selection.rows
    checked = list(range(len(rows)))
    if reverify.sample is not None and reverify.sample < len(rows):
        checked = sorted(random.Random(reverify.seed).sample(checked, reverify.sample))
    pairs = [SourcePair(rows[i].puzzle, rows[i].solution) for i in checked]
    results = verify_pairs(pairs, reverify.sandbox, reverify.timeout_s)
    lost = {i: r.status for i, r in zip(checked, results, strict=True) if r.status != VERIFIED}
    kept = [row for i, row in enumerate(rows) if i not in lost]
    dropped = {**selection.dropped, "reverify": len(lost)}
    return Selection(kept, dropped), Reverified(len(checked), dict(Counter(lost.values())))


def check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir} is a file: an export needs a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise UserError(
            f"{out_dir} is not empty: choose a new directory, or pass force=True to replace an earlier export"
        )


def _move_into(staging: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = out_dir / Path(DATA_FILE).parent
    if data_dir.exists():
        shutil.rmtree(data_dir)
    (staging / Path(DATA_FILE).parent).replace(data_dir)
    (staging / CARD_FILENAME).replace(out_dir / CARD_FILENAME)


def _card_facts(
    store: RunStore,
    run_dir: Path,
    filters: ExportFilters,
    selection: Selection,
    license: str,
    pretty_name: str | None,
    reverified: Reverified | None = None,
) -> CardFacts:
    rows_by_round = Counter(row.round for row in selection.rows if row.origin == GENERATED)
    rounds, evals = store_facts(store, rows_by_round)
    models = sorted(
        {row.model for row in selection.rows if row.model}
        | {row.puzzle_model for row in selection.rows if row.puzzle_model}
    )
    return CardFacts(
        pretty_name=pretty_name or f"Verified self-play P3 pairs ({run_dir.resolve().name})",
        run_dir=str(run_dir),
        config=store.config(),
        rounds=rounds,
        evals=evals,
        num_rows=len(selection.rows),
        num_puzzles=len({row.puzzle_hash for row in selection.rows}),
        rows_by_origin=dict(Counter(row.origin for row in selection.rows)),
        filters=filters.describe(),
        dropped=selection.dropped,
        license=license,
        models=models,
        reverified=reverified.describe() if reverified is not None else None,
        controls=controls(run_dir),
    )


def store_facts(store: RunStore, rows_by_round: Counter[int]) -> tuple[list[RoundFacts], list[EvalFacts]]:
    """What a card says of the run's rounds (with the rows an export keeps of each) and evaluations."""
    rounds = [
        RoundFacts(
            round=stats.round,
            model=stats.model or "",
            finished=stats.finished,
            funnel=stats.funnel,
            verdicts=stats.verdicts,
            exported_rows=rows_by_round.get(stats.round, 0),
            canaries=stats.canaries,
        )
        for stats in rounds_stats(store)
        if stats.round > 0
    ]
    evals = [EvalFacts(e.round, e.dataset, e.k, e.n, e.pass_at_k, e.model, e.solved, e.total) for e in store.evals()]
    return rounds, evals


def controls(run_dir: Path) -> dict | None:
    """How this run (an arm of an experiment) compares with the seeds-only arm beside it, if any."""
    from factory.loop.experiment import over_seeds_only

    return over_seeds_only(run_dir)
