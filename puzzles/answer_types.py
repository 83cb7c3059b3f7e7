"""P3 answer types: ``int``, ``float``, ``str``, ``bool`` and ``List[...]`` nested of them.

A type is spelled canonically as ``"int"``, ``"List[int]"``, ``"List[List[str]]"``; ``list[int]``
and ``typing.List[int]`` in source are accepted and mapped to that spelling.
"""

from __future__ import annotations

import ast

from puzzles.records import InvalidProgram
from puzzles.source import render_expression, shorten

ANSWER_BASE_TYPES = ("int", "float", "str", "bool")
MAX_TYPE_DEPTH = 10  # List[List[...]] nesting accepted; P3 goes to 3
MAX_TYPE_TEXT_CHARS = 1_000

_LIST_NAMES = ("List", "list")
_ALLOWED = "int, float, str, bool or List[...] of them"


def annotation_to_type(node: ast.expr) -> str:
    """Return the canonical spelling of an answer annotation, or raise InvalidProgram saying why not."""
    return _to_type(node, node, 0)


def canonical_type(text: str) -> str:
    """Canonical spelling of a type written as text, e.g. P3's ``ans_type`` field ``"list[int]"``."""
    if not isinstance(text, str):
        raise InvalidProgram(f"answer type must be text, got {type(text).__name__}")
    if len(text) > MAX_TYPE_TEXT_CHARS:
        raise InvalidProgram(f"answer type text is {len(text)} characters, limit {MAX_TYPE_TEXT_CHARS}")
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError, UnicodeError):
        raise InvalidProgram(f"answer type {shorten(text)!r} is not a type expression") from None
    return annotation_to_type(node)


def _to_type(node: ast.expr, whole: ast.expr, depth: int) -> str:
    if depth > MAX_TYPE_DEPTH:
        raise InvalidProgram(f"answer type nests lists more than {MAX_TYPE_DEPTH} deep")
    if isinstance(node, ast.Name) and node.id in ANSWER_BASE_TYPES:
        return node.id
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and depth == 0:
        return canonical_type(node.value)  # a quoted annotation: def f(x: "List[int]")
    if isinstance(node, ast.Subscript) and _is_list_name(node.value):
        element = node.slice
        if isinstance(element, ast.Tuple):
            raise InvalidProgram(f"answer type {render_expression(whole)} gives List more than one element type")
        return f"List[{_to_type(element, whole, depth + 1)}]"
    if _is_list_name(node):
        raise InvalidProgram(f"answer type {render_expression(whole)} needs an element type, e.g. List[int]")
    raise InvalidProgram(f"answer type {render_expression(whole)} is not a P3 answer type ({_ALLOWED})")


def _is_list_name(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in _LIST_NAMES
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "List"
        and isinstance(node.value, ast.Name)
        and node.value.id == "typing"
    )
