"""Decontamination: exact and near-duplicate matches against an evaluation set."""

from puzzles.filters import EvalIndex
from puzzles.seeds import all_families, load_seeds

TRAIN = [s.puzzle.source for s in load_seeds("train")]
TEST = load_seeds("test")
HELD_OUT = {family.name for _, family in all_families() if family.held_out}


def family_of(key: str) -> str:
    return key.removeprefix("seed/").split(":")[0]


def index(training=()) -> EvalIndex:
    return EvalIndex.from_sources(((s.key, s.puzzle.source) for s in TEST), training=training)


def test_without_training_every_training_seed_is_near_its_families_test_instance():
    idx = index()
    assert all(idx.contamination(source) for source in TRAIN)


def test_fresh_instances_of_training_families_are_checked_by_canonical_hash_only():
    idx = index(TRAIN)
    by_key = {e.key: e for e in idx.entries}
    for seed in TEST:
        assert by_key[seed.key].near_check == (family_of(seed.key) in HELD_OUT)
    assert not any(idx.contamination(source) for source in TRAIN)
    # A training family's held-out instance itself is still caught, renamed and reformatted.
    fresh = next(s for s in TEST if family_of(s.key) not in HELD_OUT)
    copy = "# copy\n" + fresh.puzzle.source.replace("def f(", "def f7(", 1)
    assert "same canonical form" in idx.contamination(copy)


def test_held_out_families_keep_the_near_duplicate_check():
    idx = index(TRAIN)
    held = next(s for s in TEST if family_of(s.key) in HELD_OUT)
    variant = held.puzzle.source.replace("shift=19", "shift=5").replace("'szdajqyskj'", "'abc'")
    assert variant != held.puzzle.source
    why = idx.contamination(variant)
    assert why and "near-duplicate" in why and held.key in why
