"""The one renamer: rename_function (prompts) and rename_identifier (canonical form, solution hash)."""

import ast

import pytest

from puzzles.rename import bound_names, identifiers, rename_function, rename_identifier

PUZZLE = "def sat(x: int, a=3):\n    # a comment that ast drops\n    return x > a\n"

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

# Every kind of place a name can stand in, all spelled ``h``.
EVERYWHERE = """
def h(h=1):
    global h
    class h:
        pass
    import h
    return h.h(h=h)
"""


def _exec(source: str) -> dict:
    namespace: dict = {}
    exec("from typing import List\n\n" + source, namespace)
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
        rename_function(PUZZLE, "1f")
    with pytest.raises(ValueError, match="no top-level function named 'nope'"):
        rename_function(PUZZLE, "f1", old_name="nope")
    assert rename_function(PUZZLE, "sat").startswith("def sat(")  # same name: only reformatted


def test_rename_drops_comments_keeps_code():
    assert rename_function(PUZZLE, "f2") == "def f2(x: int, a=3):\n    return x > a"


# ---------------------------------------------------------------------------------------------------
# rename_identifier


def test_rename_identifier_everywhere_but_attributes_keywords_and_imports():
    tree = ast.parse(EVERYWHERE)
    rename_identifier(tree, "h", "k")
    assert ast.unparse(tree) == (
        "def k(k=1):\n    global k\n\n    class k:\n        pass\n    import h\n    return k.h(h=k)"
    )


def test_rename_identifier_names_and_functions_only():
    tree = ast.parse(EVERYWHERE + "\ndef other():\n    def h():\n        pass\n")
    rename_identifier(tree, "h", "k", names_and_functions_only=True)
    assert ast.unparse(tree) == (
        "def k(h=1):\n    global h\n\n    class h:\n        pass\n    import h\n    return k.h(h=k)"
        "\n\ndef other():\n\n    def k():\n        pass"
    )


def test_bound_names_and_identifiers():
    function = ast.parse(EVERYWHERE).body[0]
    assert bound_names(function) == {"h"}  # the argument, the class, the import; not the def itself
    assert bound_names(ast.parse("def h():\n    return h\n").body[0]) == set()
    source = "def h(a, *b, **c):\n    d = [e for e in a]\n    import x.y as z, w.v\n    try:\n        pass\n    except E as q:\n        pass\n    return u(t)\n"
    assert bound_names(ast.parse(source).body[0]) == set("abcdezwq")
    assert identifiers(ast.parse(source)) == set("abcdezwq") | {"h", "E", "u", "t"}
