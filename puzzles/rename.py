"""Renaming a function in Python source: the one renamer behind prompts, canonical forms and solution hashes.

:func:`rename_identifier` is the only code that rewrites a name in a syntax tree. Its callers choose
where it applies: :func:`rename_function` (prompts: ``f1..fk``) renames across the whole module and
refuses a rename that would capture another name; ``puzzles.canonical`` renames inside the function
unless the function binds its own name; ``factory.store.records.solution_hash`` renames names and
function names across the module. Stored hashes depend on the last two: their rules must not change.
"""

from __future__ import annotations

import ast
import keyword

FUNCTION_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


def rename_identifier(root: ast.AST, old: str, new: str, *, names_and_functions_only: bool = False) -> None:
    """Rename the identifier ``old`` to ``new`` in place everywhere under ``root`` (``root`` included).

    Renamed: names (``ast.Name``, any context) and names of function definitions; unless
    ``names_and_functions_only``, also argument names, class names and ``global``/``nonlocal``
    declarations. Never attributes, keyword-argument names, imports or except/match captures. There is
    no scope analysis: the caller decides where the rename is safe (see :func:`bound_names`).
    """
    for node in ast.walk(root):
        if isinstance(node, ast.Name):
            if node.id == old:
                node.id = new
        elif isinstance(node, FUNCTION_DEFS):
            if node.name == old:
                node.name = new
        elif names_and_functions_only:
            continue
        elif isinstance(node, ast.arg):
            if node.arg == old:
                node.arg = new
        elif isinstance(node, ast.ClassDef):
            if node.name == old:
                node.name = new
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            node.names = [new if name == old else name for name in node.names]


def bound_names(root: ast.AST) -> set[str]:
    """Names bound under ``root``: arguments, assignment targets, functions and classes defined below it
    (not ``root`` itself), imports, except and match captures."""
    bound: set[str] = set()
    for node in ast.walk(root):
        if isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, (*FUNCTION_DEFS, ast.ClassDef)) and node is not root:
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
    return bound


def identifiers(tree: ast.Module) -> set[str]:
    """Every unqualified name bound, used or declared ``global``/``nonlocal`` anywhere in ``tree``."""
    names = bound_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
    return names


def rename_function(source: str, new_name: str, old_name: str | None = None) -> str:
    """Rename a top-level function and every reference to it; return the unparsed source.

    ``old_name`` picks the function when the source defines several; without it the source must
    define exactly one top-level function. The rename is a plain alpha-rename of the identifier
    across the module (uses, recursive calls, ``global`` statements), never of attributes or
    keyword-argument names. Raises ``ValueError`` when the source does not parse, the function is
    not found, or ``new_name`` is already used in the source (renaming would capture it).
    """
    if not new_name.isidentifier() or keyword.iskeyword(new_name):
        raise ValueError(f"cannot rename to {new_name!r}: not a Python identifier")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"cannot rename: the source does not parse ({exc.msg}, line {exc.lineno})") from exc
    defs = [node for node in tree.body if isinstance(node, FUNCTION_DEFS)]
    if old_name is None:
        if len(defs) != 1:
            names = ", ".join(node.name for node in defs) or "none"
            raise ValueError(
                f"cannot rename: expected exactly one top-level function, found {len(defs)} ({names}); "
                "pass old_name to choose one"
            )
        old = defs[0].name
    else:
        if not any(node.name == old_name for node in defs):
            raise ValueError(f"cannot rename: no top-level function named {old_name!r}")
        old = old_name
    if old != new_name:
        if new_name in identifiers(tree):
            raise ValueError(
                f"cannot rename {old} to {new_name}: the source already uses the name {new_name}"
            )
        rename_identifier(tree, old, new_name)
    return ast.unparse(tree)
