"""Bounded parsing of untrusted source: every problem with the text (syntax errors, NUL bytes, lone
surrogates, huge or deeply nested programs, constants the compiler would fold into gigabytes) becomes
:class:`InvalidProgram` with a short one-line reason, and the work done is linear in the text's length:
MAX_SOURCE_CHARS, MAX_AST_NODES, MAX_ARGUMENTS, MAX_PATTERN_NODES and MAX_FOLDED_BYTES are checked before
anything is compiled."""

from __future__ import annotations

import ast
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from puzzles.records import InvalidProgram

MAX_SOURCE_CHARS = 200_000  # one puzzle or solution; P3's longest sat is about 14,000
MAX_INT_DIGITS = 50_000  # longest integer literal accepted; P3 has one of 8,844 digits (BoxVolume:1)

MAX_AST_NODES = 50_000  # syntax nodes in one source; P3's largest program has about 2,800
MAX_ARGUMENTS = 100  # arguments of one function or lambda; P3 has at most 7
MAX_PATTERN_NODES = 100  # sub-patterns of one match case: CPython compiles them in quadratic memory
# Bytes of constants the compiler may fold, all intermediates together: it keeps each one, so a chain
# 'a' * 4096 + 'a' * 4096 + ... of 900 terms (10 KB of source) needs 1.6 GB. P3's largest needs 5 KB.
MAX_FOLDED_BYTES = 16 * 1024 * 1024


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
        reason = f"syntax error at line {error.lineno}: {one_line(message)}"
    except UnicodeError:
        reason = f"{what} is not valid Unicode text (it contains lone surrogates)"
    except (RecursionError, MemoryError):
        reason = f"{what} is nested too deeply to parse"
    except ValueError as error:
        reason = f"{what} cannot be parsed: {one_line(str(error))}"
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


def parses(text: str, parse: Callable[[str], object] = parse_source) -> bool:
    """Whether ``parse`` (``parse_source`` by default; ``puzzles.parse.parse_puzzle`` for the P3 rules
    too) accepts ``text`` without an ``InvalidProgram``."""
    try:
        parse(text)
    except InvalidProgram:
        return False
    return True


# ---------------------------------------------------------------------------------------------------
# Bounded printing


def render_expression(node: ast.expr) -> str:
    try:
        with int_digit_allowance():
            return shorten(ast.unparse(node))
    except (RecursionError, ValueError, MemoryError):
        return "<unprintable>"


def one_line(text: str) -> str:
    return shorten(" ".join(text.split()), 100)


def shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
