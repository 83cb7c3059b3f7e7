import importlib
import sys
import types

import pytest

from puzzles.canonical import canonical_hash, canonical_source, near_duplicate_tokens
from puzzles.completion import complete_function
from puzzles.hygiene import ALLOWED_IMPORTS, MODULE_ESCAPE_ATTRIBUTES
from puzzles.parse import parse_puzzle, parse_solution
from puzzles.records import InvalidProgram, Puzzle, Solution

PUZZLE = '''def f(li: List[int], target=-3, words=["a", 'b'], table={"k": (1, 2.5)}, flag=None) -> bool:
    """Find a list."""
    return sum(li) == target and len(words) == 2
'''


def reason_of(parse, text, **kwargs) -> str:
    with pytest.raises(InvalidProgram) as caught:
        parse(text, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 200, message
    return message


# ---------------------------------------------------------------------------------------------------
# Valid puzzles and solutions


def test_parse_puzzle_fields():
    puzzle = parse_puzzle(PUZZLE)
    assert puzzle == Puzzle(
        source=PUZZLE.rstrip("\n"),
        name="f",
        answer_arg="li",
        answer_type="List[int]",
        defaults=(
            ("target", "-3"),
            ("words", "[\"a\", 'b']"),
            ("table", '{"k": (1, 2.5)}'),
            ("flag", "None"),
        ),
    )


def test_parse_puzzle_accepts_any_name_no_return_annotation_and_typing_imports():
    text = "from typing import List\nimport typing\n\ndef sat7(x: typing.List[list[bool]], n=1):\n    return True\n"
    puzzle = parse_puzzle(text)
    assert (puzzle.name, puzzle.answer_type, puzzle.defaults) == ("sat7", "List[List[bool]]", (("n", "1"),))
    assert puzzle.source == "def sat7(x: typing.List[list[bool]], n=1):\n    return True"


def test_parse_puzzle_dedents_and_normalises_line_breaks():
    puzzle = parse_puzzle("\r\n    def f(s: str, n=2):\r\n        return len(s) == n\r\n\r\n")
    assert puzzle.source == "def f(s: str, n=2):\n    return len(s) == n"


def test_parse_puzzle_keeps_non_ascii_defaults_exactly():
    puzzle = parse_puzzle('def f(s: str, word="héllo→"):\n    return s == word')
    assert puzzle.defaults == (("word", '"héllo→"'),)


def test_parse_puzzle_allows_the_p3_toolkit():
    text = """def f(x: List[int], seed=1):
    import random, math
    from itertools import combinations
    from typing import List
    random.seed(seed)
    _ = [math.gcd(a, b) for a, b in combinations(x, 2)]
    return "__2__1_3" != "__init" and all(_)
"""
    assert parse_puzzle(text).answer_type == "List[int]"


def test_parse_solution_without_and_with_arguments():
    assert parse_solution("def g():\n    return 1") == Solution(source="def g():\n    return 1", name="g")
    puzzle = parse_puzzle(PUZZLE)
    solution = parse_solution(
        "def sol(target=-3, words=['a', 'b'], table={'k': (1, 2.5)}, flag=None):\n    return [target]", puzzle
    )
    assert solution.name == "sol"


def test_parse_solution_accepts_puzzle_arguments_in_another_order():
    puzzle = parse_puzzle("def f(x: int, a=1, b='s'):\n    return x == a")
    assert parse_solution("def g(b='s', a=1):\n    return a", puzzle).name == "g"


def test_parse_solution_needs_no_puzzle_and_is_not_hygiene_checked():
    assert parse_solution("def g(n=5):\n    return eval('n') + getattr(n, '__index__')()").name == "g"


# ---------------------------------------------------------------------------------------------------
# Rejections: structure and signature


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no function definition found"),
        ("   \n\n", "no function definition found"),
        ("x = 1", "no function definition found"),
        ("Here is my puzzle.", "syntax error at line 1"),
        ("def f(x: int):\n    return x\ndef g(y: int):\n    return y", "2 functions found, expected 1"),
        ("class A:\n    pass\ndef f(x: int):\n    return x", "unexpected class 'A' at line 1"),
        ("import os\ndef f(x: int):\n    return x", "unexpected import of 'os' at line 1"),
        ("def f(x: int):\n    return x\nprint(f(1))", "unexpected expression statement at line 3"),
        ("X = 3\ndef f(x: int):\n    return x", "unexpected Assign statement at line 1"),
        ("async def f(x: int):\n    return x", "async function 'f' is not allowed"),
        ("@cache\ndef f(x: int):\n    return x", "decorators are not allowed on the puzzle function"),
        ("def f():\n    return True", "puzzle has no answer argument"),
        ("def f(x, n=1):\n    return x", "answer argument 'x' has no type annotation"),
        ("def f(x: int = 3):\n    return x", "answer argument 'x' must not have a default"),
        ("def f(x: int, n, m=2):\n    return x", "argument 'n' has no default"),
        ("def f(x: int, n):\n    return x", "argument 'n' has no default"),
        (
            "def f(x: int, n=len('abc')):\n    return x",
            "default of argument 'n' is not a literal: len('abc')",
        ),
        ("def f(x: int, n=[1, y]):\n    return x", "default of argument 'n' is not a literal"),
        ("def f(x: int, *args):\n    return x", "*args is not allowed"),
        ("def f(x: int, **kw):\n    return x", "**kw is not allowed"),
        ("def f(x: int, *, n=1):\n    return x", "keyword-only arguments are not allowed ('n')"),
        ("def f(x: int, /, n=1):\n    return x", "positional-only arguments are not allowed ('x')"),
        ("def f(x: int) -> int:\n    return x", "return annotation must be bool, got int"),
        ("def f(x: Dict[str, int]):\n    return x", "answer type Dict[str, int] is not a P3 answer type"),
        ("def f(x: int):\n    return x +\n", "syntax error at line 2"),
        ("def f(x: int):\nreturn x", "syntax error at line 2: expected an indented block"),
        ("def f(x: int, n=" + "9" * 60_000 + "):\n    return x", "integer literal longer than 50,000 digits"),
    ],
)
def test_puzzle_rejection_reasons(text, reason):
    assert reason in reason_of(parse_puzzle, text)


