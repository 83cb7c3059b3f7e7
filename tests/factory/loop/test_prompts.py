import random
import re

import pytest

from factory.loop.prompts import (
    PRELUDE,
    STOP_SEQUENCES,
    function_text,
    is_function_complete,
    propose_prompt,
    puzzle_listing,
    rename_function,
    solve_prompt,
    training_example,
)

PUZZLES = [f"def sat(x: int, a={a}):\n    # a comment that ast drops\n    return x > a\n" for a in range(10)]
SOLUTIONS = [f"def sol(a={a}):\n    return a + 1\n" for a in range(10)]
PAIRS = list(zip(PUZZLES, SOLUTIONS, strict=True))

RECURSIVE = '''
def fib(n: int, target=55) -> bool:
    """Is n the index of target in the Fibonacci sequence?"""
    def inner(m):
        return m if m < 2 else fib_value(m)
    return fib_value(n) == target and inner(n) == target

def fib_value(m):
    return m if m < 2 else fib_value(m - 1) + fib_value(m - 2)
'''

SELF_RECURSIVE = """
def count(x: int, n=6) -> bool:
    if n == 0:
        return x == 0
    return count(x - 1, n - 1)
"""


def _exec(source: str) -> dict:
    namespace: dict = {}
    exec(PRELUDE + source, namespace)
    return namespace


# ---------------------------------------------------------------------------------------------------
# rename_function


def test_rename_keeps_recursion_working():
    renamed = rename_function(SELF_RECURSIVE, "f7")
    assert "def f7(" in renamed and "count" not in renamed
    f7 = _exec(renamed)["f7"]
    assert f7(6) is True and f7(5) is False


def test_rename_with_several_functions_needs_old_name():
    with pytest.raises(ValueError, match="exactly one top-level function"):
        rename_function(RECURSIVE, "f1")
    renamed = rename_function(RECURSIVE, "helper", old_name="fib_value")
    namespace = _exec(renamed)
    assert "helper" in namespace and "fib_value" not in namespace
    assert namespace["fib"](10) is True
    assert namespace["helper"](10) == 55
    assert '"""Is n the index' in renamed  # docstring kept


def test_rename_touches_names_not_attributes_or_strings():
    source = "def sat(s: str):\n    return s.sat == 'sat' and sat.__name__ == 'sat'\n"
    renamed = rename_function(source, "f1")
    assert renamed == "def f1(s: str):\n    return s.sat == 'sat' and f1.__name__ == 'sat'"


def test_rename_refuses_capture_and_bad_input():
    with pytest.raises(ValueError, match="already uses the name f1"):
        rename_function("def sat(x: int):\n    f1 = 3\n    return x == f1\n", "f1")
    with pytest.raises(ValueError, match="does not parse"):
        rename_function("def sat(x: int:\n    return True\n", "f1")
    with pytest.raises(ValueError, match="not a Python identifier"):
        rename_function(PUZZLES[0], "1f")
    with pytest.raises(ValueError, match="no top-level function named 'nope'"):
        rename_function(PUZZLES[0], "f1", old_name="nope")
    assert rename_function(PUZZLES[0], "sat").startswith("def sat(")  # same name: only reformatted


def test_rename_drops_comments_keeps_code():
    renamed = rename_function(PUZZLES[3], "f2")
    assert renamed == "def f2(x: int, a=3):\n    return x > a"


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


# ---------------------------------------------------------------------------------------------------
# completions


def test_stop_sequences_start_a_new_line():
    assert all(stop.startswith("\n") for stop in STOP_SEQUENCES)
    assert "\ndef " in STOP_SEQUENCES and "\nassert" in STOP_SEQUENCES


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("def f5(x: int) -> bool:\n    return x > 3\n", False),
        ("def f5(x: int) -> bool:\n    return x > 3\n\n", False),
        ("def f5(x: int) -> bool:\n    return x > 3\n\n   \n", False),
        ("def f5(x: int) -> bool:\n    return x > 3\n\ndef f6(", True),
        ("def f5(x: int) -> bool:\n    return x > 3\nassert", True),
        ("def f5(x: int) -> bool:\n    return x > 3\n# note", True),
        ("x: int) -> bool:\n    return x > 3\n\ndef", True),  # completion without the prefix
        ("x: int) -> bool:\n    return x > 3\n", False),
        # a column-0 line inside brackets, a string, or after a backslash is still the function
        ("def f5(\nx: int,\na=1,\n) -> bool:\n    return x > a\n", False),
        ("def f5(x: str) -> bool:\n    return x == '''\nabc\n'''\n", False),
        ("def f5(x: str) -> bool:\n    return x == '''\nabc\n", False),
        ("def f5(x: str) -> bool:\n    return x in [1,\n2]\n", False),
        ("def f5(x: int) -> bool:\n    return x == 1 or \\\nx == 2\n", False),
        ("def f5(x: str) -> bool:\n    return x == ')\\'('  # (\n", False),
        ("def f5(x: str) -> bool:\n    return x == ')\\'('  # (\nprint(1)", True),
        ("def f5(x: str) -> bool:\n    return x == '''\nabc\n'''\nz", True),
        ("def f5(x: int) -> bool: return x > 3\nz = 1", True),
    ],
)
def test_is_function_complete(text, complete):
    assert is_function_complete(text) is complete


def test_function_text_cuts_at_the_first_column0_line():
    text = "def f5(x: int) -> bool:\n    return x > 3  \n\n\nassert f5(4)\ndef f6("
    assert function_text(text) == "def f5(x: int) -> bool:\n    return x > 3\n"
    unfinished = "def f5(x: int) -> bool:\n    return x"
    assert function_text(unfinished) == unfinished + "\n"


def test_training_examples_show_the_signature_a_solve_prompt_ends_with():
    from factory.loop.prompts import solution_signature

    puzzle = "def f(s: str, n=3, c='z') -> bool:\n    return s == c * n\n"
    no_args = "def sol():\n    return 'zzz'\n"
    text = training_example(puzzle, no_args)
    assert solution_signature(puzzle, "g1") == "def g1(n=3, c='z'):"
    assert "def g1(n=3, c='z'):\n    return 'zzz'" in text
    namespace: dict = {}
    exec(text, namespace)  # the example itself runs: f1(g1()) holds
