"""Export a run's preference pairs (``factory.loop.preferences``) as a Hugging Face dataset.

The same layout as the verified-pair export (``factory.outputs.export``: one parquet split and a
dataset card), with the columns TRL's DPOTrainer reads (``prompt``, ``chosen``, ``rejected``) and the
provenance of each side. Re-verification checks both sides: a row whose chosen solution no longer
verifies, or whose rejected one now does, is left out and counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from factory.errors import UserError
from factory.loop.preferences import PreferenceRow, preference_rows
from factory.outputs.dataset_card import (
    PREFERENCE,
)
from factory.outputs.export import (
    ExportResult,
    Reverified,
    Reverify,
    open_run,
    run_card_facts,
    write_export,
)
from factory.outputs.export_filters import format_rounds
from factory.outputs.export_row import features
from factory.outputs.parquet_split import check_out_dir
from sandbox.verdicts import VERIFIED
from sandbox.verify import SourcePair, verify_pairs

PREFERENCE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("prompt", "string"),
    ("chosen", "string"),
    ("rejected", "string"),
    ("puzzle", "string"),
    ("chosen_solution", "string"),
    ("rejected_solution", "string"),
    ("puzzle_hash", "string"),
    ("rejected_verdict", "string"),
    ("solve_rate", "float64"),
    ("round", "int64"),
    ("model", "string"),
    ("puzzle_id", "int64"),
    ("chosen_attempt_id", "int64"),
    ("rejected_attempt_id", "int64"),
    ("weight", "float64"),
)


def preference_features():
    return features(PREFERENCE_COLUMNS)


@dataclass(frozen=True)
class PreferenceFilters:
    rounds: frozenset[int] | None = None  # None: every round

    def describe(self) -> list[str]:
        lines = ["generated puzzles with at least one verified and one failed attempt in their round"]
        if self.rounds is not None:
            lines.append(f"rounds {format_rounds(self.rounds)}")
        return lines


def reverify_preferences(rows: list[PreferenceRow], reverify: Reverify) -> tuple[list[PreferenceRow], Reverified]:
    """``rows`` without those whose chosen solution fails again or whose rejected one verifies now."""
    pairs = [SourcePair(r.puzzle, r.chosen_solution) for r in rows]
    pairs += [SourcePair(r.puzzle, r.rejected_solution) for r in rows]
    results = verify_pairs(pairs, reverify.sandbox, reverify.timeout_s)
    chosen, rejected = results[: len(rows)], results[len(rows) :]
    failed: Counter[str] = Counter()
    kept = []
    for row, good, bad in zip(rows, chosen, rejected, strict=True):
        if good.status != VERIFIED:
            failed[f"chosen {good.status}"] += 1
        elif bad.status == VERIFIED:
            failed["rejected verified"] += 1
        else:
            kept.append(row)
    return kept, Reverified(len(rows), dict(failed))


def export_preferences(
    run_dir: Path | str,
    out_dir: Path | str,
    filters: PreferenceFilters = PreferenceFilters(),
    *,
    force: bool = False,
    license: str = "mit",
    pretty_name: str | None = None,
    reverify: Reverify | None = None,
) -> ExportResult:
    """Write the run's preference pairs to ``out_dir`` as a Hugging Face dataset with its card (the
    rules of ``factory.outputs.export.export_dataset`` for ``out_dir`` and ``force``)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    check_out_dir(out_dir, force)
    with open_run(run_dir) as store, store.snapshot():
        rows = preference_rows(store, sorted(filters.rounds) if filters.rounds is not None else None)
        if not rows:
            raise UserError(
                f"no preference pairs in {run_dir}: no generated puzzle of the rounds asked for has both a "
                "verified solution and a failed (wrong, error, timeout, memory) attempt"
            )
        reverified = None
        dropped: dict[str, int] = {}
        if reverify is not None:
            before = len(rows)
            rows, reverified = reverify_preferences(rows, reverify)
            dropped["reverify"] = before - len(rows)
        facts = run_card_facts(
            store, run_dir, Counter(r.round for r in rows),
            pretty_name=pretty_name or f"Self-play P3 preference pairs ({run_dir.resolve().name})",
            num_rows=len(rows), num_puzzles=len({r.puzzle_hash for r in rows}), rows_by_origin={"generated": len(rows)},
            filters=filters.describe(), dropped=dropped, license=license,
            models=sorted({r.model for r in rows if r.model}),
            reverified=reverified.describe() if reverified is not None else None,
            kind=PREFERENCE, rejected_verdicts=dict(Counter(r.rejected_verdict for r in rows)),
        )
    return write_export(out_dir, rows, preference_features(), facts, dropped, reverified)