# ---------------------------------------------------------------------------------------------------
# Rejections: puzzle hygiene


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("exec('x = 1')", "use of 'exec' is not allowed in a puzzle"),
        ("eval('1')", "use of 'eval' is not allowed in a puzzle"),
        ("compile('1', 's', 'eval')", "use of 'compile'"),
        ("open('/etc/passwd').read()", "use of 'open'"),
        ("__import__('os')", "use of '__import__' is not allowed"),
        ("getattr(x, 'real')", "use of 'getattr'"),
        ("setattr(x, 'a', 1)", "use of 'setattr'"),
        ("globals()", "use of 'globals'"),
        ("vars()", "use of 'vars'"),
        ("breakpoint()", "use of 'breakpoint'"),
        ("input()", "use of 'input'"),
        ("exit()", "use of 'exit'"),
        ("memoryview(b'')", "use of 'memoryview'"),
        ("[print][0] and exec", "use of 'exec'"),
        ("x.__class__", "attribute '.__class__' is not allowed (dunder names are off limits)"),
        ("__builtins__", "name '__builtins__' is not allowed"),
        ("[c for c in ().__class__.__bases__]", "dunder names are off limits"),
        ("f'{x.__class__}'", "attribute '.__class__'"),
        ("'{0.__class__}'.format(x)", "attribute '.format' is not allowed in a puzzle (format fields"),
        ("'{0.real}'.format(x)", "attribute '.format' is not allowed"),
        ("(lambda: 0).__globals__", "attribute '.__globals__'"),
        ("(i for i in []).gi_frame", "attribute '.gi_frame' is not allowed"),
    ],
)
def test_hygiene_rejects_escapes_in_expressions(body, reason):
    assert reason in reason_of(parse_puzzle, f"def f(x: int):\n    return {body}")


