"""Canonical form and hash of a program, and token-shingle similarity for near-duplicate detection.

Two sources have the same canonical form when they differ only in comments, formatting, docstrings and
the name of their top-level function. Near-duplicates (renamed variables, changed constants) are found
with :func:`similarity` over :func:`near_duplicate_tokens`.
"""

from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import io
import keyword
import textwrap
import tokenize
from dataclasses import dataclass

from puzzles.hygiene import ALLOWED_IMPORTS, is_typing_import
from puzzles.records import InvalidProgram
from puzzles.rename import FUNCTION_DEFS, bound_names, rename_identifier
from puzzles.source import MAX_SOURCE_CHARS, int_digit_allowance, parse_source

CANONICAL_NAME = "f"
SHINGLE_SIZE = 5

# Jaccard similarity of token 5-grams at or above which two programs count as near-duplicates.
# Measured on P3's sat functions (Python 3.11): 98% of pairs of instances of one problem (they differ
# only in constants) score >= 0.8 (lowest 0.61, median 1.0); of 78,606 pairs of different problems only
# 8 score >= 0.8, and those are near-copies (Easy63/Harder63, MinConsecutiveSum/MaxConsecutiveSum).
# Decontamination should reject a candidate that scores this much against any evaluation puzzle.
NEAR_DUPLICATE_THRESHOLD = 0.8

# Identifiers that keep their spelling in the token stream; all others become v0, v1, ... in order of
# first appearance. Attribute names (after a ".") are kept as well.
KEPT_NAMES = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | ALLOWED_IMPORTS | {
    "List", "Dict", "Set", "Tuple", "Optional",
}  # fmt: skip

_SKIPPED_TOKENS = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
    tokenize.TYPE_COMMENT,
}


def canonical_source(source: str) -> str:
    """AST-normalised source: docstrings dropped, typing imports dropped, the function renamed to ``f``.

    When the source holds exactly one top-level function, it is renamed to ``f`` together with the
    recursive references to it (unless the function binds its own name locally). Raises InvalidProgram
    when the source does not parse or is too deeply nested to print.
    """
    tree = parse_source(textwrap.dedent(source) if isinstance(source, str) else source)
    tree.body = [statement for statement in tree.body if not is_typing_import(statement)]
    _drop_docstrings(tree)
    functions = [s for s in tree.body if isinstance(s, FUNCTION_DEFS)]
    if len(functions) == 1:
        function = functions[0]
        if function.name in bound_names(function):
            function.name = CANONICAL_NAME  # it shadows its own name: the inner uses are not the function
        else:
            rename_identifier(function, function.name, CANONICAL_NAME, names_and_functions_only=True)
    try:
        with int_digit_allowance():
            return ast.unparse(tree)
    except (RecursionError, MemoryError, ValueError):
        raise InvalidProgram("source is nested too deeply to print its canonical form") from None


def canonical_hash(source: str) -> str:
    """SHA-256 hex digest of :func:`canonical_source`."""
    return _digest(canonical_source(source))


def _digest(canonical: str) -> str:
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class CanonicalForm:
    """A puzzle's canonical source, computed once, and what is derived from it: the hash (exact
    duplicates) and the token shingles (near-duplicates), as ``canonical_hash`` and
    ``near_duplicate_tokens`` give them."""

    source: str

    @functools.cached_property
    def hash(self) -> str:
        return _digest(self.source)

    @functools.cached_property
    def tokens(self) -> frozenset[str]:
        return _shingles(self.source)


def canonical_form(source: str) -> CanonicalForm:
    """The canonical form of ``source`` (one parse). Raises InvalidProgram like ``canonical_source``."""
    return CanonicalForm(canonical_source(source))


def near_duplicate_tokens(source: str) -> frozenset[str]:
    """Token 5-grams of ``source`` with identifiers renamed to placeholders and literals folded.

    Comments, docstrings and formatting are ignored (the canonical form is tokenised when the source
    parses; otherwise the raw text, as far as it tokenises). Never raises on bad input.
    """
    if not isinstance(source, str):
        return frozenset()
    try:
        text = canonical_source(source)
    except InvalidProgram:
        text = source[:MAX_SOURCE_CHARS]
    return _shingles(text)


def _shingles(text: str) -> frozenset[str]:
    tokens = _normalised_tokens(text)
    if not tokens:
        return frozenset()
    if len(tokens) < SHINGLE_SIZE:
        return frozenset({" ".join(tokens)})
    return frozenset(" ".join(tokens[i : i + SHINGLE_SIZE]) for i in range(len(tokens) - SHINGLE_SIZE + 1))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity |a & b| / |a | b| of two shingle sets; 0.0 when both are empty."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def _normalised_tokens(text: str) -> list[str]:
    tokens: list[str] = []
    placeholders: dict[str, str] = {}
    previous = ""
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type in _SKIPPED_TOKENS:
                continue
            if token.type == tokenize.NAME:
                if previous == "." or token.string in KEPT_NAMES:
                    value = token.string
                else:
                    value = placeholders.setdefault(token.string, f"v{len(placeholders)}")
            elif token.type == tokenize.STRING or tokenize.tok_name[token.type].startswith("FSTRING"):
                value = "STR"
            elif token.type == tokenize.NUMBER:
                value = "NUM"
            elif token.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
                value = tokenize.tok_name[token.type]
            else:
                value = token.string
            if (
                value == "NUM"
                and tokens
                and tokens[-1] in ("-", "+")
                and _is_unary(tokens[-2] if len(tokens) > 1 else None)
            ):
                tokens.pop()  # -5 and 5 fold alike
            if value == "STR" and tokens and tokens[-1] == "STR":
                continue  # adjacent literals ("a" "b") and f-string pieces fold into one
            tokens.append(value)
            previous = token.string
    except (tokenize.TokenError, SyntaxError, RecursionError, MemoryError, ValueError):
        pass  # keep what tokenised before the error
    return tokens


def _is_unary(last: str | None) -> bool:
    """True when a sign that follows the token ``last`` is unary (nothing it could subtract from)."""
    if last is None:
        return True
    if last in ("NUM", "STR", ")", "]", "}"):
        return False
    return not (last.isidentifier() and not keyword.iskeyword(last))


def _drop_docstrings(tree: ast.Module) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        body = node.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or ([] if isinstance(node, ast.Module) else [ast.Pass()])
