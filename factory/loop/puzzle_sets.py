"""Seed and evaluation sets a user brings, loaded, checked and hashed into one record (``PuzzleSet``).

Sources: a JSONL file of ``{"f": ..., "g": ...}`` lines (optional ``"id"``; blank lines are skipped), a P3
``puzzles.json`` (or its folder, with ``split.json`` beside it) read for one split, or a built-in set
(``"builtin"``, ``"builtin-augmented"``: ``factory.loop.corpus.builtin_seeds``; their seeds, or their evaluation).

A seed passes the rules a proposal passes (it parses; the P3 signature and hygiene rules of
``puzzles.parse`` without P3's ``eval(x)`` allowance; no bool answer), has a solution, differs in canonical
form from every other seed and every evaluation puzzle, and every solution it has verifies in the
sandbox. An evaluation puzzle needs only its ``f``: it parses and passes the rules the evaluation runs
it under (P3's, ``eval(x)`` allowed), and differs in canonical form from the others; a ``g`` given in a
JSONL file must verify (P3's reference solutions are not run: the evaluation never uses them). The
built-in sets are not run either: tests/sandbox/test_seeds_verify.py verifies every one of them.

A bad entry is refused with one line naming the file, the entry (a JSONL line, 1-based, or a P3 instance
name) and the reason; ``skip_bad=True`` skips and counts it instead.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from factory.errors import UserError
from factory.loop.corpus import BUILTIN, BUILTIN_SETS, builtin_seeds
from factory.verify_files import read_jsonl_lines
from puzzles.canonical import canonical_hash
from puzzles.p3 import (
    DUPLICATE_INSTANCE,
    PUZZLES_FILE,
    SPLIT_FILE,
    first_instances,
    load_p3_report,
    read_splits,
)
from puzzles.parse import parse_puzzle, parse_solution
from puzzles.records import InvalidProgram, NamedPuzzle
from puzzles.source import parse_source
from sandbox.backend import Sandbox
from sandbox.verdicts import VERIFIED
from sandbox.verify import SourcePair, verify_pairs

JSONL = "jsonl"
P3 = "p3"
SPLITS = ("train", "test")

# Why an entry was refused (``Skipped.reason``, the keys of ``PuzzleSet.skipped_counts``).
NOT_PARSED = "does not parse"
BREAKS_RULE = "breaks a rule"
NOT_VERIFIED = "does not verify"
EVALUATION_DUPLICATE = "duplicates an evaluation puzzle"
DUPLICATE = "duplicates another puzzle of the set"

T = TypeVar("T")


@dataclass(frozen=True)
class Skipped:
    """An entry left out by ``skip_bad``: why, and the one line that would have refused the file."""

    reason: str  # one of NOT_PARSED, BREAKS_RULE, NOT_VERIFIED, EVALUATION_DUPLICATE, DUPLICATE
    message: str


@dataclass(frozen=True)
class PuzzleSet:
    """A loaded seed or evaluation set. ``content_hash`` (SHA-256 hex) covers, in order, what a run uses
    of it: each puzzle's source, and for seeds each solution's source too; it does not depend on the
    file's name, format or ids, and is stable across runs and machines."""

    name: str  # the path as given, or a built-in set's name
    kind: str  # BUILTIN, JSONL or P3
    split: str | None  # the P3 split read; None for the other kinds
    content_hash: str
    puzzles: tuple[NamedPuzzle, ...]
    # Every puzzle of the source that a run's data must stay away from: for an evaluation set of P3's
    # first instances, all instances of the split; otherwise the puzzles themselves.
    guarded: tuple[NamedPuzzle, ...]
    skipped: tuple[Skipped, ...] = ()

    @property
    def count(self) -> int:
        return len(self.puzzles)

    def skipped_counts(self) -> dict[str, int]:
        return dict(Counter(s.reason for s in self.skipped))

    def pairs(self) -> list[tuple[str, str]]:
        """Every (f, g) source pair of the set, in order: a seed set's training pairs."""
        return [(p.puzzle.source, s.source) for p in self.puzzles for s in p.solutions]

    def describe(self) -> dict:
        """What status, reports and the run identity name: path, kind, split, hash, count, skips."""
        return {
            "name": self.name,
            "kind": self.kind,
            "split": self.split,
            "hash": self.content_hash,
            "count": self.count,
            "skipped": self.skipped_counts(),
        }


