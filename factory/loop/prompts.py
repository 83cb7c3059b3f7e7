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
import functools
import random
import re
from collections.abc import Callable, Sequence

from puzzles.canonical import near_duplicate_tokens
from puzzles.rename import FUNCTION_DEFS, identifiers, rename_function
from puzzles.similarity import ShingleIndex

PRELUDE = "from typing import List\n\n"

# Each starts a line at column 0, so each ends the function being completed: the backends stop on
# them, then ``puzzles.completion.complete_function`` cuts the completion where the function really ends
# (it also knows about brackets and string literals).
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


# ---------------------------------------------------------------------------------------------------
# prompts


# A round's prompts show the same examples over and over: each is parsed and renamed once per process.
RENDERED_EXAMPLES = 8192


@functools.lru_cache(maxsize=RENDERED_EXAMPLES)
def _identity(source: str) -> str | None:
    """A name- and formatting-independent key for a single-function source; None if it has none."""
    try:
        return rename_function(source, "__p3_function__")
    except ValueError:
        return None


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
    function = next(n for n in ast.parse(puzzle_source).body if isinstance(n, FUNCTION_DEFS))
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
    function = next(n for n in renamed.body if isinstance(n, FUNCTION_DEFS))
    function.args = _extra_arguments(puzzle_source)
    return ast.unparse(renamed)


# The names prompts and training texts give their functions: f1, g1, f2, g2, ...
PROMPT_NAME = re.compile(r"[fg][0-9]+")


def fits_every_position(solution_source: str) -> bool:
    """Whether a solution can be written at any position of a prompt or a training text (renamed
    g1, g2, ...): it is one top-level function that uses no other name of that scheme, which
    ``rename_function`` would refuse to capture (an unverified attempt that called a g1 of its own
    stopped an experiment's training; a verified one can define a nested g1 too)."""
    try:
        tree = ast.parse(solution_source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    defs = [n for n in tree.body if isinstance(n, FUNCTION_DEFS)]
    if len(defs) != 1:
        return False
    return not any(PROMPT_NAME.fullmatch(name) for name in identifiers(tree) - {defs[0].name})


@functools.lru_cache(maxsize=RENDERED_EXAMPLES)
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
# few-shot examples


EXAMPLE_CANDIDATES = 1000  # distinct puzzles scored per query at most: a few ms on one core


class ExampleIndex:
    """Few-shot (f, g) examples ranked by similarity to the puzzle being solved.

    A solve prompt whose examples are the nearest puzzles (token 5-gram Jaccard, as for
    near-duplicates) shows a small model the kind of solution the puzzle needs; random examples,
    the paper's recipe, are ``k`` draws from the same list. ``nearest`` looks only at pairs that share
    the puzzle's rarer shingles (``ShingleIndex.nearest``) and scores at most ``EXAMPLE_CANDIDATES``
    distinct puzzles, so a solve batch's prompts cost O(batch), not O(training pairs). The answer is
    the exact nearest whenever ``k + 1`` pairs are close; for a puzzle that nothing comes near it is
    the nearest of the pairs sharing its rarest shingles.
    """

    def __init__(self, pairs: Sequence[tuple[str, str]]):
        self.pairs = list(pairs)
        self.index = ShingleIndex.of_sources(f for f, _ in self.pairs)

    def nearest(self, puzzle_source: str, k: int) -> list[tuple[str, str]]:
        """The ``k + 1`` nearest pairs, nearest first: one spare, as solve_prompt skips the target itself."""
        tokens = near_duplicate_tokens(puzzle_source)
        return [self.pairs[i] for i in self.index.nearest(tokens, k + 1, max_scored=EXAMPLE_CANDIDATES)]


def round_solve_prompt(
    examples: ExampleIndex, puzzle_source: str, puzzle_hash: str, run_seed: int, round: int, k: int
) -> tuple[str, str]:
    """The solve prompt of a puzzle in ``round`` and its prefix (``examples``: the pairs stored up to
    the round before), the same whenever it is built."""
    rng = random.Random(f"{run_seed}:{round}:solve:{puzzle_hash}")
    return solve_prompt(examples.nearest(puzzle_source, k), puzzle_source, rng, k)
