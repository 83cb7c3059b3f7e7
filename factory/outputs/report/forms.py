"""Distinct and new canonical forms per round, read from the store a chunk at a time.

A round *produces* the canonical hash of each of its parsable proposals (accepted, trivial, duplicate,
contaminated; invalid ones never). A produced form is *new* when no earlier round produced it and no
seed has it. Rather than remember every earlier round's forms, most are looked up in the store: a form
stored as a (non-blocked) seed, or as a puzzle generated in a round before this one, was produced before
(that round's accepted proposal). Only the forms that no such puzzle covers (a trivial or contaminated
form, never stored) are remembered, so memory grows with those alone.
"""

from __future__ import annotations

import hashlib

from factory.store import RunStore
from factory.store.report_reads import proposal_chunks, stored_rounds
from puzzles.canonical import canonical_hash
from puzzles.parse import parse_puzzle
from puzzles.records import InvalidProgram


class CanonicalForms:
    """Call with each generation round, in round order: ``count(round) -> (distinct, new)``."""

    def __init__(self, store: RunStore, chunk_rows: int) -> None:
        self._store = store
        self._chunk_rows = chunk_rows  # proposals read at a time
        self._unstored: set[str] = set()  # produced forms no stored puzzle vouches for (see module doc)

    def count(self, round: int) -> tuple[int, int]:
        accepted, others = self._produced(round)
        produced = accepted | others
        rounds = stored_rounds(self._store, others - accepted)
        rounds.update(dict.fromkeys(accepted, round))
        new = 0
        for form in produced:
            stored = rounds.get(form)  # 0: a seed's; None: no stored puzzle vouches for it
            if not (stored == 0 or (stored is not None and stored < round) or form in self._unstored):
                new += 1
            if stored is None or stored > round:
                self._unstored.add(form)  # a later round could not tell from the store that it was produced
        return len(produced), new

    def _produced(self, round: int) -> tuple[set[str], set[str]]:
        """The round's accepted puzzles' hashes, and the other parsable proposals' hashes."""
        accepted: set[str] = set()
        by_raw: dict[bytes, str] = {}
        for chunk in proposal_chunks(self._store, round, self._chunk_rows, accepted=True):
            for row in chunk:
                accepted.add(row["puzzle_hash"])
                # The filter hashed this raw text to this puzzle (canonical_hash(parse_puzzle(raw).source)),
                # so a rejected copy of the same text need not be parsed again.
                by_raw[_digest(row["raw"])] = row["puzzle_hash"]
        others: set[str] = set()
        for chunk in proposal_chunks(self._store, round, self._chunk_rows, accepted=False):
            for row in chunk:
                form = by_raw.get(_digest(row["raw"])) or _form(row["raw"])
                if form is not None:
                    others.add(form)
        return accepted, others


def _digest(raw: str) -> bytes:
    return hashlib.blake2b(raw.encode(), digest_size=16).digest()


def _form(raw: str) -> str | None:
    try:
        return canonical_hash(parse_puzzle(raw).source)
    except InvalidProgram:
        return None