def load_seed_set(
    source: str | Path,
    sandbox: Sandbox,
    *,
    split: str = "train",
    evaluation: Iterable[NamedPuzzle] = (),
    skip_bad: bool = False,
    timeout_s: float = 5.0,
) -> PuzzleSet:
    """The seed set at ``source`` (a path or a built-in set's name), checked against the ``evaluation`` puzzles
    (an evaluation set's ``guarded``) and verified in ``sandbox``. Only a P3 file reads ``split``; the
    test split is refused whatever the source: it is for evaluation only. Raises UserError naming the
    first bad entry, unless ``skip_bad``."""
    if split != "train":
        raise UserError(
            f"seeds come from the train split, not {split!r}: the test split is for evaluation only"
        )
    evaluation_keys = {}
    for puzzle in evaluation:
        evaluation_keys.setdefault(canonical_hash(puzzle.puzzle.source), puzzle.key)
    return _load(source, split, _Checks(True, evaluation_keys), sandbox, skip_bad, timeout_s)


def load_eval_set(
    source: str | Path,
    sandbox: Sandbox,
    *,
    split: str = "test",
    all_instances: bool = False,
    skip_bad: bool = False,
    timeout_s: float = 5.0,
) -> PuzzleSet:
    """The evaluation set at ``source`` (a path or a built-in set's name: its evaluation). From a P3 file, the
    first instance of each problem of ``split`` (the paper's test set for "test"), or every instance with
    ``all_instances``; ``guarded`` holds every instance of the split either way. Raises UserError naming
    the first bad entry, unless ``skip_bad``."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    chosen = _load(source, split, _Checks(False, {}), sandbox, skip_bad, timeout_s)
    if chosen.kind != P3 or all_instances:
        return chosen
    firsts = tuple(first_instances(chosen.puzzles))
    return PuzzleSet(
        chosen.name, chosen.kind, chosen.split, content_hash(firsts, False), firsts, chosen.guarded, chosen.skipped
    )


# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Checks:
    for_seeds: bool  # the rules a proposal passes, a solution required; else the evaluation's rules
    evaluation_keys: dict[str, str]  # canonical hash -> key of each puzzle a seed must not equal


class _Bad(Exception):
    """Why one entry is refused: ``reason`` (NOT_PARSED...) and the detail (the message)."""

    def __init__(self, reason: str, why: str):
        super().__init__(why)
        self.reason = reason


# An entry of a source: how a refusal names it ("path:line" or "path: instance name"), and the puzzle read
# there or why none could be.
Item = tuple[str, NamedPuzzle | _Bad]


def _load(
    source: str | Path, split: str, checks: _Checks, sandbox: Sandbox, skip_bad: bool, timeout_s: float
) -> PuzzleSet:
    name = str(source)
    label = "train" if checks.for_seeds else "test"
    if name in BUILTIN_SETS:
        kind, read_split = BUILTIN, None
        items: list[Item] = [(f"{name}: {s.key}", s) for s in builtin_seeds(name, label)]
    else:
        path = Path(source)
        kind = kind_of(path)
        read_split = split if kind == P3 else None
        items = _read_jsonl(path, label) if kind == JSONL else _read_p3(path, split)
        if not items:
            of_split = f" of split {split!r}" if kind == P3 else ""
            raise UserError(f"{name}: empty file: no puzzles in it{of_split}")

    skipped: list[Skipped] = []

    def refuse_or_skip(found: list[tuple[str, _Bad]]) -> None:
        messages = [Skipped(bad.reason, f"{where}: {bad.reason}: {bad}") for where, bad in found]
        if messages and not skip_bad:
            raise UserError(messages[0].message)
        skipped.extend(messages)

    kept: list[tuple[str, NamedPuzzle]] = []
    found: list[tuple[str, _Bad]] = []
    seen: dict[str, str] = {}  # canonical hash -> where
    for where, item in items:
        if isinstance(item, NamedPuzzle):
            try:
                seen[_checked_hash(item, checks, seen)] = where
                kept.append((where, item))
                continue
            except _Bad as bad:
                item = bad
        found.append((where, item))
    refuse_or_skip(found)
    if kind == JSONL or (kind == P3 and checks.for_seeds):
        kept, found = _verify(kept, sandbox, timeout_s, trusted=not checks.for_seeds)
        refuse_or_skip(found)
    if not kept:
        counts = ", ".join(f"{n} {reason}" for reason, n in Counter(s.reason for s in skipped).items())
        raise UserError(f"{name}: no usable puzzles: all {len(items)} left out ({counts})")
    puzzles = tuple(puzzle for _, puzzle in kept)
    return PuzzleSet(
        name, kind, read_split, content_hash(puzzles, checks.for_seeds), puzzles, puzzles, tuple(skipped)
    )


def kind_of(path: Path) -> str:
    """JSONL or P3, from the file (a missing file or another format: UserError)."""
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.suffix == ".jsonl" and path.is_file():
        return JSONL
    if (path.suffix == ".json" and path.is_file()) or (path / PUZZLES_FILE).is_file():
        return P3
    raise UserError(
        f'{path}: unknown format: expected a .jsonl file of {{"f": ..., "g": ...}} lines, a P3 '
        f"{PUZZLES_FILE} (or its folder), or one of {', '.join(map(repr, BUILTIN_SETS))}"
    )


def _checked_hash(named: NamedPuzzle, checks: _Checks, seen: dict[str, str]) -> str:
    """The puzzle's canonical hash, once it passes the rules and duplicates nothing; else raises _Bad."""
    if checks.for_seeds:
        if not named.solutions:
            raise _Bad(BREAKS_RULE, "a seed needs a solution g")
        try:
            parse_puzzle(named.puzzle.source)  # without P3's eval(x) allowance, as a proposal
        except InvalidProgram as e:
            raise _Bad(BREAKS_RULE, str(e)) from None
        if named.puzzle.answer_type == "bool":
            raise _Bad(BREAKS_RULE, "a bool answer is found by trying True and False")
    try:
        digest = canonical_hash(named.puzzle.source)
    except InvalidProgram as e:
        raise _Bad(NOT_PARSED, str(e)) from None
    if digest in checks.evaluation_keys:
        raise _Bad(
            EVALUATION_DUPLICATE, f"same canonical form as evaluation puzzle {checks.evaluation_keys[digest]}"
        )
    if digest in seen:
        raise _Bad(DUPLICATE, f"same canonical form as {seen[digest]}")
    return digest


