"""Parse untrusted text into P3 puzzles and solutions, and cut a completed function out of model output.

Every entry point turns any problem with its input (syntax errors, NUL bytes, lone surrogates, huge or
deeply nested programs) into :class:`InvalidProgram` with a short one-line reason; nothing else escapes.
The work done on a source is linear in its length and bounded: MAX_SOURCE_CHARS, MAX_AST_NODES,
MAX_ARGUMENTS and MAX_PATTERN_NODES are checked before anything is compiled.

Puzzles are model-written and untrusted, so :func:`parse_puzzle` also applies hygiene rules
(:func:`check_puzzle_hygiene`). They are a filter against puzzles that reach outside their sandbox on
purpose, not the security boundary: the sandbox is. Solutions get no hygiene check.
"""

from __future__ import annotations

import ast
import builtins
import re
import string
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from puzzles.answer_types import annotation_to_type
from puzzles.records import InvalidProgram, Puzzle, Solution
from puzzles.text import leading_whitespace as _leading_whitespace
from puzzles.text import split_lines as _split_lines

MAX_SOURCE_CHARS = 200_000  # one puzzle or solution; P3's longest sat is about 14,000
MAX_INT_DIGITS = 50_000  # longest integer literal accepted; P3 has one of 8,844 digits (BoxVolume:1)

MAX_AST_NODES = 50_000  # syntax nodes in one source; P3's largest program has about 2,800
MAX_ARGUMENTS = 100  # arguments of one function or lambda; P3 has at most 7
MAX_PATTERN_NODES = 100  # sub-patterns of one match case: CPython compiles them in quadratic memory
# Bytes of constants the compiler may fold, all intermediates together: it keeps each one, so a chain
# 'a' * 4096 + 'a' * 4096 + ... of 900 terms (10 KB of source) needs 1.6 GB. P3's largest needs 5 KB.
MAX_FOLDED_BYTES = 16 * 1024 * 1024

# Puzzle hygiene is an allow-list: only these syntax nodes, these builtins, these modules (whole, no
# submodules). Everything else is refused, so a construct added to Python later is refused too.
ALLOWED_IMPORTS = frozenset(
    {
        "math", "itertools", "collections", "heapq", "re", "random", "string", "functools",
        "operator", "bisect", "fractions", "statistics",
    }
)  # fmt: skip
# From ``typing`` a puzzle imports annotation names only (``from typing import List``): its helpers
# return classes the allow-list refuses by name (``get_origin(Type)`` is ``type``; the module itself
# holds ``ABCMeta``). tests/puzzles/test_hygiene_allowlist.py walks what these names reach.
TYPING_ANNOTATION_NAMES = frozenset(
    {"Any", "Callable", "Dict", "FrozenSet", "List", "Optional", "Set", "Tuple", "Union"}
)

# Builtins a puzzle may name: pure functions, plain types and the common exceptions. Not here, among
# others: type/object/super/property (class making), getattr/hasattr/vars/dir (attributes by name),
# format (format fields read attributes named at run time), eval/exec/compile/open/__import__/input,
# hash and id (they differ between processes: a verified pair must verify the same anywhere).
ALLOWED_BUILTINS = frozenset(
    {
        "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr",
        "complex", "dict", "divmod", "enumerate", "filter", "float", "frozenset", "hex",
        "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min", "next", "oct",
        "ord", "pow", "print", "range", "repr", "reversed", "round", "set", "slice", "sorted", "str",
        "sum", "tuple", "zip", "True", "False", "None", "Ellipsis", "NotImplemented",
        "ArithmeticError", "AssertionError", "Exception", "IndexError", "KeyError", "LookupError",
        "NotImplementedError", "OverflowError", "RecursionError", "RuntimeError", "StopIteration",
        "TypeError", "UnicodeError", "ValueError", "ZeroDivisionError",
    }
)  # fmt: skip

# Every builtin this Python has, plus those Pythons 3.10 to 3.13 add (the worker may run another) and
# those the site module adds (absent under ``python -S``). Any of them not in ALLOWED_BUILTINS is
# refused as a name, read or bound (``open = 1`` in an inner function would leave ``open`` the builtin
# in the outer one), so no scope analysis is needed.
KNOWN_BUILTINS = frozenset(dir(builtins)) | frozenset(
    {
        "aiter", "anext", "EncodingWarning", "BaseExceptionGroup", "ExceptionGroup",
        "PythonFinalizationError", "help", "exit", "quit", "copyright", "credits", "license",
    }
)  # fmt: skip
FORBIDDEN_NAMES = KNOWN_BUILTINS - ALLOWED_BUILTINS

