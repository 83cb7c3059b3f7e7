import hashlib

import pytest

from puzzles.canonical import (
    NEAR_DUPLICATE_THRESHOLD,
    canonical_hash,
    canonical_source,
    near_duplicate_tokens,
    similarity,
)
from puzzles.records import InvalidProgram

BASE = "def f(s: str, n=3):\n    return s.count('a') == n and len(s) > 2 * n"

SAME_PROGRAM = {
    "docstring and comments": '''
def f(s: str, n=3):
    """Find a string with n a's."""  # a docstring
    # a comment
    return s.count('a') == n and len(s) > 2 * n  # trailing
''',
    "formatting": 'def f(s:str,n = 3):\n  return (s.count("a")==n\n          and len(s)>(2*n))',
    "function name": "def sat42(s: str, n=3):\n    return s.count('a') == n and len(s) > 2 * n",
    "typing import": "from typing import List\ndef f(s: str, n=3):\n    return s.count('a') == n and len(s) > 2 * n",
    "indented": "    def f(s: str, n=3):\n        return s.count('a') == n and len(s) > 2 * n\n",
}

DIFFERENT_PROGRAM = {
    "constant": "def f(s: str, n=3):\n    return s.count('b') == n and len(s) > 2 * n",
    "default": "def f(s: str, n=4):\n    return s.count('a') == n and len(s) > 2 * n",
    "operator": "def f(s: str, n=3):\n    return s.count('a') == n or len(s) > 2 * n",
    "argument name": "def f(t: str, n=3):\n    return t.count('a') == n and len(t) > 2 * n",
    "answer type": "def f(s: List[str], n=3):\n    return s.count('a') == n and len(s) > 2 * n",
    "return annotation": "def f(s: str, n=3) -> bool:\n    return s.count('a') == n and len(s) > 2 * n",
    "extra statement": "def f(s: str, n=3):\n    assert n > 0\n    return s.count('a') == n and len(s) > 2 * n",
}


@pytest.mark.parametrize("variant", sorted(SAME_PROGRAM))
def test_irrelevant_differences_keep_the_hash(variant):
    assert canonical_source(SAME_PROGRAM[variant]) == canonical_source(BASE)
    assert canonical_hash(SAME_PROGRAM[variant]) == canonical_hash(BASE)


@pytest.mark.parametrize("variant", sorted(DIFFERENT_PROGRAM))
def test_real_changes_change_the_hash(variant):
    assert canonical_hash(DIFFERENT_PROGRAM[variant]) != canonical_hash(BASE)


def test_canonical_source_and_hash_values():
    assert canonical_source(SAME_PROGRAM["function name"]) == BASE
    assert canonical_hash(BASE) == hashlib.sha256(BASE.encode()).hexdigest()


def test_recursive_self_reference_is_renamed():
    fib = "def fib(n=10):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)"
    assert canonical_source(fib) == "def f(n=10):\n    return n if n < 2 else f(n - 1) + f(n - 2)"
    assert canonical_hash(fib) == canonical_hash(fib.replace("fib", "fibonacci"))


def test_only_the_function_itself_is_renamed():
    # A local that shadows the function name is left alone, and so are other names.
    source = "def g(x: int):\n    g = 3\n    return x == g + h"
    assert canonical_source(source) == "def f(x: int):\n    g = 3\n    return x == g + h"


def test_nested_docstrings_are_dropped_and_empty_bodies_get_pass():
    source = '"""module"""\ndef g():\n    """outer"""\n    def inner():\n        """only a docstring"""\n    return inner'
    assert canonical_source(source) == "def f():\n\n    def inner():\n        pass\n    return inner"


def test_strings_that_are_not_docstrings_are_kept():
    assert canonical_hash("def f():\n    x = 1\n    'not a docstring'\n    return x") != canonical_hash(
        "def f():\n    x = 1\n    return x"
    )


def test_unparsable_source_raises_invalid_program():
    with pytest.raises(InvalidProgram, match="syntax error at line 1"):
        canonical_hash("def f(:")


# ---------------------------------------------------------------------------------------------------
# Near-duplicates

PUZZLE = """def sat(li: List[int], target=17, width=4):
    \"\"\"Find a list of width numbers that sum to target, increasing.\"\"\"
    assert len(li) == width
    return sum(li) == target and all(a < b for a, b in zip(li, li[1:]))"""

RENAMED_COPY = """def puzzle_9(numbers: List[int], goal=-230, size=7):
    # same puzzle, other names and numbers
    assert len(numbers) == size
    return sum(numbers) == goal and all(x < y for x, y in zip(numbers, numbers[1:]))"""

UNRELATED = """def sat(s: str, word="antidisestablishmentarianism", max_len=10):
    if len(word) <= max_len:
        return word == s
    return int(s[1:-1]) == len(word[1:-1]) and word[0] == s[0] and word[-1] == s[-1]"""


def test_renamed_copy_with_other_constants_is_a_near_duplicate():
    score = similarity(near_duplicate_tokens(PUZZLE), near_duplicate_tokens(RENAMED_COPY))
    assert score == 1.0 >= NEAR_DUPLICATE_THRESHOLD


def test_small_edit_scores_high_and_unrelated_puzzle_scores_low():
    edited = PUZZLE.replace("a < b", "a <= b")
    assert (
        NEAR_DUPLICATE_THRESHOLD
        <= similarity(near_duplicate_tokens(PUZZLE), near_duplicate_tokens(edited))
        < 1
    )
    assert similarity(near_duplicate_tokens(PUZZLE), near_duplicate_tokens(UNRELATED)) < 0.2


def test_tokens_keep_builtins_and_attributes_and_fold_literals():
    tokens = near_duplicate_tokens("def f(s: str):\n    return s.count('x') == len(s) - 12")
    text = " ".join(sorted(tokens))
    assert ". count ( STR )" in text and "len ( v1 )" in text and "- NUM" in text
    assert "'x'" not in text and "12" not in text and "s" not in text.split()


def test_similarity_edge_cases():
    tokens = near_duplicate_tokens(PUZZLE)
    assert similarity(tokens, tokens) == 1.0
    assert similarity(frozenset(), frozenset()) == 0.0
    assert similarity(tokens, frozenset()) == 0.0
    assert near_duplicate_tokens("") == frozenset()
    assert near_duplicate_tokens("x") == frozenset({"v0 NEWLINE"})


def test_unparsable_text_still_gets_tokens():
    tokens = near_duplicate_tokens('def f(x: int):\n    return x == (1 +\n  """unterminated')
    assert tokens and "def v0 ( v1 :" in tokens
