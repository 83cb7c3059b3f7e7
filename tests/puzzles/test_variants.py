"""Seed variants: new instances of a seed's family made by perturbing its default arguments' literals."""

from __future__ import annotations

import ast
import random

import pytest

from puzzles.parse import parse_puzzle
from puzzles.seeds import load_task_seeds
from puzzles.variants import literal_variant

TASK_SEEDS = load_task_seeds("train")


def _without_defaults(source: str) -> str:
    """The function with its default arguments blanked: what a variant must keep."""
    tree = ast.parse(source)
    arguments = tree.body[0].args
    arguments.defaults = [ast.Constant(None) for _ in arguments.defaults]
    arguments.kw_defaults = [None if d is None else ast.Constant(None) for d in arguments.kw_defaults]
    return ast.dump(tree)


@pytest.mark.parametrize("seed", TASK_SEEDS, ids=lambda s: s.key)
def test_every_task_seed_has_variants_that_are_new_instances_of_it(seed):
    source = seed.puzzle.source
    variants = {literal_variant(source, random.Random(i)) for i in range(6)}
    assert None not in variants
    for variant in variants:
        puzzle = parse_puzzle(variant)  # the proposals' rules: parses, P3 shape, hygiene
        assert (puzzle.answer_arg, puzzle.answer_type) == (seed.puzzle.answer_arg, seed.puzzle.answer_type)
        assert _without_defaults(variant) == _without_defaults(source)  # only the instance's data changed
        assert puzzle.defaults != seed.puzzle.defaults
    assert len(variants) >= 4  # they differ from each other too


def test_a_variant_is_reproduced_from_its_rng():
    source = TASK_SEEDS[0].puzzle.source
    assert literal_variant(source, random.Random("x")) == literal_variant(source, random.Random("x"))


def test_counts_stay_non_negative_and_strings_keep_their_alphabet():
    source = "def f(s: str, n=1, word='abc', code='0042') -> bool:\n    return s * n == word + code\n"
    for i in range(200):
        defaults = dict(parse_puzzle(literal_variant(source, random.Random(i))).defaults)
        assert int(defaults["n"]) >= 0
        word, code = ast.literal_eval(defaults["word"]), ast.literal_eval(defaults["code"])
        assert word.isalpha() and word.islower() and (code.isdigit() or code == "")


@pytest.mark.parametrize(
    "source",
    [
        "def f(x: int) -> bool:\n    return x == 3\n",  # no default arguments
        "def f(x: int, flag=True, nothing=None) -> bool:\n    return flag and x == 3\n",  # no number or string
        "def f(x: int, a=\n",  # does not parse
        "x = 3\n",  # not a function
        "",
    ],
)
def test_a_puzzle_without_instance_data_has_no_variant(source):
    assert literal_variant(source, random.Random(0)) is None


def test_p3_training_puzzles_mostly_have_variants_and_every_variant_parses(p3_path):
    from puzzles.p3 import load_p3

    puzzles = load_p3(p3_path, split="train")[:300]
    variants = [literal_variant(p.puzzle.source, random.Random(p.key)) for p in puzzles]
    made = [v for v in variants if v is not None]
    assert len(made) >= 0.6 * len(puzzles)
    for variant in made:
        parse_puzzle(variant)
