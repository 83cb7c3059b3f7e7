"""Seed families a person solves at a glance: one-line conditions on an int, a float, a string or a list.

They teach a small model to read the condition rather than recall a family: each family's solution
is one expression of its arguments, and the held-out ones are cousins of training ones (the same
operation on another type, or the inverse operation), so solving them takes reading the puzzle.
Instances never let a filter probe (0, 1, "a", [], ...) pass.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from puzzles.filters import BASE_PROBES
from puzzles.seeds.family import Family, make_instances

TOPIC = "glance"

INSTANCES = 6  # per family: short puzzles, so fewer fixed instances (the corpus draws more)
_PROBE_INTS = set(BASE_PROBES["int"])
_PROBE_STRS = set(BASE_PROBES["str"])
_PROBE_FLOATS = BASE_PROBES["float"]
Values = dict[str, object]


def _int(rng: random.Random, low: int, high: int) -> int:
    while True:
        x = rng.randint(low, high)
        if x not in _PROBE_INTS:
            return x


def _word(rng: random.Random, shortest: int = 3, longest: int = 8) -> str:
    while True:
        w = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(shortest, longest)))
        if w not in _PROBE_STRS:
            return w


def _ints(rng: random.Random, count: int, low: int = -99, high: int = 99) -> list[int]:
    return [_int(rng, low, high) for _ in range(count)]


def _family(
    name: str, f: str, g: str, seed: int, make: Callable[[random.Random], Values], held_out: bool = False
) -> Family:
    return Family(name=name, f=f, g=g, instances=make_instances(seed, make, INSTANCES), held_out=held_out)


def _unique_letter_word(rng: random.Random) -> Values:
    """A word and a letter that occurs in it once, not at a position a probe index reaches (0, 1, 2, -1)."""
    letters = rng.sample(string.ascii_lowercase, rng.randint(5, 9))
    return {"w": "".join(letters), "c": letters[rng.randint(3, len(letters) - 2)]}


def _split(rng: random.Random) -> Values:
    return {
        "parts": [_word(rng, 2, 5) for _ in range(rng.randint(2, 4))],
        "sep": rng.choice([",", ";", "/", "|"]),
    }


def _position(rng: random.Random) -> Values:
    xs = rng.sample([x for x in range(-90, 91) if x not in _PROBE_INTS], rng.randint(5, 9))
    return {"xs": xs, "v": xs[rng.randint(3, len(xs) - 2)]}


def _redrawn(
    rng: random.Random, draw: Callable[[random.Random], Values], keep: Callable[[Values], bool]
) -> Values:
    """``draw(rng)`` again until ``keep`` accepts the values: the instances no probe answer solves."""
    while True:
        values = draw(rng)
        if keep(values):
            return values


def _negated(rng: random.Random) -> Values:
    return _redrawn(rng, lambda r: {"k": _int(r, -(10**6), 10**6)}, lambda v: -v["k"] not in _PROBE_INTS)


def _quotient(rng: random.Random) -> Values:
    return _redrawn(
        rng,
        lambda r: {"d": _int(r, 3, 99), "q": _int(r, 3, 999)},
        lambda v: all(p // v["d"] != v["q"] for p in _PROBE_INTS),
    )


def _remainder(rng: random.Random) -> Values:
    def draw(r: random.Random) -> Values:
        m = r.randint(11, 97)
        return {"m": m, "r": r.randint(3, m - 1)}

    return _redrawn(rng, draw, lambda v: all(p % v["m"] != v["r"] for p in _PROBE_INTS))


def _float_offset(rng: random.Random) -> Values:
    return _redrawn(
        rng,
        lambda r: {"a": round(r.uniform(-99, 99), 2), "b": round(r.uniform(3, 999), 2)},
        lambda v: all(abs(p + v["a"] - v["b"]) >= 1e-6 for p in _PROBE_FLOATS),
    )


def _total(rng: random.Random) -> Values:
    return _redrawn(
        rng, lambda r: {"nums": _ints(r, r.randint(3, 8))}, lambda v: sum(v["nums"]) not in _PROBE_INTS
    )


def _concat(rng: random.Random, part: Callable[[random.Random], list | str]) -> Values:
    head, tail = part(rng), part(rng)
    return {"tail": tail, "whole": head + tail}


FAMILIES = (
    # ints
    _family(
        "sum_to_zero",
        "def f(n: int, k=...) -> bool:\n    return n + k == 0",
        "def g(k=...):\n    return -k",
        1101,
        _negated,
    ),
    _family(
        "minus_offset",
        "def f(v: int, d=..., t=...) -> bool:\n    return v - d == t",
        "def g(d=..., t=...):\n    return t + d",
        1102,
        lambda rng: (lambda d, v: {"d": d, "t": v - d})(_int(rng, -999, 999), _int(rng, -9999, 9999)),
    ),
    _family(
        "offset_minus",
        "def f(v: int, d=..., t=...) -> bool:\n    return d - v == t",
        "def g(d=..., t=...):\n    return d - t",
        1103,
        lambda rng: (lambda d, v: {"d": d, "t": d - v})(_int(rng, -999, 999), _int(rng, -9999, 9999)),
        held_out=True,
    ),
    _family(
        "product_is",
        "def f(x: int, k=..., p=...) -> bool:\n    return x * k == p",
        "def g(k=..., p=...):\n    return p // k",
        1104,
        lambda rng: (lambda k, x: {"k": k, "p": k * x})(_int(rng, 3, 99), _int(rng, -999, 999)),
    ),
    _family(
        "quotient_is",
        "def f(x: int, d=..., q=...) -> bool:\n    return x // d == q",
        "def g(d=..., q=...):\n    return q * d",
        1105,
        _quotient,
        held_out=True,
    ),
    _family(
        "greater_than",
        "def f(x: int, m=...) -> bool:\n    return x > m",
        "def g(m=...):\n    return m + 1",
        1106,
        lambda rng: {"m": rng.randint(101, 10**6)},
    ),
    _family(
        "strictly_between",
        "def f(x: int, lo=..., hi=...) -> bool:\n    return lo < x < hi",
        "def g(lo=..., hi=...):\n    return lo + 1",
        1107,
        lambda rng: (lambda lo: {"lo": lo, "hi": lo + rng.randint(2, 50)})(rng.randint(101, 10**5)),
    ),
    _family(
        "remainder_is",
        "def f(x: int, m=..., r=...) -> bool:\n    return x % m == r",
        "def g(m=..., r=...):\n    return r",
        1108,
        _remainder,
    ),
    _family(
        "square_is",
        "def f(x: int, sq=...) -> bool:\n    return x > 0 and x * x == sq",
        "def g(sq=...):\n    return round(sq ** 0.5)",
        1109,
        lambda rng: {"sq": rng.randint(11, 3000) ** 2},
    ),
    _family(
        "digit_count",
        "def f(n: int, d=...) -> bool:\n    return len(str(n)) == d",
        "def g(d=...):\n    return 10 ** (d - 1)",
        1110,
        lambda rng: {"d": rng.randint(4, 15)},
    ),
    _family(
        "twice_is",
        "def f(x: int, s=...) -> bool:\n    return x + x == s",
        "def g(s=...):\n    return s // 2",
        1111,
        lambda rng: {"s": 2 * _int(rng, -(10**5), 10**5)},
    ),
    # floats
    _family(
        "float_half",
        "def f(x: float, t=...) -> bool:\n    return abs(2 * x - t) < 1e-9",
        "def g(t=...):\n    return t / 2",
        1112,
        lambda rng: {"t": round(rng.uniform(3, 999), 3)},
    ),
    _family(
        "float_offset",
        "def f(x: float, a=..., b=...) -> bool:\n    return abs(x + a - b) < 1e-6",
        "def g(a=..., b=...):\n    return b - a",
        1113,
        _float_offset,
        held_out=True,
    ),
    # strings
    _family(
        "string_length",
        "def f(s: str, size=...) -> bool:\n    return len(s) == size and s.isalpha()",
        "def g(size=...):\n    return 'x' * size",
        1114,
        lambda rng: {"size": rng.randint(5, 60)},
    ),
    _family(
        "letter_count",
        "def f(s: str, ch=..., k=...) -> bool:\n    return s.count(ch) == k",
        "def g(ch=..., k=...):\n    return ch * k",
        1115,
        lambda rng: {"ch": rng.choice("bdeqxyz"), "k": rng.randint(2, 30)},
        held_out=True,
    ),
    _family(
        "contains_both",
        "def f(s: str, a=..., b=...) -> bool:\n    return a in s and b in s",
        "def g(a=..., b=...):\n    return a + b",
        1116,
        lambda rng: {"a": _word(rng), "b": _word(rng)},
    ),
    _family(
        "ends_with",
        "def f(s: str, tail=...) -> bool:\n    return s.endswith(tail)",
        "def g(tail=...):\n    return tail",
        1117,
        lambda rng: {"tail": _word(rng, 4, 8)},
    ),
    _family(
        "starts_and_ends",
        "def f(s: str, a=..., b=...) -> bool:\n    return s.startswith(a) and s.endswith(b)",
        "def g(a=..., b=...):\n    return a + b",
        1118,
        lambda rng: {"a": _word(rng), "b": _word(rng)},
    ),
    _family(
        "upper_of",
        "def f(s: str, t=...) -> bool:\n    return s.isupper() and s.lower() == t",
        "def g(t=...):\n    return t.upper()",
        1119,
        lambda rng: {"t": _word(rng, 4, 10)},
    ),
    _family(
        "repeated_gives",
        "def f(s: str, k=..., t=...) -> bool:\n    return s * k == t",
        "def g(k=..., t=...):\n    return t[:len(t) // k]",
        1120,
        lambda rng: (lambda w, k: {"k": k, "t": w * k})(_word(rng, 2, 5), rng.randint(2, 6)),
    ),
    _family(
        "letter_at",
        "def f(s: str, i=..., c=...) -> bool:\n    return s[i] == c",
        "def g(i=..., c=...):\n    return c * (i + 1)",
        1121,
        lambda rng: {"i": rng.randint(3, 20), "c": rng.choice("bdeqxyz")},
    ),
    _family(
        "where_is_letter",
        "def f(i: int, w=..., c=...) -> bool:\n    return w[i] == c",
        "def g(w=..., c=...):\n    return w.index(c)",
        1122,
        _unique_letter_word,
    ),
    _family(
        "split_gives",
        "def f(s: str, sep=..., parts=...) -> bool:\n    return s.split(sep) == parts",
        "def g(sep=..., parts=...):\n    return sep.join(parts)",
        1123,
        _split,
    ),
    _family(
        "join_gives",
        "def f(parts: List[str], sep=..., s=...) -> bool:\n    return sep.join(parts) == s",
        "def g(sep=..., s=...):\n    return s.split(sep)",
        1124,
        lambda rng: (lambda d: {"sep": d["sep"], "s": d["sep"].join(d["parts"])})(_split(rng)),
        held_out=True,
    ),
    _family(
        "text_then_tail",
        "def f(s: str, tail=..., whole=...) -> bool:\n    return s + tail == whole",
        "def g(tail=..., whole=...):\n    return whole[:len(whole) - len(tail)]",
        1125,
        lambda rng: _concat(rng, _word),
    ),
    # lists
    _family(
        "list_length",
        "def f(xs: List[int], n=...) -> bool:\n    return len(xs) == n",
        "def g(n=...):\n    return [7] * n",
        1126,
        lambda rng: {"n": rng.randint(4, 50)},
    ),
    _family(
        "list_sum_and_length",
        "def f(xs: List[int], n=..., t=...) -> bool:\n    return len(xs) == n and sum(xs) == t",
        "def g(n=..., t=...):\n    return [t] + [0] * (n - 1)",
        1127,
        lambda rng: {"n": rng.randint(4, 20), "t": _int(rng, -999, 999)},
    ),
    _family(
        "list_contains_both",
        "def f(xs: List[int], a=..., b=...) -> bool:\n    return a in xs and b in xs",
        "def g(a=..., b=...):\n    return [a, b]",
        1128,
        lambda rng: {"a": _int(rng, -999, 999), "b": _int(rng, -999, 999)},
        held_out=True,
    ),
    _family(
        "item_at",
        "def f(xs: List[int], i=..., v=...) -> bool:\n    return xs[i] == v",
        "def g(i=..., v=...):\n    return [v] * (i + 1)",
        1129,
        lambda rng: {"i": rng.randint(3, 20), "v": _int(rng, -999, 999)},
        held_out=True,
    ),
    _family(
        "where_is_item",
        "def f(i: int, xs=..., v=...) -> bool:\n    return xs[i] == v",
        "def g(xs=..., v=...):\n    return xs.index(v)",
        1130,
        _position,
    ),
    _family(
        "largest_item",
        "def f(x: int, nums=...) -> bool:\n    return x == max(nums)",
        "def g(nums=...):\n    return max(nums)",
        1131,
        lambda rng: {"nums": _ints(rng, rng.randint(4, 9), 3, 999)},
    ),
    _family(
        "smallest_item",
        "def f(x: int, nums=...) -> bool:\n    return x == min(nums)",
        "def g(nums=...):\n    return min(nums)",
        1132,
        lambda rng: {"nums": _ints(rng, rng.randint(4, 9), 3, 999)},
        held_out=True,
    ),
    _family(
        "total_of",
        "def f(x: int, nums=...) -> bool:\n    return x - sum(nums) == 0",
        "def g(nums=...):\n    return sum(nums)",
        1133,
        _total,
    ),
    _family(
        "item_count",
        "def f(xs: List[int], v=..., k=...) -> bool:\n    return xs.count(v) == k",
        "def g(v=..., k=...):\n    return [v] * k",
        1134,
        lambda rng: {"v": _int(rng, 3, 99), "k": rng.randint(2, 20)},
    ),
    _family(
        "distinct_count",
        "def f(xs: List[int], n=...) -> bool:\n    return len(set(xs)) == n",
        "def g(n=...):\n    return list(range(n))",
        1135,
        lambda rng: {"n": rng.randint(4, 40)},
    ),
    _family(
        "reversed_list",
        "def f(xs: List[int], ys=...) -> bool:\n    return xs[::-1] == ys",
        "def g(ys=...):\n    return ys[::-1]",
        1136,
        lambda rng: {"ys": _ints(rng, rng.randint(4, 9))},
        held_out=True,
    ),
    _family(
        "list_then_tail",
        "def f(xs: List[int], tail=..., whole=...) -> bool:\n    return xs + tail == whole",
        "def g(tail=..., whole=...):\n    return whole[:len(whole) - len(tail)]",
        1137,
        lambda rng: _concat(rng, lambda r: _ints(r, r.randint(2, 5))),
        held_out=True,
    ),
    _family(
        "sorted_copy_of",
        "def f(xs: List[int], ys=...) -> bool:\n    return xs == sorted(ys)",
        "def g(ys=...):\n    return sorted(ys)",
        1138,
        lambda rng: {"ys": _ints(rng, rng.randint(4, 9))},
    ),
)