@pytest.mark.parametrize(
    ("statements", "reason"),
    [
        ("import os", "import of module 'os' is not allowed (allowed: bisect, collections"),
        ("import os.path", "import of module 'os.path' is not allowed"),
        ("import subprocess as math", "import of module 'subprocess' is not allowed"),
        ("from os import system", "import of module 'os' is not allowed"),
        ("from . import thing", "relative imports are not allowed"),
        ("import math, sys", "import of module 'sys' is not allowed"),
        ("import random\n    random._os.system('ls')", "attribute '._os' is not allowed (private attributes"),
        ("import statistics\n    statistics.sys.modules", "attribute '.sys' is not allowed in a puzzle"),
        ("import statistics\n    statistics.sys", "attribute '.sys' is not allowed"),
        ("import re\n    re.enum.bltns", "attribute '.bltns' is not allowed"),
        ("import operator\n    operator.attrgetter('x')", "attribute '.attrgetter' is not allowed"),
        ("from operator import attrgetter", "importing 'attrgetter' from 'operator' is not allowed"),
        ("from typing import get_type_hints", "importing 'get_type_hints' from 'typing'"),
        ("from random import _os", "importing '_os' from 'random' is not allowed"),
        (
            "class A:\n        def __init__(self):\n            pass",
            "class definitions are not allowed in a puzzle ('class A' at line 2)",
        ),
        ("def __init__():\n        pass", "defining '__init__' is not allowed"),
        (
            "match x:\n        case int(__class__=c):\n            pass",
            "class patterns in match statements are not allowed in a puzzle ('case int(...)' at line 3",
        ),
        ("def inner():\n        return eval('1')", "use of 'eval'"),
    ],
)
def test_hygiene_rejects_escapes_in_statements(statements, reason):
    assert reason in reason_of(parse_puzzle, f"def f(x: int):\n    {statements}\n    return True")


def test_eval_is_allowed_only_as_eval_x_when_trusted():
    quine = "def sat(quine: str):\n    return eval(quine) == quine"
    assert "use of 'eval'" in reason_of(parse_puzzle, quine)
    assert parse_puzzle(quine, allow_eval=True).answer_type == "str"
    for body in ("eval(x, {})", "eval(*[x])", "eval(x, globals=None)", "[eval][0](x)", "(e := eval)"):
        text = f"def sat(x: str):\n    return {body}"
        assert "'eval'" in reason_of(parse_puzzle, text, allow_eval=True) or "'globals'" in reason_of(
            parse_puzzle, text, allow_eval=True
        )
    assert "'exec'" in reason_of(parse_puzzle, "def sat(x: str):\n    return exec(x)", allow_eval=True)


def test_module_escape_attributes_cover_the_running_python():
    """Every public module-valued attribute reachable from an allowed module is blocked (or allowed)."""
    seen: set[str] = set()
    queue = [importlib.import_module(name) for name in ALLOWED_IMPORTS]
    reachable: set[str] = set()
    while queue:
        module = queue.pop()
        if module.__name__ in seen:
            continue
        seen.add(module.__name__)
        for attribute in dir(module):
            value = getattr(module, attribute, None)
            if not attribute.startswith("_") and isinstance(value, types.ModuleType):
                reachable.add(attribute)
                queue.append(value)
    assert reachable - ALLOWED_IMPORTS <= MODULE_ESCAPE_ATTRIBUTES


# ---------------------------------------------------------------------------------------------------
# Rejections: solutions


PUZZLE_WITH_ARGS = parse_puzzle("def f(x: int, a=1, b=[1.5, 'z'], c=None):\n    return x == a")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no function definition found"),
        ("def g(n):\n    return n", "argument 'n' has no default (a solution is called with no arguments)"),
        ("def g(n, m=1):\n    return n", "argument 'n' has no default"),
        ("def g(n=f()):\n    return n", "default of argument 'n' is not a literal: f()"),
        ("def g(*args):\n    return 1", "*args is not allowed"),
        ("def g(**kw):\n    return 1", "**kw is not allowed"),
        ("@dec\ndef g():\n    return 1", "decorators are not allowed on the solution function"),
        ("async def g():\n    return 1", "async function 'g' is not allowed"),
        ("def g():\n    return 1\ndef h():\n    return 2", "2 functions found, expected 1"),
        ("import math\ndef g():\n    return 1", "unexpected import of 'math' at line 1"),
    ],
)
def test_solution_rejection_reasons(text, reason):
    assert reason in reason_of(parse_solution, text)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("def g(a=1):", "solution arguments (a) are not the puzzle's extra arguments (a, b, c)"),
        ("def g(a=1, b=[1.5, 'z'], d=None):", "solution arguments (a, b, d) are not the puzzle's"),
        ("def g(a=2, b=[1.5, 'z'], c=None):", "default of argument 'a' is 2 but the puzzle has 1"),
        ("def g(a=1.0, b=[1.5, 'z'], c=None):", "default of argument 'a' is 1.0 but the puzzle has 1"),
        ("def g(a=True, b=[1.5, 'z'], c=None):", "default of argument 'a' is True but the puzzle has 1"),
        ("def g(a=1, b=[1.5, 'y'], c=None):", "default of argument 'b' is [1.5, 'y']"),
        ("def g(a=1, b=(1.5, 'z'), c=None):", "default of argument 'b' is (1.5, 'z')"),
        ("def g(a=1, b=[1.5, 'z'], c=0):", "default of argument 'c' is 0 but the puzzle has None"),
    ],
)
def test_solution_arguments_must_match_the_puzzle(header, reason):
    assert reason in reason_of(parse_solution, f"{header}\n    return 1", puzzle=PUZZLE_WITH_ARGS)