# The syntax a puzzle may use. Refused, among others: class definitions and class patterns in match
# statements (``__match_args__``/``__instancecheck__`` read attributes or decide matches by run-time
# names), with/async/await/yield/global, ``except*``, and any node type a later Python adds.
ALLOWED_NODES = frozenset(
    {
        # statements
        ast.FunctionDef, ast.Return, ast.Delete, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For,
        ast.While, ast.If, ast.Match, ast.Raise, ast.Try, ast.Assert, ast.Import, ast.ImportFrom,
        ast.Nonlocal, ast.Expr, ast.Pass, ast.Break, ast.Continue,
        # expressions
        ast.BoolOp, ast.NamedExpr, ast.BinOp, ast.UnaryOp, ast.Lambda, ast.IfExp, ast.Dict, ast.Set,
        ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Compare, ast.Call,
        ast.FormattedValue, ast.JoinedStr, ast.Constant, ast.Attribute, ast.Subscript, ast.Starred,
        ast.Name, ast.List, ast.Tuple, ast.Slice,
        # contexts and operators
        ast.Load, ast.Store, ast.Del, ast.And, ast.Or, ast.Add, ast.Sub, ast.Mult, ast.MatMult,
        ast.Div, ast.Mod, ast.Pow, ast.LShift, ast.RShift, ast.BitOr, ast.BitXor, ast.BitAnd,
        ast.FloorDiv, ast.Invert, ast.Not, ast.UAdd, ast.USub, ast.Eq, ast.NotEq, ast.Lt, ast.LtE,
        ast.Gt, ast.GtE, ast.Is, ast.IsNot, ast.In, ast.NotIn,
        # parts
        ast.comprehension, ast.ExceptHandler, ast.arguments, ast.arg, ast.keyword, ast.alias,
        ast.match_case, ast.MatchValue, ast.MatchSingleton, ast.MatchSequence, ast.MatchMapping,
        ast.MatchStar, ast.MatchAs, ast.MatchOr,
    }
)  # fmt: skip

_REFUSED_NODES = {  # how a refusal names the construct; any other node outside ALLOWED_NODES: by type
    "ClassDef": "class definitions are",
    "MatchClass": "class patterns in match statements are",
    "AsyncFunctionDef": "async functions are",
    "Await": "await is",
    "AsyncFor": "async for is",
    "AsyncWith": "async with is",
    "With": "with statements are",
    "Global": "global statements are",
    "Yield": "yield (generator functions) is",
    "YieldFrom": "yield from (generator functions) is",
    "TryStar": "except* is",
}

# Public attributes of the allowed modules (followed transitively) that are modules outside the
# allow-list, e.g. ``typing.sys``, ``statistics.sys``, ``re.enum.bltns`` (builtins), ``string``'s ``os``
# via ``random``. tests/puzzles/test_parse.py recomputes this closure for the running Python.
MODULE_ESCAPE_ATTRIBUTES = frozenset(
    {
        "abc", "bltns", "builtins", "contextlib", "copyreg", "enum", "genericpath", "importlib",
        "numbers", "os", "path", "posixpath", "st", "stat", "stdlib_re", "sys", "types", "warnings",
    }
)  # fmt: skip

# Frame and code introspection reaches globals and builtins without any dunder name.
INTROSPECTION_ATTRIBUTES = frozenset(
    {
        "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame",
        "ag_code", "ag_await", "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame",
        "tb_next", "co_code", "co_consts", "mro",
    }
)  # fmt: skip

# Library functions that turn a string into attribute access or code (operator.attrgetter,
# functools.update_wrapper gets and sets the attributes its arguments name, typing.get_type_hints
# evaluates string annotations, functools.singledispatch calls it), and the string methods whose
# format fields ('{0.attr}', '{0[key]}') read attributes named at run time.
STRING_EVALUATING_NAMES = frozenset(
    {
        "attrgetter", "methodcaller", "get_type_hints", "ForwardRef", "evaluate_forward_ref",
        "singledispatch", "singledispatchmethod", "Formatter", "get_field", "format", "format_map",
        "vformat", "update_wrapper", "wraps",
    }
)  # fmt: skip

