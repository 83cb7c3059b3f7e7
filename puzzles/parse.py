"""Parse untrusted text into P3 puzzles and solutions, and cut a completed function out of model output.

Every entry point turns any problem with its input into :class:`InvalidProgram` with a short one-line
reason; nothing else escapes. The source is parsed within bounds (``puzzles.source``), and puzzles,
model-written and untrusted, also keep to the hygiene allow-list (``puzzles.hygiene``).
"""

from __future__ import annotations

import ast

from puzzles.answer_types import annotation_to_type
from puzzles.hygiene import check_puzzle_hygiene, describe_statement, is_typing_import
from puzzles.records import InvalidProgram, Puzzle, Solution
from puzzles.source import (
    int_digit_allowance,
    parse_source,
    render_expression,
    shorten,
)
from puzzles.text import leading_whitespace as _leading_whitespace
from puzzles.text import split_lines as _split_lines

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
        raise InvalidProgram(f"return annotation must be bool, got {render_expression(function.returns)}")
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
                f"unexpected {describe_statement(statement)} at line {statement.lineno}; expected only one function"
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
                f"default of argument '{argument.arg}' is not a literal: {shorten(text)}"
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
                f"default of argument '{name}' is {shorten(text, 30)} but the puzzle has {shorten(puzzle_text, 30)}"
            )


def _eval_literal(text: str) -> object:
    try:
        with int_digit_allowance():
            return ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError):
        raise InvalidProgram(f"default {shorten(text)} is not a literal") from None


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
