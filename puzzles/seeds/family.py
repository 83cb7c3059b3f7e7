"""The seed family record and the substitution of instance values into its template sources."""

from __future__ import annotations

import ast
import random
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """A family of seed puzzles: one template ``f``/``g`` pair and the instances that fill it.

    ``f`` and ``g`` are source text of ``def f(answer: T, a=..., b=...) -> bool`` and
    ``def g(a=..., b=...)``; the defaults in the templates are placeholders (``...``). Each instance
    maps every extra argument name to a literal value (int, float, str, bool or nested lists of them)
    that replaces the placeholder. A ``held_out`` family is used for evaluation only.
    """

    name: str
    f: str
    g: str
    instances: Instances
    held_out: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "f", textwrap.dedent(self.f).strip() + "\n")
        object.__setattr__(self, "g", textwrap.dedent(self.g).strip() + "\n")


class Instances(tuple):
    """A family's fixed instances (a tuple of value dicts) and the draw that made them, so that more
    instances can be drawn later (``more``) without changing the fixed ones."""

    seed: int
    make: Callable[[random.Random], dict[str, object]]

    def more(self, count: int) -> tuple[dict[str, object], ...]:
        """Up to ``count`` further distinct instances: the same draw, continued past the fixed ones
        (fewer when the family has few distinct instances)."""
        return _draw(self.seed, self.make, len(self) + count, exact=False)[len(self) :]


def make_instances(seed: int, make: Callable[[random.Random], dict[str, object]], count: int = 8) -> Instances:
    """``count`` distinct instances drawn by ``make`` from ``random.Random(seed)``, in draw order."""
    instances = Instances(_draw(seed, make, count))
    instances.seed, instances.make = seed, make
    return instances


def _draw(
    seed: int, make: Callable[[random.Random], dict[str, object]], count: int, exact: bool = True
) -> tuple[dict[str, object], ...]:
    rng = random.Random(seed)
    instances: list[dict[str, object]] = []
    seen: set[str] = set()
    for _ in range(50 * count):
        if len(instances) == count:
            break
        instance = make(rng)
        fingerprint = repr(sorted(instance.items()))
        if fingerprint not in seen:
            seen.add(fingerprint)
            instances.append(instance)
    if exact and len(instances) != count:
        raise ValueError(f"seed {seed}: could only draw {len(instances)} distinct instances of {count}")
    return tuple(instances)


def template_function(source: str, name: str = "g") -> Callable[..., object]:
    """``def name`` of a family's template source as a function, to be called with every templated
    argument given: an instance generator can then run the family's own solution rather than a copy."""
    namespace: dict[str, object] = {}
    exec(compile(textwrap.dedent(source), f"<template {name}>", "exec"), namespace)
    return namespace[name]


def find_function(source: str, name: str) -> ast.FunctionDef:
    """The top-level ``def name`` in ``source``; ValueError when there is none."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise ValueError(f"no top-level function {name!r} in source")


def fill_defaults(
    source: str, name: str, values: Mapping[str, object]
) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Replace the default of every defaulted argument of ``def name`` by ``repr`` of its value.

    The rest of the text (body, docstring, comments) is kept byte for byte. Returns the new source and
    the ``(argument, literal)`` pairs in argument order. ValueError when the defaulted arguments and
    the keys of ``values`` differ, or a value has no literal ``repr``.
    """
    func = find_function(source, name)
    positional = func.args.posonlyargs + func.args.args
    pairs = list(
        zip(positional[len(positional) - len(func.args.defaults) :], func.args.defaults, strict=True)
    )
    pairs += [
        (arg, d) for arg, d in zip(func.args.kwonlyargs, func.args.kw_defaults, strict=True) if d is not None
    ]
    names = [arg.arg for arg, _ in pairs]
    if sorted(names) != sorted(values):
        raise ValueError(f"{name}: defaulted arguments {names} but instance values for {sorted(values)}")

    data = source.encode()
    line_starts = [0]
    for line in data.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    edits = []
    literals = []
    for arg, default in pairs:
        literal = repr(values[arg.arg])
        if ast.literal_eval(literal) != values[arg.arg]:
            raise ValueError(f"{name}: value of {arg.arg!r} has no literal repr")
        literals.append((arg.arg, literal))
        start = line_starts[default.lineno - 1] + default.col_offset
        end = line_starts[default.end_lineno - 1] + default.end_col_offset
        edits.append((start, end, literal.encode()))
    for start, end, text in sorted(edits, reverse=True):
        data = data[:start] + text + data[end:]
    return data.decode(), tuple(literals)