# ABCs (``Callable`` forwards its attributes to ``collections.abc.Callable``) register virtual
# subclasses process-wide: an ``isinstance`` that says yes to anything.
SIDE_EFFECT_ATTRIBUTES = frozenset({"register"})
# Methods allowed only as ``x.copy()``: unbound and given a class for ``self``, Counter.copy and
# UserList.copy return ``self.__class__(self)``, which is ``type`` itself.
ZERO_ARGUMENT_METHODS = frozenset({"copy"})

FORBIDDEN_ATTRIBUTES = (
    MODULE_ESCAPE_ATTRIBUTES | INTROSPECTION_ATTRIBUTES | STRING_EVALUATING_NAMES | SIDE_EFFECT_ATTRIBUTES
)
_FORMAT_METHODS = frozenset({"format", "format_map", "vformat"})

_DUNDER_STRING = re.compile(r"__[A-Za-z]\w*__")  # a literal that is a dunder name (fullmatch)
_PLAIN_FORMAT_FIELD = re.compile(r"\d*|[A-Za-z_]\w*")  # '{}', '{0}', '{name}': no '.attr', no '[key]'
_FORMATTER = string.Formatter()
_TYPING_NAMES = ("typing",)


# ---------------------------------------------------------------------------------------------------
# Safe parsing


@contextmanager
def int_digit_allowance(digits: int = MAX_INT_DIGITS) -> Iterator[None]:
    """Let int <-> str conversion handle ``digits`` digits while the block runs.

    Python 3.11 refuses integer literals of more than 4,300 digits by default; P3 has one. The limit is
    interpreter-wide, so it is raised for the duration of the outermost active block (thread-safe
    nesting) and restored afterwards. It is never lowered, and left alone when already unlimited (0).
    """
    global _allowance_users, _allowance_saved
    get_limit = getattr(sys, "get_int_max_str_digits", None)
    set_limit = getattr(sys, "set_int_max_str_digits", None)
    if get_limit is None or set_limit is None:
        yield
        return
    with _allowance_lock:
        if _allowance_users == 0:
            _allowance_saved = get_limit()
            if _allowance_saved != 0 and _allowance_saved < digits:
                set_limit(digits)
        _allowance_users += 1
    try:
        yield
    finally:
        with _allowance_lock:
            _allowance_users -= 1
            if _allowance_users == 0 and get_limit() != _allowance_saved:
                set_limit(_allowance_saved)


_allowance_lock = threading.Lock()
_allowance_users = 0
_allowance_saved = 0


def parse_source(text: str, what: str = "source") -> ast.Module:
    """``ast.parse`` that raises only InvalidProgram, with a one-line reason."""
    if not isinstance(text, str):
        raise InvalidProgram(f"{what} must be text (str), got {type(text).__name__}")
    if len(text) > MAX_SOURCE_CHARS:
        raise InvalidProgram(f"{what} is {len(text):,} characters, limit {MAX_SOURCE_CHARS:,}")
    if "\x00" in text:
        raise InvalidProgram(f"{what} contains a NUL byte at offset {text.index(chr(0))}")
    try:
        with int_digit_allowance(), warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # model junk like "1abc" must not spam stderr
            tree = ast.parse(text)
            too_big = _size_problem(tree) or _folding_problem(tree)
            if too_big is None:
                # Errors that only the compiler finds (a repeated argument name, a bad nonlocal).
                compile(tree, f"<{what}>", "exec")
                return tree
        reason = f"{what} {too_big}"
    except SyntaxError as error:
        message = error.msg or "invalid syntax"
        if "integer string conversion" in message:
            message = f"integer literal longer than {MAX_INT_DIGITS:,} digits"
        reason = f"syntax error at line {error.lineno}: {_one_line(message)}"
    except UnicodeError:
        reason = f"{what} is not valid Unicode text (it contains lone surrogates)"
    except (RecursionError, MemoryError):
        reason = f"{what} is nested too deeply to parse"
    except ValueError as error:
        reason = f"{what} cannot be parsed: {_one_line(str(error))}"
    raise InvalidProgram(reason)


def _size_problem(tree: ast.Module) -> str | None:
    """Why ``tree`` is too big to compile and check in bounded time and memory, or None.

    One pass over the nodes, stopping at MAX_AST_NODES; each case pattern is counted once, on its own.
    """
    count = 0
    for node in ast.walk(tree):
        count += 1
        if count > MAX_AST_NODES:
            return f"has more than {MAX_AST_NODES:,} syntax nodes"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            total = len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
            total += (args.vararg is not None) + (args.kwarg is not None)
            if total > MAX_ARGUMENTS:
                name = "a lambda" if isinstance(node, ast.Lambda) else f"function '{node.name}'"
                return f"has {name} with {total:,} arguments at line {node.lineno}, limit {MAX_ARGUMENTS}"
        elif isinstance(node, ast.match_case):
            parts = 0
            for _ in ast.walk(node.pattern):
                parts += 1
                if parts > MAX_PATTERN_NODES:
                    return (
                        f"has a case pattern of more than {MAX_PATTERN_NODES} parts at line "
                        f"{node.pattern.lineno}"
                    )
    return None


