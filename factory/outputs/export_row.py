"""One row of the exported dataset: its columns (names and types, in order), their ``datasets.Features``
and the record (``PairRow``), apart from the export that writes rows and the filters that select them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Column names and types, in order. Nullable columns hold None where ``dataset_card.COLUMN_DOCS`` says so.
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


def features(columns: tuple[tuple[str, str], ...] = COLUMNS):
    """The ``datasets.Features`` of ``columns`` (default: the pairs dataset's), imported lazily:
    ``datasets`` is slow to import."""
    from datasets import Features, Value

    return Features({name: Value(dtype) for name, dtype in columns})


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
