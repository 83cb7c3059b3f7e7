"""Export a run's verified pairs as a Hugging Face dataset (parquet + dataset card).

The store is the single source of truth: rows are read from it, filtered, and written as one parquet
split in the Hub's layout (``data/train-00000-of-00001.parquet`` and ``README.md`` with the YAML
``configs`` and ``dataset_info``), so ``datasets.load_dataset(out_dir)`` and a copy pushed to the Hub
(``factory.outputs.hub``) load the same rows with the same features.

Which pairs: by default the generated ones (puzzles the model proposed; the synthetic data), one row
per distinct (puzzle, solution). ``include_seeds`` adds the seed puzzles' reference solutions and any
model solutions of seed puzzles. The other filters (rounds, minimum solve rate, solutions per puzzle,
distance from evaluation sets) apply to generated pairs; seed rows, when included, are kept whole.

The export streams: pairs are read in store (pair id) order ``CHUNK_ROWS`` at a time, selected,
re-verified and appended to the parquet file chunk by chunk, keeping only small global state (the
card's counts, a byte per puzzle id), so its memory does not grow with the rows.
"""

from __future__ import annotations

import ast
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from factory.config import RunConfig
from factory.errors import StoreError, UserError
from factory.loop.weights import NONE, puzzle_weights
from factory.outputs.dataset_card import (
    CARD_FILENAME,
    DATA_FILE,
    CardFacts,
    EvalFacts,
    RoundFacts,
    render_card,
)
from factory.outputs.export_filters import ChunkSelector, ExportFilters
from factory.outputs.export_row import COLUMNS, PairRow, features
from factory.outputs.parquet_split import SplitWriter, check_out_dir, write_dataset
from factory.store import GENERATED, RunStore, rounds_stats
from factory.store.export_reads import pair_chunks, solve_rates_of
from sandbox.backend import Sandbox
from sandbox.verdicts import VERIFIED
from sandbox.verify import SourcePair, verify_pairs

# Pairs read, filtered, re-verified and written at a time: an export's memory grows with this, not
# with the store.
CHUNK_ROWS = 2000


# ---------------------------------------------------------------------------------------------------
# records


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

# PairRow's fields that ``pair_chunks`` reads as they are (the others are computed here)
_STORED = tuple(name for name, _ in COLUMNS if name not in ("solution_name", "solve_rate", "weight"))


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
    with store.snapshot():
        weights = _puzzle_weights(store)
        return [row for chunk in pair_chunks(store, CHUNK_ROWS) for row in _chunk_rows(store, chunk, weights)]


def _puzzle_weights(store: RunStore) -> dict[int, float] | None:
    """Each generated puzzle's weight under the run's weighting (``factory.loop.weights``; a pair weighs
    its puzzle's, 1 when absent); None under no weighting, where every pair weighs 1."""
    weighting = (store.config() or {}).get("weighting", NONE)
    return None if weighting == NONE else puzzle_weights(store, None, weighting)


def _chunk_rows(store: RunStore, chunk: Sequence, weights: dict[int, float] | None) -> list[PairRow]:
    """The ``PairRow`` of each pair of one ``pair_chunks`` chunk."""
    solve_rate = solve_rates_of(store, (r["puzzle_id"] for r in chunk))
    return [
        PairRow(
            **{name: r[name] for name in _STORED},
            solution_name=function_name(r["solution"]),
            solve_rate=solve_rate.get(r["puzzle_id"]),
            weight=1.0 if weights is None else weights.get(r["puzzle_id"], 1.0),
        )
        for r in chunk
    ]


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
# writing


