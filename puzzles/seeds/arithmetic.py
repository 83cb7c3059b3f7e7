"""Seed families about arithmetic: equations, digits, fractions, bases, numerals, float roots."""

from __future__ import annotations

import random

from puzzles.seeds.family import Family, make_instances

TOPIC = "arithmetic"

_PROBE_INTS = {0, 1, -1, 2, 10, 100}


def _not_probe(rng: random.Random, low: int, high: int) -> int:
    while True:
        x = rng.randint(low, high)
        if x not in _PROBE_INTS:
            return x


def _offset(rng: random.Random) -> dict[str, object]:
    a = rng.randint(-500, 500)
    return {"a": a, "b": a + _not_probe(rng, -500, 500)}


ADD_OFFSET = Family(
    name="add_offset",
    f='''
    def f(x: int, a=..., b=...) -> bool:
        """Find x such that x + a equals b."""
        return x + a == b
    ''',
    g="""
    def g(a=..., b=...):
        return b - a
    """,
    instances=make_instances(301, _offset),
)


def _linear(rng: random.Random) -> dict[str, object]:
    a, x, b = _not_probe(rng, -30, 30), _not_probe(rng, -999, 999), rng.randint(-999, 999)
    return {"a": a, "b": b, "c": a * x + b}


LINEAR_EQUATION = Family(
    name="linear_equation",
    f='''
    def f(x: int, a=..., b=..., c=...) -> bool:
        """Find the integer x with a * x + b == c."""
        return a * x + b == c
    ''',
    g="""
    def g(a=..., b=..., c=...):
        return (c - b) // a
    """,
    instances=make_instances(302, _linear),
)


def _quadratic(rng: random.Random) -> dict[str, object]:
    root = rng.choice([r for r in range(3, 80) if r != 10])
    other = -rng.randint(1, 80)
    return {"b": -(root + other), "c": root * other}


QUADRATIC_POSITIVE_ROOT = Family(
    name="quadratic_positive_root",
    f='''
    def f(x: int, b=..., c=...) -> bool:
        """Find a positive integer root of x**2 + b*x + c."""
        return x > 0 and x * x + b * x + c == 0
    ''',
    g="""
    def g(b=..., c=...):
        import math

        return (-b + math.isqrt(b * b - 4 * c)) // 2
    """,
    instances=make_instances(303, _quadratic),
)

FLOAT_SQUARE_ROOT = Family(
    name="float_square_root",
    f='''
    def f(x: float, a=...) -> bool:
        """Find the positive square root of a to within 1e-6."""
        return x > 0 and abs(x * x - a) < 1e-6
    ''',
    g="""
    def g(a=...):
        return a ** 0.5
    """,
    instances=make_instances(304, lambda rng: {"a": rng.randint(3, 50000)}),
)


def _digit_sum(rng: random.Random) -> dict[str, object]:
    digits = rng.randint(4, 15)
    return {"digits": digits, "total": rng.randint(1, 9 * digits)}


DIGIT_SUM = Family(
    name="digit_sum_and_length",
    f='''
    def f(n: int, digits=..., total=...) -> bool:
        """Find a positive number with exactly `digits` decimal digits that add up to total."""
        return n > 0 and len(str(n)) == digits and sum(int(c) for c in str(n)) == total
    ''',
    g="""
    def g(digits=..., total=...):
        out = ""
        for i in range(digits):
            d = min(9, total)
            if i == 0 and d == 0:
                d = 1
            out += str(d)
            total -= d
        return int(out)
    """,
    instances=make_instances(305, _digit_sum),
)


def _fraction(rng: random.Random) -> dict[str, object]:
    p, q, k = rng.randint(-60, 60), rng.randint(2, 60), rng.randint(2, 12)
    return {"a": p * k, "b": q * k}


REDUCE_FRACTION = Family(
    name="reduce_fraction",
    f='''
    def f(pq: List[int], a=..., b=...) -> bool:
        """Write a/b in lowest terms as [p, q] with q > 0."""
        import math

        return len(pq) == 2 and pq[1] > 0 and pq[0] * b == pq[1] * a and math.gcd(pq[0], pq[1]) == 1
    ''',
    g="""
    def g(a=..., b=...):
        import math

        d = math.gcd(a, b)
        return [a // d, b // d]
    """,
    instances=make_instances(306, _fraction),
)


