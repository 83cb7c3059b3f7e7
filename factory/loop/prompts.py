"""Few-shot prompts in the P3 recipe (Haluptzok et al. 2023) and the matching fine-tuning texts.

A propose prompt lists ``k`` random puzzles renamed ``f1..fk`` and ends with ``def f{k+1}(``; the
model continues it with a new puzzle. A solve prompt lists ``k`` random (puzzle, solution) pairs as

    def f1(...): ...

    def g1(...): ...

    assert f1(g1())

then the target puzzle renamed ``f{k+1}`` and ends with ``def g{k+1}(``. A training example is one such
block after the prelude, so fine-tuning teaches exactly the shape the solve prompt asks for.

Everything here is a pure function of its arguments; randomness comes only from the ``random.Random``
passed in, so a prompt is reproduced from its seed. Sources are rewritten with ``ast.unparse``:
comments are dropped, docstrings and code are kept.
"""

from __future__ import annotations

import ast
import keyword
import random
from collections.abc import Callable, Sequence

PRELUDE = "from typing import List\n\n"

# Each starts a line at column 0, so each ends the function being completed. Backends that can only
# match strings (vLLM, HTTP APIs) use these; backends that can run code use ``is_function_complete``,
# which also knows about brackets and string literals.
STOP_SEQUENCES: tuple[str, ...] = (
    "\ndef ",
    "\nasync def ",
    "\nclass ",
    "\nassert",
    "\nif __name__",
    "\nprint(",
    "\n#",
    "\n@",
    "\nimport ",
    "\nfrom ",
)

_FUNCTION_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


# ---------------------------------------------------------------------------------------------------
# renaming


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
    defs = [node for node in tree.body if isinstance(node, _FUNCTION_DEFS)]
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
        if new_name in _identifiers(tree):
            raise ValueError(
                f"cannot rename {old} to {new_name}: the source already uses the name {new_name}"
            )
        _Renamer(old, new_name).visit(tree)
    return ast.unparse(tree)


