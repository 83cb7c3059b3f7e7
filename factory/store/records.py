"""The store's records: what goes in (rows a stage writes), what comes out, and the status names."""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from puzzles.records import Puzzle
from puzzles.rename import FUNCTION_DEFS, rename_identifier

__all__ = [
    "ACCEPTED", "CONTAMINATED", "DUPLICATE", "GENERATED", "INVALID", "MODEL", "PROPOSAL_STATUSES", "PROPOSE_STAGE", "SEED",
    "SELECT_STAGE", "SOLVE_STAGE", "TRIVIAL", "VARIANT", "AttemptRow", "CheckpointInfo", "EvalRecord", "ProposalRow",
    "RoundInfo", "StoredAttempt", "StoredPair", "StoredProposal", "StoredPuzzle", "TokenUsage", "solution_hash",
    "solution_length",
]

# What the filters said about one raw proposal; only "accepted" ones become puzzles.
INVALID = "invalid"  # does not parse, breaks the P3 rules, or can never be solved
TRIVIAL = "trivial"  # a bool answer, or a probe answer solves it
DUPLICATE = "duplicate"  # the canonical form of a stored puzzle
CONTAMINATED = "contaminated"  # equal or near to an evaluation puzzle
ACCEPTED = "accepted"
PROPOSAL_STATUSES = (INVALID, TRIVIAL, DUPLICATE, CONTAMINATED, ACCEPTED)

# Stage names of the markers the store writes itself.
PROPOSE_STAGE = "propose"
SOLVE_STAGE = "solve"
SELECT_STAGE = "select"

SEED = "seed"
GENERATED = "generated"

# Where a proposal came from: the model's text, or a seed variant (``puzzles.variants``).
MODEL = "model"
VARIANT = "variant"


# ---------------------------------------------------------------------------------------------------
# records going in


@dataclass(frozen=True)
class ProposalRow:
    """One raw generation of the propose stage and the filters' verdict on it.

    ``idx`` is its index within the batch. An accepted row carries its parsed ``puzzle`` and
    ``canonical_hash``; the store may still downgrade it to "duplicate" or "contaminated".
    """

    idx: int
    raw: str
    status: str
    reason: str = ""
    prompt_seed: int | None = None
    puzzle: Puzzle | None = None
    canonical_hash: str | None = None
    origin: str = MODEL
    parent: str | None = None  # a variant's seed (its key)


@dataclass(frozen=True)
class TokenUsage:
    """The tokens of generate calls: ``prompt_tokens`` sent, ``completion_tokens`` generated.
    ``counted_by``: "server" (the API's ``usage``), "local" (the local backend's tokenizer; it counts
    no prompt tokens), "estimate" (characters / 4, a server that reports no usage), several of these
    joined by "+", or "unrecorded" (batches stored before the store kept it)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    counted_by: str = "unrecorded"

    def cost(self, prices: tuple[float, float]) -> float:
        """What the tokens cost at ``prices`` (of a million prompt, completion tokens)."""
        return (self.prompt_tokens * prices[0] + self.completion_tokens * prices[1]) / 1e6


@dataclass(frozen=True)
class AttemptRow:
    """One sampled solution of a stored puzzle and its sandbox verdict (``sandbox.verdicts``).

    ``idx`` is the sample's index for this puzzle within the round. ``solution_hash`` defaults to
    ``solution_hash(source)``; pass a canonical one to make "distinct" stricter.
    """

    puzzle_id: int
    idx: int
    source: str
    status: str
    seconds: float = 0.0
    detail: str = ""
    prompt_seed: int | None = None
    solution_hash: str | None = None


# ---------------------------------------------------------------------------------------------------
# records coming out


@dataclass(frozen=True)
class RoundInfo:
    round: int
    model: str
    started_at: float
    finished_at: float | None
    summary: dict | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RoundInfo:
        """From a row of the ``rounds`` table."""
        summary = json.loads(row["summary_json"]) if row["summary_json"] is not None else None
        return cls(row["round"], row["model"], row["started_at"], row["finished_at"], summary)


@dataclass(frozen=True)
class StoredPuzzle:
    id: int
    canonical_hash: str
    source: str
    name: str
    answer_arg: str
    answer_type: str
    defaults: tuple[tuple[str, str], ...]
    origin: str  # "seed" or "generated"
    key: str | None  # the seed's key
    round: int  # 0 for seeds
    model: str | None
    prompt_seed: int | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredPuzzle:
        """From a row of the ``puzzles`` table (``defaults_json`` decoded)."""
        defaults = tuple((name, text) for name, text in json.loads(row["defaults_json"]))
        return cls(
            id=row["id"],
            canonical_hash=row["canonical_hash"],
            source=row["source"],
            name=row["name"],
            answer_arg=row["answer_arg"],
            answer_type=row["answer_type"],
            defaults=defaults,
            origin=row["origin"],
            key=row["key"],
            round=row["round"],
            model=row["model"],
            prompt_seed=row["prompt_seed"],
        )

    @property
    def puzzle(self) -> Puzzle:
        return Puzzle(self.source, self.name, self.answer_arg, self.answer_type, self.defaults)


@dataclass(frozen=True)
class StoredProposal:
    id: int
    round: int
    batch: int
    idx: int
    prompt_seed: int | None
    raw: str
    status: str
    reason: str
    puzzle_id: int | None
    origin: str = MODEL
    parent: str | None = None


@dataclass(frozen=True)
class StoredAttempt:
    id: int
    puzzle_id: int
    round: int
    batch: int
    idx: int
    source: str
    solution_hash: str
    length: int
    status: str
    seconds: float
    detail: str
    model: str | None
    prompt_seed: int | None


@dataclass(frozen=True)
class StoredPair:
    id: int
    puzzle_id: int
    attempt_id: int | None  # None for a seed's reference solution
    round: int
    puzzle_source: str
    solution_source: str
    solution_hash: str
    length: int


@dataclass(frozen=True)
class CheckpointInfo:
    round: int
    path: str
    base_model: str
    examples: int
    seconds: float
    created_at: float


@dataclass(frozen=True)
class EvalRecord:
    round: int
    model: str
    dataset: str
    k: int
    n: int
    pass_at_k: float
    solved: int
    total: int
    details: dict
    created_at: float


# ---------------------------------------------------------------------------------------------------
# rules the store applies to solutions


def solution_hash(source: str) -> str:
    """SHA-256 of a solution's code, independent of formatting, comments and the function's name.

    Text that does not parse is hashed as stripped text.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        text = "text:" + source.strip()
    else:
        defs = [n for n in tree.body if isinstance(n, FUNCTION_DEFS)]
        if len(defs) == 1:
            rename_identifier(tree, defs[0].name, "g", names_and_functions_only=True)
        text = "ast:" + ast.dump(tree)
    return hashlib.sha256(text.encode()).hexdigest()


def solution_length(source: str) -> int:
    """The length the shortest-solutions rule compares: characters of the stripped source."""
    return len(source.strip())