def _mean(rng: random.Random) -> dict[str, object]:
    while True:
        xs = [rng.randint(-20, 40) for _ in range(rng.randint(3, 9))]
        mean = rng.randint(-80, 160) / 4 + 0.125
        if abs(mean * (len(xs) + 1) - sum(xs)) > 1:
            return {"xs": xs, "mean": mean}


MEAN_COMPLETION = Family(
    name="mean_completion",
    f='''
    def f(x: float, xs=..., mean=...) -> bool:
        """Find the number that, added to xs, makes the average exactly mean (to within 1e-9)."""
        return abs((sum(xs) + x) / (len(xs) + 1) - mean) < 1e-9
    ''',
    g="""
    def g(xs=..., mean=...):
        return mean * (len(xs) + 1) - sum(xs)
    """,
    instances=make_instances(307, _mean),
)

TO_BASE = Family(
    name="write_in_base",
    f='''
    def f(s: str, n=..., base=...) -> bool:
        """Write n in the given base with digits 0-9 then lowercase letters, no leading zeros."""
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[:base]
        return s != "" and s[0] != "0" and all(c in digits for c in s) and int(s, base) == n
    ''',
    g="""
    def g(n=..., base=...):
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"
        out = ""
        while n:
            n, r = divmod(n, base)
            out = digits[r] + out
        return out
    """,
    instances=make_instances(
        308, lambda rng: {"n": rng.randint(1000, 10**12), "base": rng.choice([2, 3, 5, 7, 8, 12, 16, 20, 36])}
    ),
)

ROMAN_NUMERAL = Family(
    name="roman_numeral",
    f='''
    def f(s: str, n=...) -> bool:
        """Write n in standard Roman numerals (I V X L C D M, subtractive pairs like IV and CM)."""
        import re

        if not re.fullmatch("M{0,3}(CM|CD|D?C{0,3})(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})", s):
            return False
        values = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
        total = 0
        for a, b in zip(s, s[1:] + " "):
            total += -values[a] if b != " " and values[b] > values[a] else values[a]
        return total == n
    ''',
    g="""
    def g(n=...):
        table = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
                 (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]
        out = ""
        for value, letters in table:
            while n >= value:
                out += letters
                n -= value
        return out
    """,
    instances=make_instances(309, lambda rng: {"n": rng.randint(4, 3999)}),
    held_out=True,
)


def _cubic(rng: random.Random) -> dict[str, object]:
    while True:
        coeffs = [1, rng.randint(-9, 9), rng.randint(-30, 30), rng.randint(-60, 60)]

        def value(x: float, coeffs: list[int] = coeffs) -> float:
            return ((coeffs[0] * x + coeffs[1]) * x + coeffs[2]) * x + coeffs[3]

        for lo in range(-12, 12):
            if value(lo) * value(lo + 1) < 0 and lo not in (-1, 0):
                return {"coeffs": coeffs, "lo": lo, "hi": lo + 1}


CUBIC_ROOT_IN_INTERVAL = Family(
    name="cubic_root_in_interval",
    f='''
    def f(x: float, coeffs=..., lo=..., hi=...) -> bool:
        """Find a root, to within 1e-6, of the polynomial with coefficients coeffs (highest power
        first) between lo and hi."""
        value = 0.0
        for c in coeffs:
            value = value * x + c
        return lo <= x <= hi and abs(value) < 1e-6
    ''',
    g="""
    def g(coeffs=..., lo=..., hi=...):
        def value(x):
            v = 0.0
            for c in coeffs:
                v = v * x + c
            return v

        a, b = float(lo), float(hi)
        for _ in range(200):
            mid = (a + b) / 2
            if (value(a) < 0) == (value(mid) < 0):
                a = mid
            else:
                b = mid
        return a
    """,
    instances=make_instances(310, _cubic),
)

FAMILIES = (
    ADD_OFFSET,
    LINEAR_EQUATION,
    QUADRATIC_POSITIVE_ROOT,
    FLOAT_SQUARE_ROOT,
    DIGIT_SUM,
    REDUCE_FRACTION,
    MEAN_COMPLETION,
    TO_BASE,
    ROMAN_NUMERAL,
    CUBIC_ROOT_IN_INTERVAL,
)
