"""ShingleIndex: exactly the pairwise similarity, found through an inverted index."""

import random

from puzzles.canonical import near_duplicate_tokens, similarity
from puzzles.seeds import load_seeds
from puzzles.similarity import ShingleIndex

SOURCES = [s.puzzle.source for s in load_seeds("train")[:80]]


def test_similarities_are_exactly_the_pairwise_similarity():
    index = ShingleIndex.of_sources(SOURCES + ["", "def broken(:"])
    for query in SOURCES[::7] + ["", "def f(x: int) -> bool:\n    return x * x == 1764\n"]:
        tokens = near_duplicate_tokens(query)
        assert index.similarities(tokens) == [similarity(tokens, other) for other in index.shingles]


def test_nearest_ranks_by_similarity_with_ties_in_entry_order():
    index = ShingleIndex.of_sources(SOURCES)
    tokens = near_duplicate_tokens(SOURCES[10])
    scores = [similarity(tokens, other) for other in index.shingles]
    assert index.nearest(tokens, 5) == sorted(range(len(SOURCES)), key=lambda i: -scores[i])[:5]
    # Instances of one family differ only in constants: they tie at 1.0, and the first one wins.
    assert index.nearest(tokens, 1) == [scores.index(1.0)] and scores.index(1.0) < 10
    assert index.nearest(frozenset(), 3) == [0, 1, 2]  # nothing shared: entry order
    assert index.nearest(tokens, 0) == [] and ShingleIndex().nearest(tokens, 3) == []


def test_first_match_is_the_first_entry_at_or_above_the_threshold():
    copy = SOURCES[3]
    index = ShingleIndex.of_sources(["def f(s: str) -> bool:\n    return s.count('a') == 7\n", copy, copy])
    tokens = near_duplicate_tokens(copy)
    assert index.first_match(tokens, 0.8) == (1, 1.0)
    assert index.first_match(tokens, 0.0) == (0, similarity(tokens, index.shingles[0]))
    assert index.first_match(near_duplicate_tokens("x = 1"), 0.8) is None
    assert ShingleIndex().first_match(tokens, 0.0) is None


def test_best_is_the_most_similar_entry():
    shuffled = SOURCES[:]
    random.Random(0).shuffle(shuffled)
    index = ShingleIndex.of_sources(shuffled)
    tokens = near_duplicate_tokens(SOURCES[5])
    scores = [similarity(tokens, other) for other in index.shingles]
    assert index.best(tokens) == (scores.index(max(scores)), 1.0)  # the first of the family's instances
    assert index.best(frozenset()) == (0, 0.0)
    assert ShingleIndex().best(frozenset({"a"})) is None
    assert len(index.shingles) == len(SOURCES)


def _variants() -> list[str]:
    """A few hundred varied programs: the training seeds, the held-out seeds and edited copies."""
    sources = [s.puzzle.source for s in load_seeds("train")] + [s.puzzle.source for s in load_seeds("test")]
    rng = random.Random(1)
    edited = []
    for source in rng.sample(sources, 120):
        lines = source.splitlines()
        if len(lines) > 2:  # drop or duplicate a line: similar, rarely identical
            i = rng.randrange(1, len(lines))
            lines = lines[:i] + lines[i + 1 :] if rng.random() < 0.5 else lines[: i + 1] + lines[i:]
        edited.append("\n".join(lines))
    return sources + edited + ["", "def broken(:", "x = 1"]


def test_the_index_answers_exactly_as_a_scan_of_every_entry():
    entries = [near_duplicate_tokens(s) for s in _variants()]
    index = ShingleIndex(entries)
    queries = entries[::15] + [near_duplicate_tokens("def f(x: int) -> bool:\n    return x * x == 1764\n"), frozenset()]
    for tokens in queries:
        scores = [similarity(tokens, other) for other in entries]
        ranked = sorted(range(len(entries)), key=lambda i: -scores[i])
        for k in (1, 4, 10, 50):
            assert index.nearest(tokens, k) == ranked[:k] == index.nearest(tokens, k, max_scored=len(entries))
        capped = index.nearest(tokens, 4, max_scored=3)  # less work: near entries, not always the nearest
        assert len(set(capped)) == 4 and capped == index.nearest(tokens, 4, max_scored=3)
        assert index.best(tokens) == (ranked[0], scores[ranked[0]])
        for threshold in (0.3, 0.5, 0.8, 0.95, 1.0):
            expected = next(((i, s) for i, s in enumerate(scores) if s >= threshold), None)
            assert index.first_match(tokens, threshold) == expected, threshold