def test_solution_with_arguments_against_puzzle_without_any():
    puzzle = parse_puzzle("def f(x: int):\n    return x == 1")
    reason = reason_of(parse_solution, "def g(a=1):\n    return a", puzzle=puzzle)
    assert reason == "solution arguments (a) are not the puzzle's extra arguments (none)"
    assert parse_solution("def g():\n    return 1", puzzle).name == "g"


def test_solution_matching_compares_values_not_spelling():
    puzzle = parse_puzzle("def f(x: int, a=[1, 2], s='q', n=-0x10):\n    return True")
    assert parse_solution('def g(a=[1,  2], s="q", n=-16):\n    return 1', puzzle).name == "g"


# ---------------------------------------------------------------------------------------------------
# Hostile input never raises anything but InvalidProgram


def deep_binop(terms: int) -> str:
    return "def f(x: int, a=1):\n    return x == " + "+".join(["x"] * terms)


HOSTILE = {
    "empty": "",
    "nul": "def f(x: int):\n    return x\x00",
    "only nul": "\x00" * 10,
    "lone surrogate": 'def f(x: str):\n    return x == "\udc80"',
    "surrogate identifier": "def f(x: int):\n    return \udcff",
    "latin-1 looking": "def f(x: str):\n    return x == 'Ã©Ã¨\xff\xfe'\n\xff",
    "bom": "\ufeffdef f(x: int):\n    return x",
    "deep unary": "-" * 100_000 + "1",
    "deep parens": "(" * 300 + ")" * 300,
    "deep lists": "def f(x: int, a=" + "[" * 150 + "]" * 150 + "):\n    return True",
    "deep binop in body": deep_binop(2_000),
    "too deep binop": deep_binop(20_000),
    "huge text": "a" * 1_000_000,
    "huge valid puzzle": "def f(x: int):\n    return x == 1" + " + 1" * 60_000,
    "long integer": "def f(x: int):\n    return x == " + "7" * 100_000,
    "control characters": "def f(x: int):\n\x0c\x1b\x07    return x",
    "tabs and spaces": "def f(x: int):\n\tif x:\n        return x",
    "not text": b"def f(x: int):\n    return x",
    "none": None,
}


ACCEPTED_AS_PUZZLE = {"bom", "deep lists", "deep binop in body"}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("parse", [parse_puzzle, parse_solution, canonical_source, canonical_hash])
def test_hostile_input_raises_only_invalid_program(name, parse):
    try:
        parse(HOSTILE[name])
    except InvalidProgram as error:
        assert "\n" not in str(error) and len(str(error)) < 200


@pytest.mark.parametrize("name", sorted(set(HOSTILE) - ACCEPTED_AS_PUZZLE))
def test_hostile_input_is_rejected_as_a_puzzle(name):
    reason_of(parse_puzzle, HOSTILE[name])


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("nul", "puzzle contains a NUL byte at offset 27"),
        ("lone surrogate", "puzzle is not valid Unicode text"),
        ("deep unary", "puzzle is nested too deeply to parse"),
        ("too deep binop", "puzzle is nested too deeply to parse"),
        ("deep parens", "syntax error at line 1: too many nested parentheses"),
        ("huge text", "puzzle is 1,000,000 characters, limit 200,000"),
        ("not text", "puzzle must be text (str), got bytes"),
        ("long integer", "integer literal longer than 50,000 digits"),
        ("tabs and spaces", "syntax error at line 3: inconsistent use of tabs and spaces"),
    ],
)
def test_hostile_input_reasons(name, reason):
    assert reason in reason_of(parse_puzzle, HOSTILE[name])


