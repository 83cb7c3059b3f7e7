"""Nearest programs by token-shingle similarity: the one index behind few-shot example choice,
decontamination and seed-distance reports.

Entries are shingle sets (:func:`puzzles.canonical.near_duplicate_tokens`); a score is
:func:`puzzles.canonical.similarity` (Jaccard). Every answer is exact (the same as scoring every entry;
only ``nearest(..., max_scored=N)`` trades that for a bound on work), but a query looks at few entries:

- entries with equal shingle sets are one group, scored once: instances of a puzzle family differ only
  in constants, which the shingles fold, so a store of a million puzzles holds far fewer groups.
- threshold queries (``first_match``) use prefix filtering (Chaudhuri et al., ICDE 2006): order
  shingles rarest first; two sets with Jaccard >= t share a shingle among the first
  ``|x| - ceil(t |x|) + 1`` of each. Indexing only those prefixes leaves a handful of candidates per
  query, each confirmed with the exact similarity.
- top-k queries (``nearest``, ``best``) walk the query's shingles rarest first and stop once no entry
  not yet seen can beat the k-th best: one that shares none of the first j of m shingles scores at
  most (m - j) / m.

MinHash LSH (datasketch) was measured and not used: 128 permutations cost about 0.6 ms per program on
top of the shingles (10 minutes per million entries) and 1 KiB of signature per entry, and its
misses would change verdicts, which the exact prefix index never does.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from itertools import islice

from puzzles.canonical import near_duplicate_tokens, similarity


class ShingleIndex:
    """Shingle sets of programs, in the order given; results are entry indices into that order."""

    def __init__(self, shingles: Iterable[frozenset[str]] = ()):
        self.shingles: list[frozenset[str]] = []
        self._group_of: list[int] = []  # entry -> its group: the entries with its shingle set
        self._members: list[list[int]] = []  # group -> its entries, ascending
        self._sets: list[frozenset[str]] = []  # group -> its shingle set
        self._postings: dict[str, list[int]] = {}  # shingle -> groups holding it, ascending
        groups: dict[frozenset[str], int] = {}
        for index, tokens in enumerate(shingles):
            self.shingles.append(tokens)
            group = groups.get(tokens)
            if group is None:
                group = groups[tokens] = len(self._sets)
                self._sets.append(tokens)
                self._members.append([])
                for shingle in tokens:
                    self._postings.setdefault(shingle, []).append(group)
            self._members[group].append(index)
            self._group_of.append(group)
        # Groups are numbered in order of their first entry, so ascending groups have ascending first entries.
        self._prefixes: dict[float, dict[str, list[int]]] = {}  # threshold -> prefix postings of groups

    @classmethod
    def of_sources(cls, sources: Iterable[str]) -> ShingleIndex:
        """The index of ``near_duplicate_tokens(source)`` for each source (it never raises)."""
        return cls(near_duplicate_tokens(source) for source in sources)

    def _rarest_first(self, tokens: Iterable[str]) -> list[str]:
        """``tokens`` in the index's global order: in fewest groups first (unknown ones first), then text."""
        postings = self._postings
        return sorted(tokens, key=lambda s: (len(postings.get(s, ())), s))

    def _prefix_length(self, size: int, threshold: float) -> int:
        # The small slack keeps float error from shortening a prefix (a longer one is always safe).
        return size - math.ceil(threshold * size - 1e-9) + 1

    def _prefix_postings(self, threshold: float) -> dict[str, list[int]]:
        """Postings of each group's prefix for ``threshold``, built on first use."""
        if threshold not in self._prefixes:
            prefixes: dict[str, list[int]] = {}
            for group, tokens in enumerate(self._sets):
                ordered = self._rarest_first(tokens)
                for shingle in ordered[: self._prefix_length(len(ordered), threshold)]:
                    prefixes.setdefault(shingle, []).append(group)
            self._prefixes[threshold] = prefixes
        return self._prefixes[threshold]

    def similarities(self, tokens: frozenset[str]) -> list[float]:
        """``similarity(tokens, entry)`` for every entry, in order (a scan: for tests and small indices)."""
        scores = [0.0] * len(self.shingles)
        scored: set[int] = set()
        for shingle in tokens:
            for group in self._postings.get(shingle, ()):
                if group not in scored:
                    scored.add(group)
                    score = similarity(tokens, self._sets[group])
                    for index in self._members[group]:
                        scores[index] = score
        return scores

    def nearest(self, tokens: frozenset[str], k: int, max_scored: int | None = None) -> list[int]:
        """The ``k`` entries most similar to ``tokens``, most similar first; ties in entry order.

        ``max_scored`` bounds the work: at most that many groups are scored, those sharing the rarest of
        the query's shingles first, and the best of them are returned. The answer is still exact
        whenever the search ends before the limit, as it does when ``k`` entries are close; only for
        a query that nothing comes near may it differ (it returns near entries, not the nearest).
        """
        k = min(k, len(self.shingles))
        if k <= 0:
            return []
        ordered = self._rarest_first(tokens)
        size = len(ordered)
        # A min-heap of the k best entries so far as (score, -entry): its root is the one to drop next.
        best: list[tuple[float, int]] = []
        seen: set[int] = set()  # groups scored
        budget = len(self._sets) if max_scored is None else max_scored
        for position, shingle in enumerate(ordered):
            # A group not seen yet shares none of ordered[:position]: it scores <= bound. Ties in
            # score go to the lower entry, so stop only when the k-th best is strictly better.
            if (len(best) == k and best[0][0] > (size - position) / size) or len(seen) >= budget:
                break
            for group in self._postings.get(shingle, ()):
                if group in seen:
                    continue
                if len(seen) >= budget:
                    break
                seen.add(group)
                score = similarity(tokens, self._sets[group])
                for index in islice(self._members[group], k):
                    item = (score, -index)
                    if len(best) < k:
                        heapq.heappush(best, item)
                    elif item > best[0]:
                        heapq.heapreplace(best, item)
                    else:
                        break  # the group's later entries rank lower still
        found = [-negated for _, negated in sorted(best, reverse=True)]
        if len(found) < k:  # the rest share no shingle: they score 0.0 and come in entry order
            unseen = (index for index, group in enumerate(self._group_of) if group not in seen)
            found += islice(unseen, k - len(found))
        return found

    def first_match(self, tokens: frozenset[str], threshold: float) -> tuple[int, float] | None:
        """The first entry, in entry order, at least ``threshold`` similar to ``tokens``, with its
        similarity; None when there is none."""
        if not self.shingles:
            return None
        if threshold <= 0.0:  # every entry qualifies, sharing a shingle or not
            return 0, similarity(tokens, self.shingles[0])
        prefixes = self._prefix_postings(threshold)
        ordered = self._rarest_first(tokens)
        candidates: set[int] = set()
        for shingle in ordered[: self._prefix_length(len(ordered), threshold)]:
            candidates.update(prefixes.get(shingle, ()))
        # Jaccard >= t needs t |x| <= |y| <= |x| / t: a cheap test before the exact one.
        low, high = threshold * len(tokens) - 1e-9, len(tokens) / threshold + 1e-9
        for group in sorted(candidates):
            if low <= len(self._sets[group]) <= high:
                score = similarity(tokens, self._sets[group])
                if score >= threshold:
                    return self._members[group][0], score
        return None

    def best(self, tokens: frozenset[str]) -> tuple[int, float] | None:
        """The entry most similar to ``tokens`` (the first on ties) with its similarity; None when empty."""
        found = self.nearest(tokens, 1)
        return (found[0], similarity(tokens, self.shingles[found[0]])) if found else None