def export_dataset(
    run_dir: Path | str,
    out_dir: Path | str,
    filters: ExportFilters | None = None,
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

    Streams: ``CHUNK_ROWS`` pairs at a time are read in store order, selected (``ChunkSelector``: the
    rows it keeps and the counts it drops), re-verified and appended to the parquet file, and the card's
    numbers are counted on the way; a re-verification sample needs one more pass to count the rows.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    filters = filters if filters is not None else ExportFilters()
    check_out_dir(out_dir, force)
    with open_run(run_dir) as store, store.snapshot():  # the rows and the card's numbers agree
        weights = _puzzle_weights(store)

        def selected(selector: ChunkSelector):
            for chunk in pair_chunks(store, CHUNK_ROWS):
                yield selector.select(_chunk_rows(store, chunk, weights))

        sampled: set[int] | None = None
        if reverify is not None and reverify.sample is not None:
            total = sum(len(rows) for rows in selected(ChunkSelector(store, filters)))
            if reverify.sample < total:
                sampled = set(random.Random(reverify.seed).sample(range(total), reverify.sample))
        selector = ChunkSelector(store, filters)
        tally = _Tally()
        checked, failed = 0, Counter()
        with SplitWriter(out_dir, features()) as writer:
            for rows in selected(selector):
                if reverify is not None and rows:
                    first = selector.kept - len(rows)  # index of rows[0] among all rows selected
                    picks = [i for i in range(len(rows)) if sampled is None or first + i in sampled]
                    pairs = [SourcePair(rows[i].puzzle, rows[i].solution) for i in picks]
                    results = verify_pairs(pairs, reverify.sandbox, reverify.timeout_s) if pairs else []
                    lost = {i: r.status for i, r in zip(picks, results, strict=True) if r.status != VERIFIED}
                    checked += len(picks)
                    failed.update(lost.values())
                    rows = [row for i, row in enumerate(rows) if i not in lost]
                tally.add(rows)
                writer.write([row.to_dict() for row in rows])
            dropped = dict(selector.dropped)
            if not selector.kept:
                removed = ", ".join(f"{k} {v}" for k, v in dropped.items() if v) or "none"
                raise UserError(
                    f"nothing to export from {run_dir}: {selector.seen} stored pairs, none left after the filters "
                    f"(removed: {removed}); relax the filters or include the seed puzzles' pairs (include_seeds)"
                )
            reverified = None
            if reverify is not None:
                dropped["reverify"] = sum(failed.values())
                reverified = Reverified(checked, dict(failed))
            facts = _card_facts(store, run_dir, filters, tally, dropped, license, pretty_name, reverified)
            writer.finish(lambda info: render_card(facts, info))
    return ExportResult(
        out_dir=out_dir,
        rows=tally.rows,
        puzzles=tally.puzzles,
        dropped=dropped,
        data_file=out_dir / DATA_FILE,
        card_file=out_dir / CARD_FILENAME,
        rows_by_round=dict(sorted(tally.by_round.items())),
        reverified=reverified,
    )


class _Tally:
    """What the card and the result say of the rows written, counted as they go (no rows kept)."""

    def __init__(self) -> None:
        self.rows = 0
        self.puzzles = 0
        self.by_round: Counter[int] = Counter()
        self.generated_by_round: Counter[int] = Counter()
        self.by_origin: Counter[str] = Counter()
        self.models: set[str] = set()
        self._puzzle_seen = bytearray()  # by puzzle id (one id per puzzle hash: the hash is unique)

    def add(self, rows: Sequence[PairRow]) -> None:
        for row in rows:
            self.rows += 1
            self.by_round[row.round] += 1
            if row.origin == GENERATED:
                self.generated_by_round[row.round] += 1
            self.by_origin[row.origin] += 1
            self.models.update(m for m in (row.model, row.puzzle_model) if m)
            seen = self._puzzle_seen
            if row.puzzle_id >= len(seen):
                seen.extend(bytes(max(row.puzzle_id + 1 - len(seen), len(seen))))  # grows by doubling
            if not seen[row.puzzle_id]:
                seen[row.puzzle_id] = 1
                self.puzzles += 1


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



def run_timeout(run_dir: Path | str, default: float = RunConfig.timeout_s) -> float:
    """The sandbox time limit the run verified its pairs with (``timeout_s`` of its settings)."""
    with open_run(run_dir) as store:
        config = store.config() or {}
    return float(config.get("timeout_s", default))



def _card_facts(
    store: RunStore,
    run_dir: Path,
    filters: ExportFilters,
    tally: _Tally,
    dropped: dict[str, int],
    license: str,
    pretty_name: str | None,
    reverified: Reverified | None = None,
) -> CardFacts:
    return run_card_facts(
        store, run_dir, tally.generated_by_round,
        pretty_name=pretty_name or f"Verified self-play P3 pairs ({run_dir.resolve().name})",
        num_rows=tally.rows, num_puzzles=tally.puzzles, rows_by_origin=dict(tally.by_origin),
        filters=filters.describe(), dropped=dropped, license=license, models=sorted(tally.models),
        reverified=reverified.describe() if reverified is not None else None,
    )


def run_card_facts(store: RunStore, run_dir: Path, rows_by_round: Counter[int], **rows: object) -> CardFacts:
    """A card's facts: what the run's store says (settings, puzzle sets, rounds with the ``rows_by_round``
    an export keeps, evaluations, the controls beside an experiment's arm), and ``rows``: what the
    export kept (``CardFacts``' other fields)."""
    rounds, evals = store_facts(store, rows_by_round)
    return CardFacts(
        run_dir=str(run_dir), config=store.config(), puzzle_sets=store.puzzle_sets(), rounds=rounds, evals=evals,
        controls=controls(run_dir), **rows,  # type: ignore[arg-type]
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
            usage=stats.usage,
        )
        for stats in rounds_stats(store)
        if stats.round > 0
    ]
    evals = [EvalFacts(e.round, e.dataset, e.k, e.n, e.pass_at_k, e.model, e.solved, e.total) for e in store.evals()]
    return rounds, evals


def controls(run_dir: Path) -> dict | None:
    """How this run (an arm of an experiment) compares with the seeds-only arm beside it, if any."""
    from factory.outputs.comparison import over_seeds_only

    return over_seeds_only(run_dir)
