"""Seed variants: a puzzle whose parameters' literal constants are perturbed.

A P3 puzzle keeps its instance's data in ``f``'s default arguments (``def f(s: str, target='rlobvqg')``),
and the instances of one family differ only there. Perturbing those literals makes new instances of a
seed's family without any generator of that family: the model still has to solve them and the sandbox
to verify the solutions, so a variant that has no solution (a target now out of reach) costs attempts,
never a wrong pair. The body is left alone: its constants are the family's rules, not the instance's.
"""

from __future__ import annotations

import ast
import copy
import random
import string

# A literal is perturbed with this probability (and at least one always is).
PERTURB_RATE = 0.5
# A list or tuple of at least this many elements may also lose or gain one.
RESIZABLE_LENGTH = 3


def literal_variant(source: str, rng: random.Random) -> str | None:
    """``source`` (a puzzle: one function) with some literals of its default arguments perturbed.

    None when it has no default argument holding a number or a string, or when it does not parse.
    Deterministic given ``rng``; the result may equal ``source``'s instance only by chance (the
    caller's duplicate check catches that).
    """
    try:  # a seed passed the bounded parser already; its huge ints stay refused here, as unparse would
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not tree.body or not isinstance(tree.body[0], ast.FunctionDef):
        return None
    arguments = tree.body[0].args
    defaults = [d for d in (*arguments.defaults, *arguments.kw_defaults) if d is not None]
    literals = [node for d in defaults for node in ast.walk(d) if _perturbable(node)]
    if not literals:
        return None
    chosen = [node for node in literals if rng.random() < PERTURB_RATE] or [rng.choice(literals)]
    for node in chosen:
        node.value = _perturbed(node.value, rng)
    for node in (n for d in defaults for n in ast.walk(d)):
        if isinstance(node, ast.List | ast.Tuple) and len(node.elts) >= RESIZABLE_LENGTH and rng.random() < 0.25:
            _resize(node, rng)
    return ast.unparse(tree) + "\n"


def _perturbable(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float, str)


def _perturbed(value: int | float | str, rng: random.Random) -> int | float | str:
    if isinstance(value, str):
        return _perturbed_string(value, rng)
    if isinstance(value, float):
        return round(value * rng.uniform(0.5, 1.5), 6)
    if abs(value) < 10:
        changed = value + rng.choice((-2, -1, 1, 2))
    else:
        changed = value + rng.choice((-1, 1)) * rng.randint(1, abs(value) // 2)
    return max(changed, 0) if value >= 0 else changed  # a count or a size stays non-negative


def _perturbed_string(value: str, rng: random.Random) -> str:
    alphabet = _alphabet(value)
    for _ in range(4):  # an edit may give the string back (a letter replaced by itself)
        changed = _edited(value, alphabet, rng)
        if changed != value:
            break
    return changed


def _edited(value: str, alphabet: str, rng: random.Random) -> str:
    chars = list(value)
    for _ in range(max(1, len(chars) // 4)):
        edit = rng.random() if chars else 0.0
        if edit < 0.2:  # insert (always, into an empty string)
            chars.insert(rng.randint(0, len(chars)), rng.choice(alphabet))
        elif edit < 0.3 and len(chars) > 1:  # delete
            del chars[rng.randrange(len(chars))]
        else:  # replace
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
    return "".join(chars)


def _alphabet(value: str) -> str:
    """The characters a perturbed ``value`` draws from: its own kind of characters."""
    for kind in (string.ascii_lowercase, string.ascii_uppercase, string.digits, string.ascii_letters):
        if value and all(c in kind for c in value):
            return kind
    distinct = "".join(sorted(set(value)))
    return distinct if len(distinct) > 1 else string.ascii_lowercase


def _resize(node: ast.List | ast.Tuple, rng: random.Random) -> None:
    """Drop one element, or repeat one (perturbed when it is a literal)."""
    if rng.random() < 0.5:
        del node.elts[rng.randrange(len(node.elts))]
        return
    repeated = copy.deepcopy(rng.choice(node.elts))
    for inner in ast.walk(repeated):
        if _perturbable(inner):
            inner.value = _perturbed(inner.value, rng)
    node.elts.insert(rng.randint(0, len(node.elts)), repeated)
