"""Parse untrusted text into P3 puzzles and solutions, and cut a completed function out of model output.

Every entry point turns any problem with its input (syntax errors, NUL bytes, lone surrogates, huge or
deeply nested programs) into :class:`InvalidProgram` with a short one-line reason; nothing else escapes.

Puzzles are model-written and untrusted, so :func:`parse_puzzle` also applies hygiene rules
(:func:`check_puzzle_hygiene`). They are a filter against puzzles that reach outside their sandbox on
purpose, not the security boundary: the sandbox is. Solutions get no hygiene check.
"""

from __future__ import annotations

import ast
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from puzzles.answer_types import annotation_to_type
from puzzles.records import InvalidProgram, Puzzle, Solution

MAX_SOURCE_CHARS = 200_000  # one puzzle or solution; P3's longest sat is about 14,000
MAX_INT_DIGITS = 50_000  # longest integer literal accepted; P3 has one of 8,844 digits (BoxVolume:1)

ALLOWED_IMPORTS = frozenset(
    {
        "math", "itertools", "collections", "heapq", "re", "random", "string", "functools",
        "operator", "bisect", "fractions", "statistics", "typing",
    }
)  # fmt: skip

FORBIDDEN_NAMES = frozenset(
    {
        "exec", "eval", "compile", "open", "__import__", "globals", "locals", "vars", "getattr",
        "setattr", "delattr", "breakpoint", "input", "exit", "quit", "memoryview", "help",
    }
)  # fmt: skip

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
        "tb_next", "co_code", "co_consts",
    }
)  # fmt: skip

# Library functions that turn a string into attribute access or code (operator.attrgetter,
# typing.get_type_hints evaluates string annotations, functools.singledispatch calls it).
STRING_EVALUATING_NAMES = frozenset(
    {
        "attrgetter", "methodcaller", "get_type_hints", "ForwardRef", "evaluate_forward_ref",
        "singledispatch", "singledispatchmethod", "Formatter", "get_field",
    }
)  # fmt: skip

FORBIDDEN_ATTRIBUTES = MODULE_ESCAPE_ATTRIBUTES | INTROSPECTION_ATTRIBUTES | STRING_EVALUATING_NAMES

