import random
import re

import pytest

from factory.loop.prompts import (
    PRELUDE,
    STOP_SEQUENCES,
    propose_prompt,
    puzzle_listing,
    solve_prompt,
    training_example,
)

PUZZLES = [f"def sat(x: int, a={a}):\n    # a comment that ast drops\n    return x > a\n" for a in range(10)]
SOLUTIONS = [f"def sol(a={a}):\n    return a + 1\n" for a in range(10)]
PAIRS = list(zip(PUZZLES, SOLUTIONS, strict=True))


def _exec(source: str) -> dict:
    namespace: dict = {}
    exec(PRELUDE + source, namespace)
    return namespace


# ---------------------------------------------------------------------------------------------------
# propose_prompt


def test_propose_prompt_shape():
    prompt, prefix = propose_prompt(PUZZLES, random.Random(0), 4)
    assert prefix == "def f5("
    assert prompt.startswith(PRELUDE)
    assert prompt.endswith("\n\ndef f5(")
    assert re.findall(r"^def (\w+)\(", prompt, re.M) == ["f1", "f2", "f3", "f4", "f5"]
    assert "sat" not in prompt and "#" not in prompt
    # the examples run as written (prefix removed)
    namespace = _exec(prompt[len(PRELUDE) : -len(prefix)])
    assert all(namespace[f"f{i}"](100) is True for i in range(1, 5))
    # k distinct examples
    defaults = re.findall(r"a=(\d+)", prompt)
    assert len(set(defaults)) == 4


def test_propose_prompt_is_deterministic_given_seed():
    a = propose_prompt(PUZZLES, random.Random(123), 3)
    b = propose_prompt(PUZZLES, random.Random(123), 3)
    assert a == b
    different = {propose_prompt(PUZZLES, random.Random(seed), 3)[0] for seed in range(20)}
    assert len(different) > 1


def test_propose_prompt_with_fewer_examples_than_k():
    prompt, prefix = propose_prompt(PUZZLES[:2], random.Random(0), 4)
    assert prefix == "def f3("
    assert re.findall(r"^def (\w+)\(", prompt, re.M) == ["f1", "f2", "f3"]
    prompt, prefix = propose_prompt([], random.Random(0), 4)
    assert (prompt, prefix) == (PRELUDE + "def f1(", "def f1(")


def test_propose_prompt_skips_broken_and_duplicate_examples():
    examples = ["def broken(:\n", PUZZLES[0], PUZZLES[0].replace("sat", "other"), "x = 1\n"]
    prompt, prefix = propose_prompt(examples, random.Random(5), 4)
    assert prefix == "def f2("  # only one usable distinct example
    assert prompt == PRELUDE + "def f1(x: int, a=0):\n    return x > a\n\ndef f2("


# ---------------------------------------------------------------------------------------------------
# solve_prompt


def test_solve_prompt_shape():
    target = "def mine(s: str, n=3) -> bool:\n    return len(s) == n\n"
    prompt, prefix = solve_prompt(PAIRS, target, random.Random(1), 3)
    assert prefix == "def g4(n=3):"  # the whole signature: the model writes only the body
    assert prompt.startswith(PRELUDE) and prompt.endswith("\n\ndef g4(n=3):")
    assert re.findall(r"^def (\w+)\(", prompt, re.M) == ["f1", "g1", "f2", "g2", "f3", "g3", "f4", "g4"]
    assert re.findall(r"^assert .*$", prompt, re.M) == [f"assert f{i}(g{i}())" for i in (1, 2, 3)]
    assert "def f4(s: str, n=3) -> bool:\n    return len(s) == n\n\ndef g4(n=3):" in prompt
    # every example block holds: the prompt minus the unfinished target runs cleanly
    _exec(prompt[len(PRELUDE) : prompt.index("def f4(")])
    # a completion finishes the target
    completion = "\n    return 'a' * n\n\nassert f4(g4())\n"
    namespace = _exec(prompt[len(PRELUDE) :] + completion)
    assert namespace["f4"](namespace["g4"]()) is True


def test_solve_prompt_deterministic_and_never_includes_target():
    target = PUZZLES[4]
    # the target reformatted and renamed is still the target
    disguised = [(target.replace("sat", "other").replace("    #", "\n    #"), SOLUTIONS[4])]
    examples = PAIRS + disguised
    for seed in range(30):
        prompt, prefix = solve_prompt(examples, target, random.Random(seed), 9)
        assert prompt.count("a=4") == 2, seed  # only the target itself and its solution's signature
        assert prefix == "def g10(a=4):"
    assert solve_prompt(examples, target, random.Random(7), 3) == solve_prompt(
        examples, target, random.Random(7), 3
    )