# CPython's constant folder (3.10 to 3.13) refuses a product of more than 4,096 characters or 256
# items and an int product, power or shift of more than 128 bits; sums and slices it folds whatever
# their size.
_FOLDED_PRODUCT_BYTES = 4 * 4096
_FOLDED_INT_BYTES = 16


def _folding_problem(tree: ast.Module) -> str | None:
    """Why compiling ``tree`` would fold more than MAX_FOLDED_BYTES of constants, or None.

    An upper bound from the syntax alone: each expression made only of constants gets a kind (a
    sequence or a number) and a size in bytes, its children's first (reversed breadth-first order).
    """
    folded: dict[int, tuple[bool, int]] = {}  # id(node) -> (is a sequence, bytes)
    total = 0
    for node in reversed(list(ast.walk(tree))):
        estimate = _folded_estimate(node, folded)
        if estimate is None:
            continue
        folded[id(node)] = estimate
        if not isinstance(node, ast.Constant):
            total += estimate[1]
            if total > MAX_FOLDED_BYTES:
                return f"folds more than {MAX_FOLDED_BYTES:,} bytes of constants when compiled"
    return None


def _folded_estimate(node: ast.AST, folded: dict[int, tuple[bool, int]]) -> tuple[bool, int] | None:
    """(is a sequence, bytes) of the constant ``node`` folds to, or None when it folds to none."""
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, (str, bytes)):
            return True, 4 * len(value)
        return False, (value.bit_length() // 8 + 1) if isinstance(value, int) else 16
    if isinstance(node, ast.Tuple):
        items = [folded.get(id(item)) for item in node.elts]
        if None in items:
            return None
        return True, sum(size for _, size in items) + 8 * len(items)  # type: ignore[misc]
    if isinstance(node, ast.UnaryOp):
        return folded.get(id(node.operand))
    if isinstance(node, ast.Slice):
        bounds = [part for part in (node.lower, node.upper, node.step) if part is not None]
        return None if any(id(part) not in folded for part in bounds) else (False, _FOLDED_INT_BYTES)
    if isinstance(node, ast.Subscript):  # at most the sequence it slices
        if id(node.slice) not in folded:
            return None
        return folded.get(id(node.value))
    if isinstance(node, ast.BinOp):
        left, right = folded.get(id(node.left)), folded.get(id(node.right))
        if left is None or right is None:
            return None
        sequence = left[0] or right[0]
        if isinstance(node.op, (ast.Mult, ast.Pow, ast.LShift)):
            return sequence, _FOLDED_PRODUCT_BYTES if sequence else _FOLDED_INT_BYTES
        if left[0] and right[0]:
            return True, left[1] + right[1]
        if isinstance(node.op, ast.Mod) and left[0]:
            return None  # '%' formatting is never folded
        return sequence, max(left[1], right[1]) + 1
    return None


# ---------------------------------------------------------------------------------------------------
# Puzzles and solutions


def parse_puzzle(text: str, *, allow_eval: bool = False) -> Puzzle:
    """Parse ``def f(answer: T, a=..., ...) -> bool`` (any name) with an optional typing import.

    Raises InvalidProgram saying what was wrong. ``allow_eval`` lets the puzzle call ``eval(x)``: only
    for trusted collections (six P3 problems need it, e.g. Quine); model-written puzzles must not
    evaluate their answer in the process that computes the verdict.
    """
    try:
        return _parse_puzzle(text, allow_eval)
    except (RecursionError, MemoryError):
        raise InvalidProgram("puzzle is nested too deeply to analyse") from None


def parse_solution(text: str, puzzle: Puzzle | None = None) -> Solution:
    """Parse ``def g(a=..., ...)`` (any name), callable with no arguments.

    With ``puzzle``, a solution that has arguments must have exactly the puzzle's extra arguments with
    equal literal defaults (in any order: it is called with no arguments). Raises InvalidProgram saying
    what was wrong.
    """
    try:
        return _parse_solution(text, puzzle)
    except (RecursionError, MemoryError):
        raise InvalidProgram("solution is nested too deeply to analyse") from None


def check_puzzle_hygiene(function: ast.FunctionDef, *, allow_eval: bool = False) -> None:
    """Raise InvalidProgram unless a puzzle function keeps to the allow-list.

    Allowed: the syntax in ALLOWED_NODES (no classes, no class patterns in ``match``, no generators,
    ``with``, ``global`` or async), the builtins in ALLOWED_BUILTINS (any other builtin name is refused,
    read or bound; ``eval`` is allowed as ``eval(x)`` when ``allow_eval``), names without a leading
    ``__``, attributes without a leading ``_`` and outside FORBIDDEN_ATTRIBUTES (``.format`` and
    ``.format_map`` among them), f-string format specs without replacement fields, string literals
    that spell no dunder name, and ``import m`` / ``from m import name`` of a module in ALLOWED_IMPORTS
    itself (no submodule part).
    """
    allowed_eval: set[int] = set()  # ids of Name nodes that are the callee of an allowed eval(x)
    allowed_calls: set[int] = set()  # ids of Attribute nodes called as 'literal'.format(...) or x.copy()
    local = _locals_of(function)  # a refused builtin's name bound here is f's local everywhere in f
    for node in ast.walk(function):  # breadth-first: a Call comes before its callee Name
        if type(node) not in ALLOWED_NODES:
            _refuse_node(node)
        if isinstance(node, ast.Call):
            if allow_eval and _is_single_argument_eval(node):
                allowed_eval.add(id(node.func))
            if _is_plain_format_call(node) or _is_zero_argument_method_call(node):
                allowed_calls.add(id(node.func))
        elif isinstance(node, ast.Name):
            _check_identifier(node.id, id(node) in allowed_eval or node.id in local)
        elif isinstance(node, ast.Attribute):
            _check_attribute(node.attr, id(node) in allowed_calls)
        elif isinstance(node, ast.arg):
            _check_identifier(node.arg, node.arg in local)
        elif isinstance(node, ast.FunctionDef):
            if node.name.startswith("__"):
                raise InvalidProgram(f"defining '{node.name}' is not allowed (dunder names are off limits)")
            _check_identifier(node.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                _check_module(alias.name)
                _check_identifier(alias.asname or alias.name)
        elif isinstance(node, ast.ImportFrom):
            _check_import_from(node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _DUNDER_STRING.fullmatch(node.value):
                raise InvalidProgram(f"string literal is the dunder name '{node.value}'")
        elif isinstance(node, ast.FormattedValue):
            spec = node.format_spec
            if spec is not None and any(isinstance(part, ast.FormattedValue) for part in ast.walk(spec)):
                raise InvalidProgram(
                    f"f-string format spec computed at run time is not allowed in a puzzle (line {node.lineno})"
                )
        elif isinstance(node, ast.comprehension):
            if node.is_async:
                raise InvalidProgram("async comprehensions are not allowed in a puzzle")
        elif isinstance(node, ast.ExceptHandler):
            if node.name is not None:
                _check_identifier(node.name)
        elif isinstance(node, ast.keyword):
            if node.arg is not None and node.arg.startswith("__"):
                raise InvalidProgram(f"keyword '{node.arg}' is not allowed (dunder names are off limits)")
        elif isinstance(node, ast.Nonlocal):
            for name in node.names:
                _check_identifier(name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)):
            if node.name is not None:
                _check_identifier(node.name)
        elif isinstance(node, ast.MatchMapping):
            if node.rest is not None:
                _check_identifier(node.rest)


def _parse_puzzle(text: str, allow_eval: bool) -> Puzzle:
    source, function, span = _single_function(text, "puzzle")
    _check_plain_signature(function, "puzzle")
    arguments = function.args.args
    if not arguments:
        raise InvalidProgram("puzzle has no answer argument; expected def f(answer: T, ...)")
    answer = arguments[0]
    defaults = function.args.defaults
    if len(defaults) == len(arguments):
        raise InvalidProgram(f"answer argument '{answer.arg}' must not have a default")
    first_defaulted = len(arguments) - len(defaults)
    if first_defaulted > 1:
        raise InvalidProgram(f"argument '{arguments[1].arg}' has no default")
    if answer.annotation is None:
        raise InvalidProgram(f"answer argument '{answer.arg}' has no type annotation")
    answer_type = annotation_to_type(answer.annotation)
    if function.returns is not None and not (
        isinstance(function.returns, ast.Name) and function.returns.id == "bool"
    ):
        raise InvalidProgram(f"return annotation must be bool, got {_render(function.returns)}")
    check_puzzle_hygiene(function, allow_eval=allow_eval)
    pairs = _literal_defaults(source, arguments[1:], defaults)
    return Puzzle(
        source=_function_text(source, span),
        name=function.name,
        answer_arg=answer.arg,
        answer_type=answer_type,
        defaults=pairs,
    )


def _parse_solution(text: str, puzzle: Puzzle | None) -> Solution:
    source, function, span = _single_function(text, "solution")
    _check_plain_signature(function, "solution")
    arguments = function.args.args
    defaults = function.args.defaults
    if len(defaults) < len(arguments):
        missing = arguments[len(arguments) - len(defaults) - 1].arg
        raise InvalidProgram(f"argument '{missing}' has no default (a solution is called with no arguments)")
    pairs = _literal_defaults(source, arguments, defaults)
    if puzzle is not None and pairs:
        _match_puzzle_defaults(pairs, puzzle)
    return Solution(source=_function_text(source, span), name=function.name)


def _single_function(text: str, what: str) -> tuple[str, ast.FunctionDef, tuple[int, int]]:
    """The normalised source, its one function, and the function's line span (trailing comments kept)."""
    if not isinstance(text, str):
        raise InvalidProgram(f"{what} must be text (str), got {type(text).__name__}")
    source = _strip_blank_edges(_dedent(text.removeprefix("\ufeff")))
    module = parse_source(source, what)
    functions = [s for s in module.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not functions:
        raise InvalidProgram("no function definition found")
    if len(functions) > 1:
        raise InvalidProgram(f"{len(functions)} functions found, expected 1")
    for statement in module.body:
        if statement is not functions[0] and not is_typing_import(statement):
            raise InvalidProgram(
                f"unexpected {_describe(statement)} at line {statement.lineno}; expected only one function"
            )
    function = functions[0]
    if isinstance(function, ast.AsyncFunctionDef):
        raise InvalidProgram(f"async function '{function.name}' is not allowed")
    following = [s.lineno for s in module.body if s.lineno > function.lineno]
    first_line = min([function.lineno, *(d.lineno for d in function.decorator_list)])
    return source, function, (first_line, min(following, default=source.count("\n") + 2) - 1)


def _check_plain_signature(function: ast.FunctionDef, what: str) -> None:
    args = function.args
    if function.decorator_list:
        raise InvalidProgram(f"decorators are not allowed on the {what} function")
    if args.posonlyargs:
        raise InvalidProgram(f"positional-only arguments are not allowed ('{args.posonlyargs[0].arg}')")
    if args.vararg is not None:
        raise InvalidProgram(f"*{args.vararg.arg} is not allowed")
    if args.kwonlyargs:
        raise InvalidProgram(f"keyword-only arguments are not allowed ('{args.kwonlyargs[0].arg}')")
    if args.kwarg is not None:
        raise InvalidProgram(f"**{args.kwarg.arg} is not allowed")


def _literal_defaults(
    source: str, arguments: list[ast.arg], defaults: list[ast.expr]
) -> tuple[tuple[str, str], ...]:
    pairs = []
    lines = _EncodedLines(source)  # split and encode once: defaults may share one long line
    for argument, default in zip(arguments, defaults, strict=True):
        text = lines.segment(default)
        try:
            with int_digit_allowance():
                ast.literal_eval(default)
        except (ValueError, TypeError, SyntaxError, MemoryError):
            raise InvalidProgram(
                f"default of argument '{argument.arg}' is not a literal: {_short(text)}"
            ) from None
        pairs.append((argument.arg, text))
    return tuple(pairs)


def _match_puzzle_defaults(pairs: tuple[tuple[str, str], ...], puzzle: Puzzle) -> None:
    # Order is not checked: g is called with no arguments, and 30 P3 reference solutions list the
    # puzzle's arguments in another order (e.g. WaterPouring:1).
    names = [name for name, _ in pairs]
    expected = dict(puzzle.defaults)
    if sorted(names) != sorted(expected):
        raise InvalidProgram(
            f"solution arguments ({', '.join(names)}) are not the puzzle's "
            f"extra arguments ({', '.join(expected) or 'none'})"
        )
    for name, text in pairs:
        puzzle_text = expected[name]
        if not _same_literal(_eval_literal(text), _eval_literal(puzzle_text)):
            raise InvalidProgram(
                f"default of argument '{name}' is {_short(text, 30)} but the puzzle has {_short(puzzle_text, 30)}"
            )


def _eval_literal(text: str) -> object:
    try:
        with int_digit_allowance():
            return ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError):
        raise InvalidProgram(f"default {_short(text)} is not a literal") from None


def _same_literal(a: object, b: object) -> bool:
    """Equality that also requires equal types throughout (``1``, ``1.0`` and ``True`` differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_literal(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_literal(a[k], b[k]) for k in a)  # type: ignore[index,attr-defined]
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


def _locals_of(function: ast.FunctionDef) -> frozenset[str]:
    """Names that ``function`` binds in its own scope by assignment or as an argument. Python makes
    such a name local to the whole function: every read of it in the function, or in a function
    nested in it, is that local, never a builtin (no ``global``: it is refused)."""
    names = {a.arg for a in function.args.args}
    pending: list[ast.AST] = list(function.body)
    while pending:
        node = pending.pop()
        if isinstance(
            node, (ast.FunctionDef, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
        ):
            continue  # its own scope
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        pending.extend(ast.iter_child_nodes(node))
    return frozenset(names)


def _is_plain_format_call(node: ast.Call) -> bool:
    """``'{:b}'.format(x)`` on a literal whose fields name arguments only (no '.attr', no '[key]', no
    field nested in a spec): the format fields read no attribute named at run time."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr == "format"):
        return False
    if not (isinstance(func.value, ast.Constant) and isinstance(func.value.value, str)):
        return False
    try:
        fields = list(_FORMATTER.parse(func.value.value))
    except ValueError:
        return False
    return all(
        name is None or (_PLAIN_FORMAT_FIELD.fullmatch(name) and "{" not in (spec or ""))
        for _, name, spec, _ in fields
    )


def _is_zero_argument_method_call(node: ast.Call) -> bool:
    func = node.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr in ZERO_ARGUMENT_METHODS
        and not (node.args or node.keywords)
    )


def _is_single_argument_eval(node: ast.Call) -> bool:
    return (
        isinstance(node.func, ast.Name)
        and node.func.id == "eval"
        and len(node.args) == 1
        and not node.keywords
        and not isinstance(node.args[0], ast.Starred)
    )


def _refuse_node(node: ast.AST) -> None:
    name = type(node).__name__
    what = _REFUSED_NODES.get(name, f"syntax '{name}' is")
    line = getattr(node, "lineno", "?")
    if isinstance(node, ast.ClassDef):
        where = f"'class {node.name}' at line {line}"
    elif isinstance(node, ast.MatchClass):
        where = f"'case {_render(node.cls)}(...)' at line {line}: it reads attributes named at run time"
    else:
        where = f"line {line}"
    raise InvalidProgram(f"{what} not allowed in a puzzle ({where})")


def _check_identifier(name: str, allowed_eval: bool = False) -> None:
    """A name the puzzle reads or binds: no dunder, no builtin outside ALLOWED_BUILTINS."""
    if name in FORBIDDEN_NAMES and not allowed_eval:
        hint = " (P3 allows only eval(x) in trusted puzzles)" if name == "eval" else ""
        raise InvalidProgram(f"use of '{name}' is not allowed in a puzzle{hint}")
    if name.startswith("__"):
        raise InvalidProgram(f"name '{name}' is not allowed (dunder names are off limits)")


def _check_attribute(attr: str, allowed_call: bool = False) -> None:
    if attr.startswith("__"):
        raise InvalidProgram(f"attribute '.{attr}' is not allowed (dunder names are off limits)")
    if attr.startswith("_"):
        raise InvalidProgram(f"attribute '.{attr}' is not allowed (private attributes are off limits)")
    if allowed_call:
        return
    if attr in ZERO_ARGUMENT_METHODS:
        raise InvalidProgram(f"attribute '.{attr}' is allowed only called with no arguments, as x.{attr}()")
    if attr in _FORMAT_METHODS:
        raise InvalidProgram(
            f"attribute '.{attr}' is not allowed in a puzzle (format fields such as '{{0.name}}' read "
            "attributes named at run time; use an f-string)"
        )
    if attr in FORBIDDEN_ATTRIBUTES:
        raise InvalidProgram(f"attribute '.{attr}' is not allowed in a puzzle")


def _check_module(name: str) -> None:
    if name in ALLOWED_IMPORTS:
        return
    if name in _TYPING_NAMES:
        raise InvalidProgram(
            "import of module 'typing' is not allowed (import its annotation names: from typing import List)"
        )
    if name.partition(".")[0] in ALLOWED_IMPORTS:
        raise InvalidProgram(f"import of module '{name}' is not allowed (submodules are off limits)")
    allowed = ", ".join(sorted(ALLOWED_IMPORTS))
    raise InvalidProgram(f"import of module '{name}' is not allowed (allowed: {allowed})")


def _check_import_from(node: ast.ImportFrom) -> None:
    if node.level:
        raise InvalidProgram("relative imports are not allowed in a puzzle")
    if node.module in _TYPING_NAMES:
        for alias in node.names:
            if alias.name not in TYPING_ANNOTATION_NAMES:
                allowed = ", ".join(sorted(TYPING_ANNOTATION_NAMES))
                raise InvalidProgram(
                    f"importing '{alias.name}' from 'typing' is not allowed (allowed: {allowed})"
                )
            _check_identifier(alias.asname or alias.name)
        return
    _check_module(node.module or "")
    for alias in node.names:
        if alias.name == "*":
            raise InvalidProgram(f"'from {node.module} import *' is not allowed in a puzzle")
        if alias.name in FORBIDDEN_ATTRIBUTES or alias.name.startswith("_"):
            raise InvalidProgram(f"importing '{alias.name}' from '{node.module}' is not allowed")
        _check_identifier(alias.asname or alias.name)


def is_typing_import(statement: ast.stmt) -> bool:
    """``from typing import ...`` or ``import typing``: allowed beside a puzzle and ignored."""
    if isinstance(statement, ast.ImportFrom):
        return statement.module in _TYPING_NAMES and statement.level == 0
    if isinstance(statement, ast.Import):
        return all(alias.name in _TYPING_NAMES for alias in statement.names)
    return False


def _describe(statement: ast.stmt) -> str:
    if isinstance(statement, ast.ClassDef):
        return f"class '{statement.name}'"
    if isinstance(statement, ast.Import):
        return f"import of '{statement.names[0].name}'"
    if isinstance(statement, ast.ImportFrom):
        return f"import from '{statement.module}'"
    if isinstance(statement, ast.Expr):
        return "expression statement"
    return f"{type(statement).__name__} statement"


# ---------------------------------------------------------------------------------------------------
# Small text helpers


def _dedent_block(lines: list[str], prefix: str) -> str:
    """Remove ``prefix`` from every line that has it (string contents without it are left alone)."""
    if not prefix:
        return "\n".join(lines)
    return "\n".join(line[len(prefix) :] if line.startswith(prefix) else line for line in lines)


def _dedent(text: str) -> str:
    lines = _split_lines(text)
    first = next((line for line in lines if line.strip()), "")
    return _dedent_block(lines, _leading_whitespace(first))


def _strip_blank_edges(text: str) -> str:
    lines = _split_lines(text)
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return "\n".join(lines[start:end])


def _function_text(source: str, span: tuple[int, int]) -> str:
    """Lines ``span`` (1-based, inclusive) of ``source`` without trailing blank lines."""
    return _strip_blank_edges("\n".join(source.split("\n")[span[0] - 1 : span[1]]))


class _EncodedLines:
    """Source text of nodes, like ast.get_source_segment but splitting the source once and encoding
    each line at most once, so cutting out n nodes costs time linear in the source, not n times it.

    The source uses only "\n" line breaks (callers normalise it), so its lines are the parser's lines.
    """

    def __init__(self, source: str) -> None:
        self.lines = source.split("\n")
        self.encoded: dict[int, bytes] = {}

    def line(self, number: int) -> bytes:  # 1-based
        if number not in self.encoded:
            self.encoded[number] = self.lines[number - 1].encode()
        return self.encoded[number]

    def segment(self, node: ast.AST) -> str:
        first, last = node.lineno, node.end_lineno  # type: ignore[attr-defined]
        start, end = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]  # UTF-8 byte offsets
        if first == last:
            return self.line(first)[start:end].decode()
        head, tail = self.line(first)[start:].decode(), self.line(last)[:end].decode()
        return "\n".join([head, *self.lines[first : last - 1], tail])


def _render(node: ast.expr) -> str:
    try:
        with int_digit_allowance():
            return _short(ast.unparse(node))
    except (RecursionError, ValueError, MemoryError):
        return "<unprintable>"


def _one_line(text: str) -> str:
    return _short(" ".join(text.split()), 100)


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