def _verify(
    kept: list[tuple[str, NamedPuzzle]], sandbox: Sandbox, timeout_s: float, trusted: bool
) -> tuple[list[tuple[str, NamedPuzzle]], list[tuple[str, _Bad]]]:
    """The entries whose every solution verifies, and (where, why) for the others, in order."""
    owners, pairs = [], []
    for index, (_, named) in enumerate(kept):
        for number, solution in enumerate(named.solutions, start=1):
            owners.append((index, number))
            pairs.append(SourcePair(named.puzzle.source, solution.source))
    failed: dict[int, _Bad] = {}
    for (index, number), result in zip(
        owners, verify_pairs(pairs, sandbox, timeout_s, None, trusted), strict=True
    ):
        if result.status != VERIFIED and index not in failed:
            which = f"solution {number}: " if len(kept[index][1].solutions) > 1 else ""
            detail = " ".join(result.detail.split())[:200]
            failed[index] = _Bad(NOT_VERIFIED, which + result.status + (f" ({detail})" if detail else ""))
    return (
        [entry for index, entry in enumerate(kept) if index not in failed],
        [(kept[index][0], failed[index]) for index in sorted(failed)],
    )


def content_hash(puzzles: Iterable[NamedPuzzle], with_solutions: bool) -> str:
    """SHA-256 hex over each puzzle's source (and its solutions' with ``with_solutions``), in order."""
    content = [
        [p.puzzle.source, *([s.source for s in p.solutions] if with_solutions else [])] for p in puzzles
    ]
    return hashlib.sha256(
        json.dumps(content, ensure_ascii=False).encode("utf-8", "surrogatepass")
    ).hexdigest()


