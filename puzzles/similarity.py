"""Nearest programs by token-shingle similarity: the one index behind few-shot example choice,
decontamination and seed-distance reports.

Entries are shingle sets (:func:`puzzles.canonical.near_duplicate_tokens`); a score is
:func:`puzzles.canonical.similarity` (Jaccard). An inverted index from shingle to entries means a query
scores only the entries it shares a shingle with; every other entry scores 0.0.
"""

from __future__ import annotations

from collections.abc import Iterable

from puzzles.canonical import near_duplicate_tokens, similarity


class ShingleIndex:
    """Shingle sets of programs, in the order given; results are entry indices into that order."""

    def __init__(self, shingles: Iterable[frozenset[str]] = ()):
        self.shingles: list[frozenset[str]] = []
        self._postings: dict[str, list[int]] = {}
        for index, tokens in enumerate(shingles):
            self.shingles.append(tokens)
            for shingle in tokens:
                self._postings.setdefault(shingle, []).append(index)

    @classmethod
    def of_sources(cls, sources: Iterable[str]) -> ShingleIndex:
        """The index of ``near_duplicate_tokens(source)`` for each source (it never raises)."""
        return cls(near_duplicate_tokens(source) for source in sources)

    def similarities(self, tokens: frozenset[str]) -> list[float]:
        """``similarity(tokens, entry)`` for every entry, in order."""
        scores = [0.0] * len(self.shingles)
        sharing: set[int] = set()
        for shingle in tokens:
            sharing.update(self._postings.get(shingle, ()))
        for index in sharing:
            scores[index] = similarity(tokens, self.shingles[index])
        return scores

    def nearest(self, tokens: frozenset[str], k: int) -> list[int]:
        """The ``k`` entries most similar to ``tokens``, most similar first; ties in entry order."""
        scores = self.similarities(tokens)
        return sorted(range(len(scores)), key=lambda index: -scores[index])[:k]

    def first_match(self, tokens: frozenset[str], threshold: float) -> tuple[int, float] | None:
        """The first entry, in entry order, at least ``threshold`` similar to ``tokens``, with its
        similarity; None when there is none."""
        return next(
            ((i, score) for i, score in enumerate(self.similarities(tokens)) if score >= threshold), None
        )

    def best(self, tokens: frozenset[str]) -> tuple[int, float] | None:
        """The entry most similar to ``tokens`` (the first on ties) with its similarity; None when empty."""
        scores = self.similarities(tokens)
        if not scores:
            return None
        index = max(range(len(scores)), key=scores.__getitem__)  # max keeps the first of equals
        return index, scores[index]