_DUNDER_IN_STRING = re.compile(r"__[A-Za-z]\w*__")
_DEF_LINE = re.compile(r"[ \t]*(?:async[ \t]+)?def[ \t]+[^\W\d]\w*[ \t]*\(")
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
            # Errors that only the compiler finds (a repeated argument name, a bad nonlocal).
            compile(tree, f"<{what}>", "exec")
            return tree
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
    """Raise InvalidProgram when a puzzle function reaches for code execution, I/O or interpreter internals.

    Rejected: the names in FORBIDDEN_NAMES (``eval`` is allowed as ``eval(x)`` when ``allow_eval``),
    any name or attribute starting with ``__``, attributes starting with ``_``, FORBIDDEN_ATTRIBUTES,
    string literals that spell a dunder name, and imports outside ALLOWED_IMPORTS.
    """
    allowed_eval: set[int] = set()  # ids of Name nodes that are the callee of an allowed eval(x)
    for node in ast.walk(function):  # breadth-first: a Call comes before its callee Name
        if isinstance(node, ast.Call):
            if allow_eval and _is_single_argument_eval(node):
                allowed_eval.add(id(node.func))
        elif isinstance(node, ast.Name):
            _check_name(node, allowed_eval)
        elif isinstance(node, ast.Attribute):
            _check_attribute(node.attr)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                _check_module(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise InvalidProgram("relative imports are not allowed in a puzzle")
            _check_module(node.module or "")
            for alias in node.names:
                if alias.name in FORBIDDEN_ATTRIBUTES or alias.name.startswith("_"):
                    raise InvalidProgram(f"importing '{alias.name}' from '{node.module}' is not allowed")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _DUNDER_IN_STRING.search(node.value)
            if match:
                raise InvalidProgram(f"string literal mentions dunder name '{match.group()}'")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name.startswith("__"):
                raise InvalidProgram(f"defining '{node.name}' is not allowed (dunder names are off limits)")
        elif isinstance(node, ast.MatchClass):
            for attr in node.kwd_attrs:
                _check_attribute(attr)


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
    for argument, default in zip(arguments, defaults, strict=True):
        text = _segment(source, default)
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


def _is_single_argument_eval(node: ast.Call) -> bool:
    return (
        isinstance(node.func, ast.Name)
        and node.func.id == "eval"
        and len(node.args) == 1
        and not node.keywords
        and not isinstance(node.args[0], ast.Starred)
    )


def _check_name(node: ast.Name, allowed_eval: set[int]) -> None:
    if node.id in FORBIDDEN_NAMES and id(node) not in allowed_eval:
        hint = " (P3 allows only eval(x) in trusted puzzles)" if node.id == "eval" else ""
        raise InvalidProgram(f"use of '{node.id}' is not allowed in a puzzle{hint}")
    if node.id.startswith("__"):
        raise InvalidProgram(f"name '{node.id}' is not allowed (dunder names are off limits)")


def _check_attribute(attr: str) -> None:
    if attr.startswith("__"):
        raise InvalidProgram(f"attribute '.{attr}' is not allowed (dunder names are off limits)")
    if attr.startswith("_"):
        raise InvalidProgram(f"attribute '.{attr}' is not allowed (private attributes are off limits)")
    if attr in FORBIDDEN_ATTRIBUTES:
        raise InvalidProgram(f"attribute '.{attr}' is not allowed in a puzzle")


def _check_module(name: str) -> None:
    if name.split(".")[0] not in ALLOWED_IMPORTS:
        allowed = ", ".join(sorted(ALLOWED_IMPORTS))
        raise InvalidProgram(f"import of module '{name}' is not allowed (allowed: {allowed})")


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
# Cutting the completed function out of model output


def complete_function(prefix: str, completion: str) -> str:
    """``prefix + completion`` cut at the end of the first function; no validation.

    The prompt ended with ``prefix`` (e.g. ``"def f7("``) and the model continued with ``completion``.
    The function ends at the first line after the def line that starts a statement at the def line's
    indentation or less (lines inside an open bracket or string, comment lines and blank lines do not
    end it), or at a markdown fence; trailing blank and comment lines are dropped.
    """
    lines = _split_lines(prefix + completion)
    start = next((i for i, line in enumerate(lines) if _DEF_LINE.match(line)), 0)
    end = _block_end(lines, start)
    indent = _indent_width(lines[start]) if lines else 0
    kept = lines[:start] + _strip_trailing(lines[start:end], indent)
    return "\n".join(kept)


def _block_end(lines: list[str], start: int) -> int:
    """Index just past the block that begins with the def line ``lines[start]``."""
    if start >= len(lines):
        return len(lines)
    indent = _indent_width(lines[start])
    scanner = _LineScanner()
    scanner.feed(lines[start])
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if scanner.at_statement_start():
            stripped = line.strip()
            if stripped.startswith("```"):
                return index
            if stripped and not stripped.startswith("#") and _indent_width(line) <= indent:
                return index
        scanner.feed(line)
    return len(lines)


class _LineScanner:
    """Tracks brackets, strings and backslash continuations across lines, roughly as Python does."""

    def __init__(self) -> None:
        self.depth = 0
        self.quote: str | None = None
        self.continued = False

    def at_statement_start(self) -> bool:
        return self.depth == 0 and self.quote is None and not self.continued

    def feed(self, line: str) -> None:
        position, length = 0, len(line)
        self.continued = False
        string_continues = False
        while position < length:
            char = line[position]
            if self.quote is not None:
                if char == "\\":
                    string_continues = position == length - 1
                    position += 2  # skip the escaped character
                    continue
                if line.startswith(self.quote, position):
                    position += len(self.quote)
                    self.quote = None
                    continue
                position += 1
                continue
            if char == "#":
                break
            if char in "([{":
                self.depth += 1
            elif char in ")]}":
                self.depth = max(0, self.depth - 1)
            elif char in "'\"":
                self.quote = char * 3 if line.startswith(char * 3, position) else char
                position += len(self.quote)
                continue
            elif char == "\\" and position == length - 1:
                self.continued = True
            position += 1
        if self.quote is not None and len(self.quote) == 1 and not string_continues:
            self.quote = None  # an unterminated one-line string ends with its line


def _strip_trailing(lines: list[str], indent: int) -> list[str]:
    kept = list(lines)
    while kept and (
        not kept[-1].strip() or (kept[-1].strip().startswith("#") and _indent_width(kept[-1]) <= indent)
    ):
        kept.pop()
    return kept


# ---------------------------------------------------------------------------------------------------
# Small text helpers


def _split_lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _leading_whitespace(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _indent_width(line: str) -> int:
    return len(_leading_whitespace(line).expandtabs(8))


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
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def _function_text(source: str, span: tuple[int, int]) -> str:
    """Lines ``span`` (1-based, inclusive) of ``source`` without trailing blank lines."""
    return _strip_blank_edges("\n".join(source.split("\n")[span[0] - 1 : span[1]]))


def _segment(source: str, node: ast.AST) -> str:
    """Source text of ``node``; like ast.get_source_segment without re-splitting the source each call.

    ``source`` uses only "\n" line breaks (callers normalise it), so its lines are the parser's lines.
    """
    lines = source.split("\n")[node.lineno - 1 : node.end_lineno]  # type: ignore[attr-defined]
    start, end = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]  # UTF-8 byte offsets
    if len(lines) == 1:
        return lines[0].encode()[start:end].decode()
    first, last = lines[0].encode()[start:].decode(), lines[-1].encode()[:end].decode()
    return "\n".join([first, *lines[1:-1], last])


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