def _identifiers(tree: ast.AST) -> set[str]:
    """Every unqualified name bound or used anywhere in ``tree``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (*_FUNCTION_DEFS, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
    return names


class _Renamer(ast.NodeTransformer):
    def __init__(self, old: str, new: str) -> None:
        self.old = old
        self.new = new

    def _swap(self, name: str) -> str:
        return self.new if name == self.old else name

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self._swap(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._swap(node.arg)
        return self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = self._swap(node.name)
        return self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        node.name = self._swap(node.name)
        return self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.name = self._swap(node.name)
        return self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> ast.AST:
        node.names = [self._swap(name) for name in node.names]
        return node

    def visit_Nonlocal(self, node: ast.Nonlocal) -> ast.AST:
        node.names = [self._swap(name) for name in node.names]
        return node


def _identity(source: str) -> str | None:
    """A name- and formatting-independent key for a single-function source; None if it has none."""
    try:
        return rename_function(source, "__p3_function__")
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------------
# prompts


def _pick(total: int, k: int, rng: random.Random, render: Callable[[int, int], str | None]) -> list[str]:
    """Draw example indices at random without replacement until ``k`` of them render.

    ``render(index, position)`` returns the example's text for 1-based ``position`` in the prompt,
    or None to skip it (does not parse, duplicate, is the target). Deterministic given ``rng``.
    """
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    blocks: list[str] = []
    tried: set[int] = set()
    while len(blocks) < k and len(tried) < total:
        index = rng.randrange(total)
        if index in tried:
            continue
        tried.add(index)
        block = render(index, len(blocks) + 1)
        if block is not None:
            blocks.append(block)
    return blocks


def propose_prompt(examples: Sequence[str], rng: random.Random, k: int) -> tuple[str, str]:
    """A prompt of ``k`` random puzzles renamed ``f1..fk`` ending in ``def f{k+1}(``.

    Fewer examples are used when fewer exist (or fewer parse; duplicates count once). Returns
    ``(prompt, prefix)``; the prompt ends with the prefix, which the model's completion continues.
    """
    seen: set[str] = set()

    def render(index: int, position: int) -> str | None:
        identity = _identity(examples[index])
        if identity is None or identity in seen:
            return None
        try:
            block = rename_function(examples[index], f"f{position}")
        except ValueError:
            return None
        seen.add(identity)
        return block + "\n\n"

    blocks = _pick(len(examples), k, rng, render)
    prefix = f"def f{len(blocks) + 1}("
    return PRELUDE + "".join(blocks) + prefix, prefix


def _extra_arguments(puzzle_source: str) -> ast.arguments:
    """The puzzle's arguments after the answer, with their defaults and without annotations."""
    function = next(n for n in ast.parse(puzzle_source).body if isinstance(n, _FUNCTION_DEFS))
    extra = [ast.arg(arg=a.arg) for a in function.args.args[1:]]
    defaults = function.args.defaults[len(function.args.defaults) - len(extra) :] if extra else []
    return ast.arguments(posonlyargs=[], args=extra, kwonlyargs=[], kw_defaults=[], defaults=defaults)


def solution_signature(puzzle_source: str, name: str) -> str:
    """``def name(a=..., b=...):``: the only signature a solution of this puzzle can have (P3 rules)."""
    stub = ast.FunctionDef(name=name, args=_extra_arguments(puzzle_source), body=[ast.Pass()], decorator_list=[])
    return ast.unparse(ast.fix_missing_locations(ast.Module(body=[stub], type_ignores=[]))).splitlines()[0]


def with_puzzle_signature(puzzle_source: str, solution_source: str, name: str) -> str:
    """The solution renamed to ``name`` with exactly the puzzle's extra arguments as its signature, so
    that training text and prompts always show the signature a solve prompt ends with."""
    renamed = ast.parse(rename_function(solution_source, name))
    function = next(n for n in renamed.body if isinstance(n, _FUNCTION_DEFS))
    function.args = _extra_arguments(puzzle_source)
    return ast.unparse(renamed)


def _solve_block(position: int, puzzle_source: str, solution_source: str) -> str:
    f = rename_function(puzzle_source, f"f{position}")
    g = with_puzzle_signature(puzzle_source, solution_source, f"g{position}")
    return f"{f}\n\n{g}\n\nassert f{position}(g{position}())\n"


def solve_prompt(
    examples: Sequence[tuple[str, str]], puzzle_source: str, rng: random.Random, k: int
) -> tuple[str, str]:
    """A prompt of ``k`` random solved examples, then the target puzzle, ending in the solution's whole
    signature ``def g{k+1}(a=..., b=...):`` (determined by the puzzle), so the model writes the body.

    Examples whose puzzle is the target (same code up to names and formatting) are never used.
    Raises ``ValueError`` when the target itself cannot be renamed. Returns ``(prompt, prefix)``.
    """
    target_identity = _identity(puzzle_source)
    if target_identity is None:
        rename_function(puzzle_source, "f")  # raises the ValueError that says what is wrong
    seen: set[str] = {target_identity} if target_identity else set()

    def render(index: int, position: int) -> str | None:
        f, g = examples[index]
        identity = _identity(f)
        if identity is None or identity in seen:
            return None
        try:
            block = _solve_block(position, f, g)
        except ValueError:
            return None
        seen.add(identity)
        return block + "\n"

    blocks = _pick(len(examples), k, rng, render)
    n = len(blocks) + 1
    target = rename_function(puzzle_source, f"f{n}")
    prefix = solution_signature(puzzle_source, f"g{n}")
    return PRELUDE + "".join(blocks) + target + "\n\n" + prefix, prefix


def training_example(puzzle_source: str, solution_source: str) -> str:
    """The fine-tuning text for one verified pair: the prelude, then f1, g1 and ``assert f1(g1())``."""
    return PRELUDE + _solve_block(1, puzzle_source, solution_source)


def puzzle_listing(sources: Sequence[str]) -> str:
    """The prelude, then the puzzles renamed ``f1..fn`` in order: the text that teaches proposing."""
    blocks = [rename_function(source, f"f{i}") for i, source in enumerate(sources, start=1)]
    return PRELUDE + "\n\n".join(blocks) + "\n"


# ---------------------------------------------------------------------------------------------------
# completions


def _function_end(text: str) -> int | None:
    """Offset of the first non-blank line at column 0 after the first logical line of ``text``.

    ``text`` is a function being written, from its ``def`` line (or from anywhere inside that line,
    such as just after the prompt's prefix). Brackets, string literals, comments and backslash
    continuations are followed, so a column-0 line inside a call or a triple-quoted string does not
    count. None while the function may still go on.
    """
    depth = 0
    i = 0
    n = len(text)
    line_start = False
    while i < n:
        ch = text[i]
        if line_start:
            line_start = False
            if ch not in " \t\r\n\f\v":
                return i
        if ch == "#":
            end = text.find("\n", i)
            if end < 0:
                return None
            i = end
            continue
        if ch in "\"'":
            triple = text.startswith(ch * 3, i)
            i = _string_end(text, i + (3 if triple else 1), ch, triple)
            if i < 0:
                return None
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)  # text may start just after the prefix's "("
        elif ch == "\\" and text.startswith("\n", i + 1):
            i += 2
            continue
        elif ch == "\n" and depth == 0:
            line_start = True
        i += 1
    return None


