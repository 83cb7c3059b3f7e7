"""Puzzle hygiene: the allow-list a model-written puzzle keeps to (:func:`check_puzzle_hygiene`).

A filter against puzzles that reach outside their sandbox on purpose, not the security boundary: the
sandbox is. Solutions get no hygiene check.
"""

from __future__ import annotations

import ast
import builtins
import re
import string

from puzzles.records import InvalidProgram
from puzzles.source import render_expression

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
        where = f"'case {render_expression(node.cls)}(...)' at line {line}: it reads attributes named at run time"
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


def describe_statement(statement: ast.stmt) -> str:
    if isinstance(statement, ast.ClassDef):
        return f"class '{statement.name}'"
    if isinstance(statement, ast.Import):
        return f"import of '{statement.names[0].name}'"
    if isinstance(statement, ast.ImportFrom):
        return f"import from '{statement.module}'"
    if isinstance(statement, ast.Expr):
        return "expression statement"
    return f"{type(statement).__name__} statement"
