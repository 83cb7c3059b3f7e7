"""Load P3's ``puzzles.json`` (microsoft/PythonProgrammingPuzzles) as NamedPuzzle records.

``split.json`` beside it says which problems are ``"train"`` and which are ``"test"`` (the evaluation
set, never for seeds, prompts or training); problems in neither get ``"none"``. The data is read from
wherever it lives (e.g. ../shared/p3) and never copied into the project.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from puzzles.answer_types import canonical_type
from puzzles.parse import parse_puzzle, parse_solution
from puzzles.records import InvalidProgram, NamedPuzzle

SPLITS = ("train", "test", "none")
PUZZLES_FILE = "puzzles.json"
SPLIT_FILE = "split.json"
DUPLICATE_INSTANCE = "duplicate instance name"  # a rejection reason of load_p3_report

_REQUIRED_FIELDS = {
    "name": str,
    "sat": str,
    "ans_type": str,
    "sol_header": str,
    "sol_bodies": list,
    "module": str,
}


def load_p3(path: str | Path, split: str | None = None) -> list[NamedPuzzle]:
    """The P3 instances in ``path`` (``puzzles.json`` or its folder) that parse, optionally of one split.

    Instances whose puzzle or reference solutions do not parse are left out; :func:`load_p3_report`
    says which and why.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown P3 split {split!r}; expected one of {', '.join(SPLITS)}")
    puzzles, _ = load_p3_report(path)
    return [puzzle for puzzle in puzzles if split is None or puzzle.split == split]


def first_instances(puzzles: Sequence[NamedPuzzle]) -> list[NamedPuzzle]:
    """The first instance of each problem (family), in order: P3's ``Name:0``. The paper's test set
    ("test_228") is these instances of the test split's 228 problems."""
    seen: set[str] = set()
    first = []
    for puzzle in puzzles:
        if puzzle.family not in seen:
            seen.add(puzzle.family)
            first.append(puzzle)
    return first


def load_p3_report(path: str | Path) -> tuple[list[NamedPuzzle], list[tuple[str, str]]]:
    """All P3 instances that parse, and ``(key, reason)`` for each one rejected.

    P3 is trusted, human-written data, so its puzzles may call ``eval(x)`` (six problems do). Raises
    FileNotFoundError when ``puzzles.json`` or ``split.json`` is missing and ValueError (naming the
    file) when either is unreadable or malformed.
    """
    puzzles_path = Path(path)
    if puzzles_path.is_dir():
        puzzles_path = puzzles_path / PUZZLES_FILE
    entries = _read_json(puzzles_path)
    if not isinstance(entries, list):
        raise ValueError(
            f"{puzzles_path}: expected a JSON list of puzzle instances, got {type(entries).__name__}"
        )
    split_of = read_splits(puzzles_path.parent / SPLIT_FILE)

    accepted: list[NamedPuzzle] = []
    rejected: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        _check_entry(entry, index, puzzles_path)
        key = entry["name"]
        if key in seen:
            rejected.append((key, DUPLICATE_INSTANCE))
            continue
        seen.add(key)
        try:
            accepted.append(_to_named_puzzle(entry, split_of))
        except InvalidProgram as error:
            rejected.append((key, str(error)))
    return accepted, rejected


def _to_named_puzzle(entry: dict, split_of: dict[str, str]) -> NamedPuzzle:
    key = entry["name"]
    family = key.partition(":")[0]
    puzzle = parse_puzzle(entry["sat"], allow_eval=True)
    declared = canonical_type(entry["ans_type"])
    if declared != puzzle.answer_type:
        raise InvalidProgram(
            f"ans_type {entry['ans_type']} does not match the annotation {puzzle.answer_type}"
        )
    solutions = []
    for number, body in enumerate(entry["sol_bodies"], start=1):
        if not isinstance(body, str):
            raise InvalidProgram(f"solution {number}: body is {type(body).__name__}, not text")
        try:
            solutions.append(parse_solution(f"{entry['sol_header']}\n{body}", puzzle))
        except InvalidProgram as error:
            raise InvalidProgram(f"solution {number}: {error}") from None
    return NamedPuzzle(
        key=key,
        puzzle=puzzle,
        solutions=tuple(solutions),
        split=split_of.get(family, "none"),
        family=family,
        tags=(entry["module"],),
    )


def _read_json(path: Path) -> object:
    if not path.is_file():
        if path.exists():
            raise ValueError(f"{path} is not a file")
        raise FileNotFoundError(f"P3 data file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error


def read_splits(path: Path) -> dict[str, str]:
    """``split.json``'s split of each problem (family) name: ``"train"`` or ``"test"``."""
    data = _read_json(path)
    if not isinstance(data, dict) or set(data) != {"train", "test"}:
        raise ValueError(f"{path}: expected a JSON object with exactly the keys 'train' and 'test'")
    split_of: dict[str, str] = {}
    for split in ("train", "test"):
        names = data[split]
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise ValueError(f"{path}: '{split}' must be a list of problem names")
        for name in names:
            if split_of.get(name, split) != split:
                raise ValueError(f"{path}: problem {name!r} is in both 'train' and 'test'")
            split_of[name] = split
    return split_of


def _check_entry(entry: object, index: int, path: Path) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: instance {index} is {type(entry).__name__}, expected an object")
    for field, kind in _REQUIRED_FIELDS.items():
        if not isinstance(entry.get(field), kind):
            name = entry.get("name", f"#{index}")
            raise ValueError(f"{path}: instance {name!r} has no {kind.__name__} field {field!r}")
