"""The default regime's three-way split of the seed families: task seeds, task evaluation, pretraining.
No oracle of the task may reach the embedded model's corpus, and no seed may be evaluated."""

from __future__ import annotations

from collections import Counter

from factory.loop.corpus import BUILTIN, BUILTIN_AUGMENTED, base_corpus, builtin_seeds, load_eval_puzzles
from factory.loop.prompts import training_example
from puzzles.canonical import canonical_hash
from puzzles.seeds import (
    TASK_SEEDS_PER_FAMILY,
    all_families,
    held_out_families,
    load_seeds,
    load_task_seeds,
    pretraining_seeds,
    task_families,
)

TASKS = task_families()
HELD_OUT = held_out_families()


def test_the_task_families_cover_every_topic_and_are_not_held_out():
    topics = {topic for topic, _ in all_families()}
    assert {topic for topic, family in all_families() if family.name in TASKS} == topics
    assert not TASKS & HELD_OUT
    assert len(TASKS) == 33


def test_task_seeds_are_a_few_instances_of_each_task_family():
    seeds = load_task_seeds("train")
    assert Counter(s.family for s in seeds) == {name: TASK_SEEDS_PER_FAMILY for name in TASKS}
    assert all(s.split == "train" for s in seeds)


def test_the_task_evaluation_holds_the_other_task_instances_and_the_held_out_families():
    seeds, evaluation = load_task_seeds("train"), load_task_seeds("test")
    assert {s.family for s in evaluation} == TASKS | HELD_OUT
    assert not {s.key for s in seeds} & {s.key for s in evaluation}
    assert not {canonical_hash(s.puzzle.source) for s in seeds} & {canonical_hash(s.puzzle.source) for s in evaluation}
    held_out_instances = [s for s in load_seeds("test") if s.family in HELD_OUT]
    assert sum(s.family in HELD_OUT for s in evaluation) == len(held_out_instances)


def test_pretraining_never_holds_a_task_or_held_out_family():
    pretraining = pretraining_seeds(3)
    assert {s.family for s in pretraining}.isdisjoint(TASKS | HELD_OUT)
    assert {s.family for s in pretraining} == {f.name for _, f in all_families() if not f.held_out} - TASKS


def test_the_default_corpus_holds_no_seed_and_no_evaluation_puzzle():
    corpus = "\n".join(base_corpus(BUILTIN))
    for s in load_task_seeds("train") + load_task_seeds("test"):
        assert s.puzzle.source not in corpus, s.key
    # the augmented corpus is the oracle: it holds the augmented seeds themselves
    augmented = set(base_corpus(BUILTIN_AUGMENTED))
    assert all(training_example(s.puzzle.source, s.solutions[0].source) in augmented for s in load_seeds("train"))


def test_each_builtin_set_has_its_own_evaluation():
    assert builtin_seeds(BUILTIN, "train") == load_task_seeds("train")
    assert builtin_seeds(BUILTIN_AUGMENTED, "train") == load_seeds("train")
    task, augmented = load_eval_puzzles(seeds=BUILTIN), load_eval_puzzles(seeds=BUILTIN_AUGMENTED)
    assert (task.name, len(task.puzzles)) == ("task-test", 310)
    assert (augmented.name, len(augmented.puzzles)) == ("seeds-test", 229)
