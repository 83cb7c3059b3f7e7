"""Seed families about number theory: factors, gcd and lcm, modular arithmetic, primes, powers."""

from __future__ import annotations

import math
import random

from puzzles.seeds.family import Family, make_instances

TOPIC = "number_theory"

_PROBE_INTS = {0, 1, -1, 2, 10, 100}


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, math.isqrt(n) + 1))


def _prime(rng: random.Random, low: int, high: int) -> int:
    while True:
        n = rng.randint(low, high)
        if _is_prime(n):
            return n


NONTRIVIAL_FACTOR = Family(
    name="nontrivial_factor",
    f='''
    def f(d: int, n=...) -> bool:
        """Find a divisor of n other than 1 and n."""
        return 1 < d < n and n % d == 0
    ''',
    g="""
    def g(n=...):
        d = 2
        while n % d:
            d += 1
        return d
    """,
    instances=make_instances(401, lambda rng: {"n": _prime(rng, 101, 3000) * _prime(rng, 101, 3000)}),
)


def _bezout(rng: random.Random) -> dict[str, object]:
    k = rng.randint(1, 30)
    return {"a": k * rng.randint(5, 9999), "b": k * rng.randint(5, 9999)}


BEZOUT = Family(
    name="bezout_coefficients",
    f='''
    def f(xy: List[int], a=..., b=...) -> bool:
        """Find integers [x, y] with a * x + b * y equal to the greatest common divisor of a and b."""
        import math

        return len(xy) == 2 and a * xy[0] + b * xy[1] == math.gcd(a, b)
    ''',
    g="""
    def g(a=..., b=...):
        old_r, r, old_x, x, old_y, y = a, b, 1, 0, 0, 1
        while r:
            q = old_r // r
            old_r, r = r, old_r - q * r
            old_x, x = x, old_x - q * x
            old_y, y = y, old_y - q * y
        return [old_x, old_y]
    """,
    instances=make_instances(402, _bezout),
)


def _inverse(rng: random.Random) -> dict[str, object]:
    while True:
        m = _prime(rng, 50, 10**6)
        a = rng.randint(2, m - 1)
        if pow(a, -1, m) not in _PROBE_INTS:
            return {"a": a, "m": m}


MODULAR_INVERSE = Family(
    name="modular_inverse",
    f='''
    def f(x: int, a=..., m=...) -> bool:
        """Find x between 0 and m - 1 with a * x leaving remainder 1 when divided by m."""
        return 0 <= x < m and a * x % m == 1
    ''',
    g="""
    def g(a=..., m=...):
        return pow(a, -1, m)
    """,
    instances=make_instances(403, _inverse),
)

NEXT_PRIME = Family(
    name="next_prime",
    f='''
    def f(p: int, n=...) -> bool:
        """Find the smallest prime larger than n."""
        import math

        def is_prime(k):
            return k > 1 and all(k % d for d in range(2, math.isqrt(k) + 1))

        return p > n and is_prime(p) and not any(is_prime(k) for k in range(n + 1, p))
    ''',
    g="""
    def g(n=...):
        k = n + 1
        while k < 2 or any(k % d == 0 for d in range(2, int(k ** 0.5) + 1)):
            k += 1
        return k
    """,
    instances=make_instances(404, lambda rng: {"n": rng.randint(1000, 10**6)}),
)


def _power(rng: random.Random) -> dict[str, object]:
    exponent = rng.randint(2, 9)
    return {"n": rng.randint(3, int(10 ** (12 / exponent))) ** exponent}


PERFECT_POWER = Family(
    name="perfect_power",
    f='''
    def f(be: List[int], n=...) -> bool:
        """Write n as a power [b, e] with b ** e == n and 2 <= e <= 64."""
        return len(be) == 2 and 2 <= be[1] <= 64 and be[0] ** be[1] == n
    ''',
    g="""
    def g(n=...):
        for e in range(2, 65):
            b = round(n ** (1 / e))
            for c in (b - 1, b, b + 1):
                if c ** e == n:
                    return [c, e]
    """,
    instances=make_instances(405, _power),
)


def _crt(rng: random.Random) -> dict[str, object]:
    mods = sorted({_prime(rng, 3, 60) for _ in range(rng.randint(2, 4))})
    while len(mods) < 2:
        mods = sorted(set(mods) | {_prime(rng, 3, 60)})
    return {"mods": mods, "rems": [rng.randint(0, m - 1) for m in mods]}