# ------------------------------------------------------------------------------------------------------
# Reading the formats: one Item per entry, parsed under P3's rules (``_checked_hash`` adds the seeds')


def _read_jsonl(path: Path, split: str) -> list[Item]:
    items: list[Item] = []
    line_of_id: dict[str, int] = {}
    for number, line in read_jsonl_lines(path):
        if line.strip():
            try:
                items.append((f"{path}:{number}", _jsonl_puzzle(path, number, line, split, line_of_id)))
            except _Bad as bad:
                items.append((f"{path}:{number}", bad))
    return items


def _jsonl_puzzle(path: Path, number: int, line: str, split: str, line_of_id: dict[str, int]) -> NamedPuzzle:
    try:
        record = json.loads(line)
    except ValueError as e:
        raise _Bad(NOT_PARSED, f"not a JSON object ({e})") from None
    if not isinstance(record, dict):
        raise _Bad(NOT_PARSED, f"not a JSON object but a JSON {type(record).__name__}")
    f, g, key = record.get("f"), record.get("g"), record.get("id")
    for field, value in (("f", f), ("g", g), ("id", key)):
        if not isinstance(value, str) and (field == "f" or value is not None):
            raise _Bad(
                NOT_PARSED,
                f"field {field!r} must be a string" + (" of Python source" if field != "id" else ""),
            )
    if key is not None:
        if key in line_of_id:
            raise _Bad(DUPLICATE, f"id {key!r} is already the id of line {line_of_id[key]}")
        line_of_id[key] = number
    puzzle = _parsed("f", f, lambda text: parse_puzzle(text, allow_eval=True))
    solutions = () if g is None else (_parsed("g", g, lambda text: parse_solution(text, puzzle)),)
    return NamedPuzzle(
        key=key if key is not None else f"{path.name}:{number}",
        puzzle=puzzle,
        solutions=solutions,
        split=split,
        family=key.partition(":")[0] if key is not None else "",
    )


def _parsed(field: str, text: str, parse: Callable[[str], T]) -> T:
    """``parse(text)``, or _Bad saying whether ``text`` is not Python at all (NOT_PARSED) or Python that
    breaks a rule (BREAKS_RULE)."""
    try:
        return parse(text)
    except InvalidProgram as e:
        try:
            parse_source(textwrap.dedent(text), field)
        except InvalidProgram:
            raise _Bad(NOT_PARSED, f"{field}: {e}") from None
        raise _Bad(BREAKS_RULE, f"{field}: {e}") from None


def _read_p3(path: Path, split: str) -> list[Item]:
    puzzles_path = path / PUZZLES_FILE if path.is_dir() else path
    try:
        accepted, rejected = load_p3_report(puzzles_path)
        split_of = read_splits(puzzles_path.parent / SPLIT_FILE)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    items: list[Item] = [
        (f"{puzzles_path}: {key}", _Bad(DUPLICATE if why == DUPLICATE_INSTANCE else NOT_PARSED, why))
        for key, why in rejected
        if split_of.get(key.partition(":")[0], "none") == split
    ]
    return items + [(f"{puzzles_path}: {p.key}", p) for p in accepted if p.split == split]
