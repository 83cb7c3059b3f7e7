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


@pytest.mark.parametrize(
    ("source", "digest"),
    [
        (
            'def f(x: int, a=3) -> bool:\n    """doc"""\n    return x > a  # c\n',
            "bfa66d03154e00b48349c72459c8167e6d24c8166e31bb8274b1357d54837fb3",
        ),
        (
            "from typing import List\n\ndef sat(li: List[int], n=4):\n    return len(li) == n and sat is not None\n",
            "d18351d3b6b8a196f050f70618ba2f591b4f8989fe6c0f869f76b5493b568bbe",
        ),
        (
            "def a(x: int):\n    return x\ndef b(y: int):\n    return a(y)\n",
            "4e17bd1bd7c0155f04bc7dcb330dce15dbdab1403ef9c58b0c1f583b5b8c7d6e",
        ),
        # A function that binds its own name inside (argument, local, nested def or class) keeps the
        # inner uses; otherwise every use inside it is renamed, but nothing outside it.
        (
            "def f(f: int):\n    return f > 0\n",
            "8bd9ae7a2a9825cbbdb26a3965819c003f8aa7b0e1c15e29a3a128e67a2805b2",
        ),
        (
            "def g5(g5=1):\n    return g5\n",
            "e4971b7c3e1f69e1118e19d0c608aec44db25a58de01525d30610c6220d1536e",
        ),
        (
            "def g(x=1):\n    def g():\n        return 2\n    return g()\n",
            "25b8dc9277c9fe78864b31bc710a1532a1b7d50baeff188e7cf0ce86aeb1f538",
        ),
        (
            "def h():\n    class h:\n        pass\n    return h\n",
            "e83cad8f3e605039a9e32aff432f2a1c1ddc9086d6b5054fdf208fd37359e1de",
        ),
        (
            "def h(a: h = 1) -> h:\n    return h\nx = h\n",
            "3312d4737d1cc34cf4440a221a97a15531d1fca7f83c116647e3b513f8c626bc",
        ),
        (
            "def h():\n    f = 1\n    return h(f)\n",
            "d2eda258af00741666cd65a858f92956d82561f9afe2dfe729b0be99b929a4fd",
        ),
    ],
)
def test_canonical_hash_values_are_pinned(source, digest):
    """Stored puzzle hashes of existing run stores depend on these exact values: they must never change."""
    assert canonical_hash(source) == digest


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
