"""Plain records passed between the puzzle, sandbox and factory layers."""

from __future__ import annotations

from dataclasses import dataclass, field


class InvalidProgram(ValueError):
    """Raised when source text is not a valid P3 puzzle or solution; the message says why."""


@dataclass(frozen=True)
class Puzzle:
    """A P3 puzzle: ``def name(answer: T, a=..., b=...) -> bool``.

    ``answer_type`` is the canonical spelling of ``T`` (``"int"``, ``"List[List[str]]"``, ...).
    ``defaults`` maps each extra argument to the source text of its literal default, in order.
    """

    source: str
    name: str
    answer_arg: str
    answer_type: str
    defaults: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Solution:
    """A P3 solution: ``def name(a=..., b=...)`` called with no arguments."""

    source: str
    name: str


@dataclass(frozen=True)
class NamedPuzzle:
    """A puzzle from a collection (seeds, P3) with its reference solutions and where it belongs."""

    key: str  # unique within its collection, e.g. "Study_1:0" or "seed/palindrome:3"
    puzzle: Puzzle
    solutions: tuple[Solution, ...] = ()
    split: str = "train"  # "train", "test" (evaluation only) or "none"
    family: str = ""
    tags: tuple[str, ...] = field(default=())