def test_leading_byte_order_mark_is_ignored():
    assert parse_puzzle(HOSTILE["bom"]).source == "def f(x: int):\n    return x"


def test_deep_but_compilable_puzzle_is_accepted_while_its_canonical_form_is_refused():
    assert parse_puzzle(deep_binop(800)).answer_type == "int"
    with pytest.raises(InvalidProgram, match="nested too deeply to print"):
        canonical_hash(deep_binop(800))
    # Deeper still, the compiler gives up: such a puzzle could never run.
    with pytest.raises(InvalidProgram, match="nested too deeply to parse"):
        parse_puzzle(deep_binop(2_000))


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_never_breaks_the_text_helpers(name):
    text = HOSTILE[name]
    assert isinstance(near_duplicate_tokens(text), frozenset)
    if isinstance(text, str):
        assert complete_function("def f7(", text).startswith("def f7(")


def test_long_integer_literals_leave_the_interpreter_limit_alone():
    before = sys.get_int_max_str_digits()
    puzzle = parse_puzzle("def f(x: int, n=" + "3" * 9_000 + "):\n    return x > n")
    assert puzzle.defaults[0][1] == "3" * 9_000
    assert len(canonical_source(puzzle.source)) > 9_000
    assert sys.get_int_max_str_digits() == before


# ---------------------------------------------------------------------------------------------------
# complete_function


def test_complete_function_cuts_at_the_next_unindented_line():
    completion = "x: int, a=3):\n    return x > a\n\n\nassert f7(g7())\n\ndef f8("
    assert complete_function("def f7(", completion) == "def f7(x: int, a=3):\n    return x > a"


def test_complete_function_strips_trailing_blank_and_comment_lines():
    completion = "s: str):\n    return s == 'a'\n   \n# next puzzle\n\n"
    assert complete_function("def f1(", completion) == "def f1(s: str):\n    return s == 'a'"


def test_complete_function_continues_inside_brackets_strings_and_comments():
    completion = "x: int,\nn=3):\n    s = '''\nabc'''\n# a comment\n    return x == n\nprint(1)"
    assert complete_function("def f2(", completion) == (
        "def f2(x: int,\nn=3):\n    s = '''\nabc'''\n# a comment\n    return x == n"
    )


def test_complete_function_stops_at_a_markdown_fence_and_keeps_unfinished_text():
    assert complete_function("def g3(", "):\n    return 1\n```\nMore prose") == "def g3():\n    return 1"
    assert complete_function("def g4(", "):\n    return [1,") == "def g4():\n    return [1,"
    assert complete_function("def g5(", "") == "def g5("


@pytest.mark.parametrize(
    ("completion", "cut_off"),
    [
        ("x: int) -> bool:\n    return x > 3\n\n   \n", ""),
        ("x: int) -> bool:\n    return x > 3\n\ndef f6(", "def f6("),
        ("x: int) -> bool:\n    return x > 3\nassert", "assert"),
        ("x: int) -> bool:\n    return x > 3\n# note", "# note"),
        # a column-0 line inside brackets, a string, or after a backslash is still the function
        ("\nx: int,\na=1,\n) -> bool:\n    return x > a\n", ""),
        ("x: str) -> bool:\n    return x == '''\nabc\n'''\n", ""),
        ("x: str) -> bool:\n    return x == '''\nabc\n", ""),
        ("x: str) -> bool:\n    return x in [1,\n2]\n", ""),
        ("x: int) -> bool:\n    return x == 1 or \\\nx == 2\n", ""),
        ("x: str) -> bool:\n    return x == ')\\'('  # (\n", ""),
        ("x: str) -> bool:\n    return x == ')\\'('  # (\nprint(1)", "print(1)"),
        ("x: str) -> bool:\n    return x == '''\nabc\n'''\nz", "z"),
        ("x: int) -> bool: return x > 3\nz = 1", "z = 1"),
    ],
)
def test_complete_function_ends_at_the_first_statement_outside_it(completion, cut_off):
    kept = complete_function("def f5(", completion)
    assert ("def f5(" + completion)[len(kept) :].strip() == cut_off
