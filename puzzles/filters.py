"""Pure filter logic for proposed puzzles: trivial-answer probes and decontamination against eval sets.

Running the probes is the sandbox's job (``f`` is untrusted); this module only says which answers
to try and how to recognise a puzzle that is too close to an evaluation puzzle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from puzzles.canonical import (
    NEAR_DUPLICATE_THRESHOLD,
    CanonicalForm,
    canonical_form,
    canonical_hash,
    near_duplicate_tokens,
)
from puzzles.records import InvalidProgram
from puzzles.similarity import ShingleIndex

BASE_PROBES: dict[str, tuple] = {
    "int": (0, 1, -1, 2, 10, 100),
    "float": (0.0, 1.0, -1.0, 0.5),
    "str": ("", "a", "0", "abc"),
    "bool": (True, False),
}


def probe_answers(answer_type: str) -> list[object]:
    """Cheap answers of ``answer_type`` that a non-trivial puzzle must reject.

    For ``List[T]``: the empty list, one-element lists of T's probes and a short list of them.
    A bool puzzle is always trivial: one of True and False solves it (the filter says so).
    """
    if answer_type.startswith("List[") and answer_type.endswith("]"):
        inner = probe_answers(answer_type[5:-1])
        return [[], *([x] for x in inner[:3]), inner[:3]]
    if answer_type not in BASE_PROBES:
        raise ValueError(f"{answer_type!r} is not a canonical P3 answer type")
    return list(BASE_PROBES[answer_type])


@dataclass(frozen=True)
class EvalEntry:
    key: str
    canonical_hash: str
    tokens: frozenset[str]
    near_check: bool = True  # False: only an exact (canonical) match counts, see EvalIndex


class EvalIndex:
    """The evaluation puzzles in use: exact canonical hashes and near-duplicate token sets.

    An evaluation puzzle that the training data already comes near (a fresh instance of a seed family
    whose other instances are training seeds) is checked by canonical hash only: the near-duplicate
    check would reject every instance of its family, training seeds included, so it would block all
    in-family data while protecting nothing the training set does not already contain. Held-out
    families (nothing in training comes near them) keep the full near-duplicate check.
    """

    def __init__(self, entries: Iterable[EvalEntry], threshold: float = NEAR_DUPLICATE_THRESHOLD):
        self.entries = list(entries)
        self.threshold = threshold
        self.by_hash = {e.canonical_hash: e.key for e in self.entries}
        self._near = [e for e in self.entries if e.near_check]
        self._near_index = ShingleIndex(e.tokens for e in self._near)

    @classmethod
    def from_sources(
        cls,
        items: Iterable[tuple[str, str]],
        threshold: float = NEAR_DUPLICATE_THRESHOLD,
        training: Iterable[str] = (),
    ) -> EvalIndex:
        """``items``: (key, puzzle source) pairs; ``training``: puzzle sources already trained on."""
        seen = ShingleIndex.of_sources(training)
        entries = []
        for key, source in items:
            tokens = near_duplicate_tokens(source)
            covered = seen.first_match(tokens, threshold) is not None
            entries.append(EvalEntry(key, canonical_hash(source), tokens, near_check=not covered))
        return cls(entries, threshold)

    def hashes(self) -> set[str]:
        return set(self.by_hash)

    def contamination(self, source: str) -> str | None:
        """Why ``source`` must not be used (same canonical form as, or near, an eval puzzle), or None."""
        try:
            form = canonical_form(source)
        except InvalidProgram as e:
            return f"cannot be compared with the evaluation puzzles: {e}"
        return self.contamination_of(form)

    def contamination_of(self, form: CanonicalForm) -> str | None:
        """``contamination`` of a puzzle whose canonical form is computed already."""
        if form.hash in self.by_hash:
            return f"same canonical form as evaluation puzzle {self.by_hash[form.hash]}"
        match = self._near_index.first_match(form.tokens, self.threshold)
        if match is not None:
            index, score = match
            return f"near-duplicate of evaluation puzzle {self._near[index].key} (similarity {score:.2f})"
        return None