CHINESE_REMAINDER = Family(
    name="chinese_remainder",
    f='''
    def f(x: int, mods=..., rems=...) -> bool:
        """Find x, at least 0 and below the product of mods, with x % mods[i] == rems[i] for every i."""
        import math

        return 0 <= x < math.prod(mods) and all(x % m == r for m, r in zip(mods, rems))
    ''',
    g="""
    def g(mods=..., rems=...):
        x, step = 0, 1
        for m, r in zip(mods, rems):
            while x % m != r:
                x += step
            step *= m
        return x
    """,
    instances=make_instances(406, _crt),
)


def _two_squares(rng: random.Random) -> dict[str, object]:
    a, b = rng.randint(3, 1000), rng.randint(3, 1000)
    return {"n": a * a + b * b}


TWO_SQUARES = Family(
    name="sum_of_two_squares",
    f='''
    def f(ab: List[int], n=...) -> bool:
        """Write n as a * a + b * b with 0 <= a <= b; answer [a, b]."""
        return len(ab) == 2 and 0 <= ab[0] <= ab[1] and ab[0] ** 2 + ab[1] ** 2 == n
    ''',
    g="""
    def g(n=...):
        import math

        for a in range(math.isqrt(n // 2) + 1):
            b = math.isqrt(n - a * a)
            if a * a + b * b == n:
                return [a, b]
    """,
    instances=make_instances(407, _two_squares),
)


def _digit_product(rng: random.Random) -> dict[str, object]:
    while True:
        product = math.prod(rng.randint(2, 9) for _ in range(rng.randint(2, 7)))
        if product >= 12:
            return {"product": product}


DIGIT_PRODUCT = Family(
    name="digit_product",
    f='''
    def f(n: int, product=...) -> bool:
        """Find a positive number with no digit 1 whose digits multiply to product."""
        import math

        return n > 0 and "1" not in str(n) and math.prod(int(c) for c in str(n)) == product
    ''',
    g="""
    def g(product=...):
        digits = []
        for d in range(9, 1, -1):
            while product % d == 0:
                digits.append(d)
                product //= d
        return int("".join(map(str, sorted(digits))))
    """,
    instances=make_instances(408, _digit_product),
)

LCM_OF_LIST = Family(
    name="lcm_of_list",
    f='''
    def f(m: int, xs=...) -> bool:
        """Find the least common multiple of xs."""
        import math

        return m > 0 and all(m % x == 0 for x in xs) and math.gcd(*[m // x for x in xs]) == 1
    ''',
    g="""
    def g(xs=...):
        import math

        m = 1
        for x in xs:
            m = m * x // math.gcd(m, x)
        return m
    """,
    instances=make_instances(409, lambda rng: {"xs": [rng.randint(3, 60) for _ in range(rng.randint(3, 6))]}),
    held_out=True,
)


def _primitive_root(rng: random.Random) -> dict[str, object]:
    while True:
        p = _prime(rng, 20, 20000)
        factors = [q for q in range(2, p) if (p - 1) % q == 0 and _is_prime(q)]

        def generates(r: int, p: int = p, factors: list[int] = factors) -> bool:
            return all(pow(r, (p - 1) // q, p) != 1 for q in factors)

        if not any(generates(r) for r in (2, 10, 100) if r < p):
            return {"p": p, "factors": factors}


PRIMITIVE_ROOT = Family(
    name="primitive_root",
    f='''
    def f(r: int, p=..., factors=...) -> bool:
        """Find a primitive root modulo the prime p, whose p - 1 has the prime factors listed."""
        return 1 < r < p and all(pow(r, (p - 1) // q, p) != 1 for q in factors)
    ''',
    g="""
    def g(p=..., factors=...):
        r = 2
        while any(pow(r, (p - 1) // q, p) == 1 for q in factors):
            r += 1
        return r
    """,
    instances=make_instances(410, _primitive_root),
)

FAMILIES = (
    NONTRIVIAL_FACTOR,
    BEZOUT,
    MODULAR_INVERSE,
    NEXT_PRIME,
    PERFECT_POWER,
    CHINESE_REMAINDER,
    TWO_SQUARES,
    DIGIT_PRODUCT,
    LCM_OF_LIST,
    PRIMITIVE_ROOT,
)