def test_solve_prompt_bad_target_raises():
    with pytest.raises(ValueError, match="does not parse"):
        solve_prompt(PAIRS, "def f(:", random.Random(0), 2)


def test_solve_prompt_skips_pairs_that_do_not_rename():
    examples = [(PUZZLES[0], "def a():\n    return 1\ndef b():\n    return 2\n"), PAIRS[1]]
    prompt, prefix = solve_prompt(examples, PUZZLES[5], random.Random(0), 2)
    assert prefix == "def g2(a=5):"
    assert "a=1" in prompt and "a=0" not in prompt


# ---------------------------------------------------------------------------------------------------
# training texts


def test_training_example_matches_solve_block():
    text = training_example(PUZZLES[2], SOLUTIONS[2])
    assert text == (
        PRELUDE
        + "def f1(x: int, a=2):\n    return x > a\n\n"
        + "def g1(a=2):\n    return a + 1\n\n"
        + "assert f1(g1())\n"
    )
    _exec(text[len(PRELUDE) :])  # the assertion holds
    # it is exactly a solve-prompt block
    prompt, _ = solve_prompt([(PUZZLES[2], SOLUTIONS[2])], PUZZLES[5], random.Random(0), 1)
    assert prompt.startswith(text + "\n")


def test_puzzle_listing():
    text = puzzle_listing(PUZZLES[:3])
    assert text.startswith(PRELUDE) and text.endswith("return x > a\n")
    assert re.findall(r"^def (\w+)\(", text, re.M) == ["f1", "f2", "f3"]
    assert "a=0" in text.split("def f2")[0]  # order kept
    with pytest.raises(ValueError):
        puzzle_listing(["def f(:"])


def test_training_texts_are_solve_blocks_then_listings():
    from factory.loop.corpus import training_texts

    texts = training_texts(PAIRS[:3], PUZZLES, 2, 3, random.Random(5))
    rng = random.Random(5)
    assert texts == [training_example(f, g) for f, g in PAIRS[:3]] + [
        puzzle_listing(rng.sample(PUZZLES, 3)) for _ in range(2)
    ]
    # A pool smaller than a listing gives listings of the whole pool, in a drawn order.
    small = training_texts([], PUZZLES[:2], 1, 3, random.Random(0))
    assert len(small) == 1 and re.findall(r"^def (\w+)\(", small[0], re.M) == ["f1", "f2"]


# ---------------------------------------------------------------------------------------------------
# completions and few-shot examples


def test_stop_sequences_start_a_new_line():
    assert all(stop.startswith("\n") for stop in STOP_SEQUENCES)
    assert "\ndef " in STOP_SEQUENCES and "\nassert" in STOP_SEQUENCES


def test_training_examples_show_the_signature_a_solve_prompt_ends_with():
    from factory.loop.prompts import solution_signature

    puzzle = "def f(s: str, n=3, c='z') -> bool:\n    return s == c * n\n"
    no_args = "def sol():\n    return 'zzz'\n"
    text = training_example(puzzle, no_args)
    assert solution_signature(puzzle, "g1") == "def g1(n=3, c='z'):"
    assert "def g1(n=3, c='z'):\n    return 'zzz'" in text
    namespace: dict = {}
    exec(text, namespace)  # the example itself runs: f1(g1()) holds


def test_example_index_ranks_the_nearest_puzzles_first_with_one_spare():
    from factory.loop.prompts import ExampleIndex

    other = ("def sat(s: str, n=2):\n    return s.count('b') == n\n", "def sol(n=2):\n    return 'b' * n\n")
    pairs = [other, *PAIRS]
    index = ExampleIndex(pairs)
    # Every PUZZLES[i] differs from the others only in a constant: they tie, and keep their order.
    assert index.nearest(PUZZLES[7], 2) == PAIRS[:3]
    assert index.nearest(other[0], 0) == [other]
    assert ExampleIndex([]).nearest(PUZZLES[0], 3) == []


def test_example_index_gives_the_same_examples_as_scoring_every_pair():
    from factory.loop.prompts import ExampleIndex
    from puzzles.canonical import near_duplicate_tokens, similarity
    from puzzles.seeds import load_seeds

    pairs = [(s.puzzle.source, s.solutions[0].source) for s in load_seeds("train") if s.solutions]
    index = ExampleIndex(pairs)
    shingles = index.index.shingles  # near_duplicate_tokens of each pair's puzzle
    queries = [s.puzzle.source for s in load_seeds("test")[::6]] + [f for f, _ in pairs[::40]]
    for query in queries:
        tokens = near_duplicate_tokens(query)
        scores = [similarity(tokens, other) for other in shingles]
        ranked = sorted(range(len(pairs)), key=lambda i: -scores[i])
        assert index.nearest(query, 3) == [pairs[i] for i in ranked[:4]]