def _string_end(text: str, i: int, quote: str, triple: bool) -> int:
    """Offset just past the string literal whose body starts at ``i``; -1 if it is not closed yet."""
    n = len(text)
    closing = quote * 3 if triple else quote
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if text.startswith(closing, i):
            return i + len(closing)
        if ch == "\n" and not triple:
            return i  # an unterminated one-line string ends at the line's end (a syntax error anyway)
        i += 1
    return -1


def is_function_complete(text: str) -> bool:
    """True once a non-indented, non-blank line follows the function's first line.

    For stopping criteria: give it the prefix plus the completion so far (the completion alone also
    works). The text from that line on is not part of the function; ``function_text`` cuts it off.
    """
    return _function_end(text) is not None


def function_text(text: str) -> str:
    """``text`` up to the first non-indented line after the function's first line, one newline at the end."""
    end = _function_end(text)
    body = text if end is None else text[:end]
    return body.rstrip() + "\n"


class ExampleIndex:
    """Few-shot (f, g) examples ranked by similarity to the puzzle being solved.

    A solve prompt whose examples are the nearest puzzles (token 5-gram Jaccard, as for
    near-duplicates) shows a small model the kind of solution the puzzle needs; random examples,
    the paper's recipe, are ``k`` draws from the same list.
    """

    def __init__(self, pairs: Sequence[tuple[str, str]]):
        from puzzles.canonical import near_duplicate_tokens
        from puzzles.records import InvalidProgram

        self.pairs = list(pairs)
        self.tokens: list[frozenset[str]] = []
        for f, _ in self.pairs:
            try:
                self.tokens.append(near_duplicate_tokens(f))
            except InvalidProgram:
                self.tokens.append(frozenset())

    def nearest(self, puzzle_source: str, k: int) -> list[tuple[str, str]]:
        from puzzles.canonical import near_duplicate_tokens, similarity
        from puzzles.records import InvalidProgram

        try:
            target = near_duplicate_tokens(puzzle_source)
        except InvalidProgram:
            return self.pairs[:k]
        ranked = sorted(range(len(self.pairs)), key=lambda i: -similarity(target, self.tokens[i]))
        return [self.pairs[i] for i in ranked[: k + 1]]  # one spare: solve_prompt skips the target itself
