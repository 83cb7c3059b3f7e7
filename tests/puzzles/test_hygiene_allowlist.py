"""Puzzle hygiene as an allow-list, and parse limits that keep the host linear in the source.

Each hostile puzzle (most of them passed the deny-list this replaced) must get InvalidProgram with the
exact reason that names the construct. Legit puzzles that use the allowed syntax must still parse.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib
import io
import signal
import types
import typing
import warnings

import pytest

from puzzles.canonical import canonical_hash
from puzzles.hygiene import (
    ALLOWED_BUILTINS,
    ALLOWED_IMPORTS,
    ALLOWED_NODES,
    FORBIDDEN_ATTRIBUTES,
    FORBIDDEN_NAMES,
    TYPING_ANNOTATION_NAMES,
    ZERO_ARGUMENT_METHODS,
    check_puzzle_hygiene,
)
from puzzles.parse import parse_puzzle, parse_solution
from puzzles.records import InvalidProgram
from puzzles.seeds import extra_training_seeds, load_seeds
from puzzles.source import MAX_ARGUMENTS, MAX_AST_NODES, MAX_FOLDED_BYTES, MAX_PATTERN_NODES


def reason(text: str, **kwargs) -> str:
    with pytest.raises(InvalidProgram) as caught:
        parse_puzzle(text, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 200, message
    return message


MATCH_ARGS_CLASS = """def f(x: int):
    class Peek:
        __match_args__ = ('_' * 2 + 'globals' + '_' * 2,)
    match (lambda: 0):
        case Peek(g):
            return g['_' * 2 + 'builtins' + '_' * 2]['open'] is not None
    return False"""

# namedtuple sets __match_args__ from its field names: a class pattern names attributes in strings
# (gi_frame here; it reads them once the class matches, see the chain below). The old check looked
# only at keyword patterns and attribute nodes.
MATCH_ARGS_NAMEDTUPLE = """def f(x: int):
    from collections import namedtuple
    Frame = namedtuple('Frame', ['gi_frame'])
    match (i for i in [x]):
        case Frame(frame):
            return frame is not None
    return False"""

# The whole chain with no dunder in any literal or attribute: a metaclass that says every object is an
# instance, classes whose __match_args__ name frame attributes, all built at run time.
RUNTIME_METACLASS_CHAIN = """def f(x: int):
    d = '_' * 2
    Yes = type('Yes', (type,), {d + 'instancecheck' + d: lambda c, o: True})
    Frame = Yes('Frame', (), {d + 'match' + '_args' + d: ('gi_frame',)})
    Globals = Yes('Globals', (), {d + 'match' + '_args' + d: ('f_globals',)})
    match (i for i in [x]):
        case Frame(Globals(g)):
            return g[d + 'builtins' + d]['open'] is not None
    return False"""

MATCH_CLASS_ON_A_BUILTIN = """def f(x: int):
    match x:
        case int(real=r):
            return r == 1
    return False"""

METACLASS = """def f(x: int):
    class Yes(type):
        def __instancecheck__(cls, other):
            return True
    class Any(metaclass=Yes):
        pass
    return isinstance(x, Any)"""

METACLASS_BY_TYPE = """def f(x: int):
    Yes = type('Yes', (type,), {'_' * 2 + 'instancecheck' + '_' * 2: lambda c, o: True})
    return isinstance(x, Yes('Any', (), {}))"""

RUNTIME_DUNDER_FORMAT = """def f(x: int):
    field = '{0.' + '_' * 2 + 'globals' + '_' * 2 + '}'
    return 'open' in field.format(lambda: 0)"""

FORMAT_MAP = """def f(x: int):
    return '{g.real}'.format_map({'g': x}) == '1'"""

UNBOUND_STR_FORMAT = """def f(x: int):
    return str.format('{0.real}', x) == '1'"""

FORMAT_BUILTIN = """def f(x: int):
    return format(x, 'b') == '1'"""

FSTRING_RUNTIME_SPEC = """def f(x: int):
    spec = '>' + str(x)
    return f'{x:{spec}}' != ''"""

HOSTILE = {
    "match class pattern reads __match_args__": (
        MATCH_ARGS_CLASS,
        "class definitions are not allowed in a puzzle ('class Peek' at line 2)",
    ),
    "match class pattern on a namedtuple reads gi_frame": (
        MATCH_ARGS_NAMEDTUPLE,
        "class patterns in match statements are not allowed in a puzzle "
        "('case Frame(...)' at line 5: it reads attributes named at run time)",
    ),
    "metaclass and match classes built at run time": (
        RUNTIME_METACLASS_CHAIN,
        "use of 'type' is not allowed in a puzzle",
    ),
    "match class pattern on a builtin": (
        MATCH_CLASS_ON_A_BUILTIN,
        "class patterns in match statements are not allowed in a puzzle "
        "('case int(...)' at line 3: it reads attributes named at run time)",
    ),
    "metaclass __instancecheck__": (
        METACLASS,
        "class definitions are not allowed in a puzzle ('class Yes' at line 2)",
    ),
    "metaclass made by type()": (METACLASS_BY_TYPE, "use of 'type' is not allowed in a puzzle"),
    "run-time dunder in a str.format field": (
        RUNTIME_DUNDER_FORMAT,
        "attribute '.format' is not allowed in a puzzle (format fields such as '{0.name}' read "
        "attributes named at run time; use an f-string)",
    ),
    "format_map": (
        FORMAT_MAP,
        "attribute '.format_map' is not allowed in a puzzle (format fields such as '{0.name}' read "
        "attributes named at run time; use an f-string)",
    ),
    "unbound str.format": (
        UNBOUND_STR_FORMAT,
        "attribute '.format' is not allowed in a puzzle (format fields such as '{0.name}' read "
        "attributes named at run time; use an f-string)",
    ),
    "format builtin": (FORMAT_BUILTIN, "use of 'format' is not allowed in a puzzle"),
    "f-string format spec computed at run time": (
        FSTRING_RUNTIME_SPEC,
        "f-string format spec computed at run time is not allowed in a puzzle (line 3)",
    ),
    "import of a private submodule": (
        "def f(x: int):\n    import re._parser\n    return True",
        "import of module 're._parser' is not allowed (submodules are off limits)",
    ),
    "import of a public submodule": (
        "def f(x: int):\n    import collections.abc\n    return True",
        "import of module 'collections.abc' is not allowed (submodules are off limits)",
    ),
    "from-import of a private submodule": (
        "def f(x: int):\n    from re import _parser\n    return True",
        "importing '_parser' from 're' is not allowed",
    ),
    "from a submodule": (
        "def f(x: int):\n    from re._parser import parse\n    return True",
        "import of module 're._parser' is not allowed (submodules are off limits)",
    ),
    "from-import of a module-valued attribute": (
        "def f(x: int):\n    from collections import abc\n    return True",
        "importing 'abc' from 'collections' is not allowed",
    ),
    "string.Formatter": (
        "def f(x: int):\n    import string\n    return string.Formatter() is not None",
        "attribute '.Formatter' is not allowed in a puzzle",
    ),
    "update_wrapper sets attributes named at run time": (
        "def f(x: int):\n    import functools\n    d = '_' * 2\n"
        "    p = functools.partial(int)\n"
        "    functools.update_wrapper(p, lambda: 0, assigned=(d + 'globals' + d,), updated=())\n"
        "    return True",
        "attribute '.update_wrapper' is not allowed in a puzzle",
    ),
    "from functools import wraps": (
        "def f(x: int):\n    from functools import wraps\n    return True",
        "importing 'wraps' from 'functools' is not allowed",
    ),
    "with statement": (
        "def f(x: int):\n    with x:\n        pass\n    return True",
        "with statements are not allowed in a puzzle (line 2)",
    ),
    "global statement": (
        "def f(x: int):\n    global List\n    return True",
        "global statements are not allowed in a puzzle (line 2)",
    ),
    "generator function": (
        "def f(x: int):\n    def gen():\n        yield x\n    return next(gen()) == 1",
        "yield (generator functions) is not allowed in a puzzle (line 3)",
    ),
    "hasattr": (
        "def f(x: int):\n    return hasattr(x, 'real')",
        "use of 'hasattr' is not allowed in a puzzle",
    ),
    "dir": ("def f(x: int):\n    return 'real' in dir(x)", "use of 'dir' is not allowed in a puzzle"),
    "object": ("def f(x: int):\n    return object() != x", "use of 'object' is not allowed in a puzzle"),
    "super": ("def f(x: int):\n    return super() is None", "use of 'super' is not allowed in a puzzle"),
    "license reads files": (
        "def f(x: int):\n    return license() is None",
        "use of 'license' is not allowed in a puzzle",
    ),
    "binding a refused builtin": (
        "def f(x: int):\n    def inner():\n        open = 1\n    return inner() is None",
        "use of 'open' is not allowed in a puzzle",
    ),
    "argument of a nested function named like a refused builtin": (
        "def f(x: int):\n    g = lambda exec=1: exec\n    return True",
        "use of 'exec' is not allowed in a puzzle",
    ),
    "bound in a comprehension only: the builtin elsewhere in f": (
        "def f(x: int):\n    return [type for type in [x]] and type(x) is int",
        "use of 'type' is not allowed in a puzzle",
    ),
    "typing.get_origin(Type) is type": (
        "def f(x: int):\n    from typing import get_origin, Type\n    return get_origin(Type) is not None",
        "importing 'get_origin' from 'typing' is not allowed "
        "(allowed: Any, Callable, Dict, FrozenSet, List, Optional, Set, Tuple, Union)",
    ),
    "the typing module itself": (
        "def f(x: int):\n    import typing\n    return typing.ABCMeta is not None",
        "import of module 'typing' is not allowed (import its annotation names: from typing import List)",
    ),
    "Counter.copy(int) is type": (
        "def f(x: int):\n    from collections import Counter\n    return Counter.copy(int) is not None",
        "attribute '.copy' is allowed only called with no arguments, as x.copy()",
    ),
    "an unbound copy passed on": (
        "def f(x: int):\n    from collections import UserList\n    return list(map(UserList.copy, [int]))",
        "attribute '.copy' is allowed only called with no arguments, as x.copy()",
    ),
    "an ABC's process-wide register": (
        "def f(x: int):\n    Callable.register(int)\n    return isinstance(x, Callable)",
        "attribute '.register' is not allowed in a puzzle",
    ),
    "a format field reading an attribute": (
        "def f(x: int):\n    return '{0.real}'.format(x) == '1'",
        "attribute '.format' is not allowed in a puzzle (format fields such as '{0.name}' read "
        "attributes named at run time; use an f-string)",
    ),
    "a format field nested in a spec": (
        "def f(x: int):\n    return '{:{}}'.format(x, '>3') != ''",
        "attribute '.format' is not allowed in a puzzle (format fields such as '{0.name}' read "
        "attributes named at run time; use an f-string)",
    ),
    "a literal that is a dunder name": (
        "def f(x: int):\n    return '__globals__' != x",
        "string literal is the dunder name '__globals__'",
    ),
    "import alias named like a refused builtin": (
        "def f(x: int):\n    import math as open\n    return True",
        "use of 'open' is not allowed in a puzzle",
    ),
    "from-import alias named like a refused builtin": (
        "def f(x: int):\n    from re import compile\n    return True",
        "use of 'compile' is not allowed in a puzzle",
    ),
    "dunder exception name": (
        "def f(x: int):\n    try:\n        pass\n    except ValueError as __builtins__:\n        pass\n    return True",
        "name '__builtins__' is not allowed (dunder names are off limits)",
    ),
    "dunder capture pattern": (
        "def f(x: int):\n    match x:\n        case [*__builtins__]:\n            pass\n    return True",
        "name '__builtins__' is not allowed (dunder names are off limits)",
    ),
    "dunder mapping rest": (
        "def f(x: int):\n    match x:\n        case {**__builtins__}:\n            pass\n    return True",
        "name '__builtins__' is not allowed (dunder names are off limits)",
    ),
    "dunder keyword": (
        "def f(x: int):\n    return dict(__builtins__=1) != x",
        "keyword '__builtins__' is not allowed (dunder names are off limits)",
    ),
    "mro": ("def f(x: int):\n    return int.mro() != x", "attribute '.mro' is not allowed in a puzzle"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_puzzle_gets_its_exact_reason(name):
    text, expected = HOSTILE[name]
    assert reason(text) == expected
    assert reason(text, allow_eval=True) == expected  # trusted collections get eval(x), nothing else


def test_every_hostile_puzzle_is_valid_python():
    for text, _ in HOSTILE.values():
        compile(text, "<hostile>", "exec")


LEGIT = """def f(x: List[int], n=3, word='ab'):
    import math
    from collections import Counter
    from functools import lru_cache

    @lru_cache(None)
    def fib(k):
        return k if k < 2 else fib(k - 1) + fib(k - 2)

    def bump():
        nonlocal n
        n += 1

    match x:
        case [first, *rest] if first > 0:
            pass
        case {'k': value, **others}:
            pass
        case [1 | 2, _] | []:
            pass
        case None:
            pass
    try:
        y = x[0] // len(x)
    except (IndexError, ZeroDivisionError) as error:
        raise ValueError(str(error)) from error
    finally:
        pass
    while (m := n) > 10:
        del x[0]
    assert isinstance(word, str), f'{word!r:>8} {n:04d} {3.5:.2f}'
    counts: dict = Counter(word)
    squares = {k: k * k for k in range(n)}
    return all(v > 0 for v in squares.values()) and math.gcd(*x[:2]) >= 0 and fib(10) == 55 and y >= 0 and m >= 0"""


def test_legit_puzzle_with_the_allowed_syntax_parses():
    assert parse_puzzle(LEGIT).answer_type == "List[int]"


# Refused by the name-based rules before, though nothing in them reaches what the allow-list refuses.
LOOKS_DANGEROUS_IS_NOT = {
    "a literal with a dunder-shaped part": "def f(x: str):\n    return x == 'a__b__c'",
    "a local named like a refused builtin": "def f(x: int):\n    id = 3\n    type = x % 3\n    return id + type == 4",
    "read in a nested function": "def f(x: int):\n    hash = x * 2\n    g = lambda: hash\n    return g() == 2",
    "an argument named like a refused builtin": "def f(x: int, exec=1):\n    return x == exec",
    "a literal format with plain fields": "def f(x: int):\n    return '{:b}'.format(x) == '{0}{n}'.format(1, n=1)",
    "typing annotation names": "def f(x: List[int]):\n    from typing import Dict, Union\n    return len(x) == 1",
    "copy of an instance": "def f(x: List[int]):\n    from collections import Counter\n    return Counter(x).copy() == Counter(x)",
}


@pytest.mark.parametrize("name", sorted(LOOKS_DANGEROUS_IS_NOT))
def test_puzzles_that_only_look_dangerous_parse(name):
    assert parse_puzzle(LOOKS_DANGEROUS_IS_NOT[name]).name == "f"


def test_allow_list_refuses_nodes_it_does_not_know():
    function = ast.parse("def f(x: int):\n    return x").body[0]
    assert isinstance(function, ast.FunctionDef)
    function.body.insert(0, ast.Pass(lineno=2, col_offset=4))
    check_puzzle_hygiene(function)

    class Novel(ast.stmt):  # stands for syntax a later Python adds
        _fields = ()

    function.body.insert(0, Novel(lineno=2, col_offset=4))
    with pytest.raises(InvalidProgram, match=r"^syntax 'Novel' is not allowed in a puzzle \(line 2\)$"):
        check_puzzle_hygiene(function)
    assert ast.ClassDef not in ALLOWED_NODES and ast.MatchClass not in ALLOWED_NODES


def test_every_seed_puzzle_keeps_to_the_allow_list():
    seeds = load_seeds() + extra_training_seeds(2)
    assert all(parse_puzzle(seed.puzzle.source).answer_type == seed.puzzle.answer_type for seed in seeds)


def test_every_builtin_outside_the_allow_list_is_refused():
    assert set(dir(builtins)) - ALLOWED_BUILTINS <= FORBIDDEN_NAMES
    for name in (
        "type",
        "getattr",
        "vars",
        "format",
        "open",
        "eval",
        "exec",
        "compile",
        "input",
        "id",
        "hash",
    ):
        assert name in FORBIDDEN_NAMES
    unknown = "def f(x: int):\n    return undefined_name == x"  # a NameError at run time: harmless
    assert parse_puzzle(unknown).name == "f"


# ---------------------------------------------------------------------------------------------------
# Parse limits: the host's work is linear in the source and bounded


def many_defaults(count: int) -> str:
    return "def f(x: int, " + ", ".join(f"a{i}={i}" for i in range(count)) + "):\n    return x == a0"


def test_puzzle_with_15000_defaults_is_refused_for_its_argument_count():
    message = reason(many_defaults(15_000))
    assert message == f"puzzle has function 'f' with 15,001 arguments at line 1, limit {MAX_ARGUMENTS}"
    with pytest.raises(InvalidProgram, match="solution has function 'g' with 15,000 arguments"):
        parse_solution(many_defaults(15_000).replace("def f(x: int, ", "def g("))


def test_puzzle_at_the_argument_limit_keeps_every_default():
    puzzle = parse_puzzle(many_defaults(MAX_ARGUMENTS - 1))
    assert puzzle.defaults == tuple((f"a{i}", str(i)) for i in range(MAX_ARGUMENTS - 1))
    lambdas = "def f(x: int):\n    g = lambda " + ", ".join(f"a{i}" for i in range(MAX_ARGUMENTS + 1)) + ": 0"
    assert reason(lambdas + "\n    return True") == (
        f"puzzle has a lambda with {MAX_ARGUMENTS + 1} arguments at line 2, limit {MAX_ARGUMENTS}"
    )


def test_defaults_sharing_one_line_with_non_ascii_text_are_cut_exactly():
    text = "def f(x: str, " + ", ".join(f"a{i}='é{i}→'" for i in range(50)) + "):\n    return x == a0"
    assert parse_puzzle(text).defaults == tuple((f"a{i}", f"'é{i}→'") for i in range(50))


def sequence_case(parts: int) -> str:
    names = ", ".join(f"a{i}" for i in range(parts))
    return f"def f(x: int):\n    match x:\n        case [{names}]:\n            return True\n    return False"


def test_huge_case_pattern_is_refused_before_compiling():
    assert reason(sequence_case(4_000)) == (
        f"puzzle has a case pattern of more than {MAX_PATTERN_NODES} parts at line 3"
    )
    with pytest.raises(InvalidProgram, match="case pattern of more than"):
        canonical_hash(sequence_case(4_000))
    assert parse_puzzle(sequence_case(MAX_PATTERN_NODES - 1)).name == "f"


def test_too_many_syntax_nodes_are_refused():
    text = "def f(x: int):\n    return x in [" + "1," * MAX_AST_NODES + "]"
    assert reason(text) == f"puzzle has more than {MAX_AST_NODES:,} syntax nodes"
    assert parse_puzzle("def f(x: int):\n    return x in [" + "1," * 5_000 + "]").name == "f"


def test_many_leading_blank_lines_parse():
    assert parse_puzzle("\n" * 150_000 + "def f(x: int):\n    return x == 1").name == "f"


# ---------------------------------------------------------------------------------------------------
# Hygiene by value: nothing the allow-list exposes returns what it refuses by name


def refused_value(value: object) -> str | None:
    """Why a puzzle must not hold ``value``: a refused builtin, a module outside the allow-list, or a
    metaclass (``type`` among them: it builds classes whose dunder methods are named at run time)."""
    if isinstance(value, types.ModuleType):
        return None if value.__name__ in ALLOWED_IMPORTS else f"module {value.__name__}"
    if isinstance(value, type) and issubclass(value, type):
        return f"metaclass {value.__name__}"
    for name in FORBIDDEN_NAMES:
        if callable(value) and getattr(builtins, name, None) is value:
            return f"builtin {name}"
    return None


def exposed_values(depth: int = 3) -> dict[str, object]:
    """Every value a puzzle reaches by name: allowed modules, builtins and typing names, then their
    attributes (not private, not refused by name), ``depth`` levels deep."""
    frontier = [(m, importlib.import_module(m)) for m in sorted(ALLOWED_IMPORTS)]
    frontier += [(n, getattr(builtins, n)) for n in sorted(ALLOWED_BUILTINS)]
    frontier += [(n, getattr(typing, n)) for n in sorted(TYPING_ANNOTATION_NAMES)]
    seen: dict[int, tuple[str, object]] = {}
    for level in range(depth):
        following = []
        for path, value in frontier:
            if id(value) in seen:
                continue
            seen[id(value)] = (path, value)
            if level + 1 == depth or refused_value(value):
                continue
            for attr in dir(value):
                if attr.startswith("_") or attr in FORBIDDEN_ATTRIBUTES:
                    continue
                try:
                    following.append((f"{path}.{attr}", getattr(value, attr)))
                except Exception:  # noqa: BLE001 - a descriptor that raises exposes nothing
                    continue
        frontier = following
    return {path: value for path, value in seen.values()}


TYPING_SOURCES = {"typing", *TYPING_ANNOTATION_NAMES}
ARGUMENT_POOL = (0, 1, 2.5, "ab", b"a", [1, 2], (1,), {"a": 1}, {1}, None, int, str, list, dict, tuple, bool)


class TookTooLong(Exception):
    pass


@pytest.fixture
def time_limited_calls():
    """A SIGALRM handler that raises only while a call is armed: an alarm that lands after the call
    returned (a loaded machine) is ignored, never raised in the test's own code."""
    armed = [False]

    def too_slow(*_):
        if armed[0]:
            raise TookTooLong

    previous = signal.signal(signal.SIGALRM, too_slow)
    yield armed
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def call_quietly(armed: list, function, args: tuple) -> object:
    """``function(*args)``, or None when it raises or runs past 50 ms (itertools.count and friends)."""
    try:
        armed[0] = True
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return function(*args)
        finally:
            armed[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except BaseException:  # noqa: BLE001 - whatever it raised, it returned nothing
        return None


def test_no_exposed_value_is_one_the_allow_list_refuses():
    found = {path: why for path, value in exposed_values().items() if (why := refused_value(value))}
    assert found == {}


def test_no_exposed_callable_returns_what_the_allow_list_refuses(time_limited_calls):
    """Each callable up to two attribute levels deep (functions of modules, methods of their classes),
    called with no argument and with each of a pool of
    plain values, classes and what typing exposes (``.copy`` only with none: the hygiene allows
    nothing else)."""
    exposed = exposed_values(depth=3)
    typing_values = tuple(v for path, v in exposed.items() if path.partition(".")[0] in TYPING_SOURCES)
    found = {}
    for path, value in exposed.items():
        if not callable(value) or path.count(".") > 2 or path in ("print", "input"):
            continue
        if path.rpartition(".")[2] in ZERO_ARGUMENT_METHODS:
            calls = [()]
        else:
            calls = [(), *((x,) for x in ARGUMENT_POOL + typing_values)]
        for args in calls:
            why = refused_value(call_quietly(time_limited_calls, value, args))
            if why:
                found[f"{path}{args!r}"] = why
    assert found == {}


def test_constant_folding_that_would_need_gigabytes_is_refused_before_compiling():
    """CPython keeps every intermediate of a folded chain: 900 terms of 'a' * 4096 took the host to
    1.6 GB before this check. Refused from the syntax alone, for puzzles and solutions alike."""
    chain = " + ".join(["'a' * 4096"] * 900)
    assert reason(f"def f(x: str):\n    return x == {chain}") == (
        f"puzzle folds more than {MAX_FOLDED_BYTES:,} bytes of constants when compiled"
    )
    with pytest.raises(InvalidProgram, match="solution folds more than"):
        parse_solution(f"def g():\n    return {chain}")
    tuples = " + ".join(["('a' * 4096,) * 256"] * 900)
    assert "folds more than" in reason(f"def f(x: int):\n    return x == len({tuples})")
    small = " + ".join(["'a' * 4096"] * 20) + " + 'b'[0:1] + ('c', -1)[0] + '%s' % 5"
    assert parse_puzzle(f"def f(x: str):\n    return x == {small}").name == "f"
    ints = "def f(x: int):\n    return x == " + "9" * 8000 + " + 1" * 900
    assert parse_puzzle(ints).name == "f"
