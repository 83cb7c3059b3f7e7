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
