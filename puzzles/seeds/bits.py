"""Seed families built on bit tricks: popcounts, xor, bit order, powers of two."""

from __future__ import annotations

import random

from puzzles.seeds.family import Family, make_instances

TOPIC = "bits"


def _next_same_popcount(m: int) -> int:
    smallest = m & -m
    ripple = m + smallest
    return ripple | (((m ^ ripple) >> 2) // smallest)


def _popcount(rng: random.Random) -> dict[str, object]:
    while True:
        m = rng.randint(3, 10**6)
        if _next_same_popcount(m) - m <= 2000:
            return {"m": m}


NEXT_SAME_POPCOUNT = Family(
    name="next_same_popcount",
    f='''
    def f(n: int, m=...) -> bool:
        """Find the smallest number above m with as many 1 bits in binary as m has."""
        ones = bin(m).count("1")
        return n > m and bin(n).count("1") == ones and all(bin(k).count("1") != ones for k in range(m + 1, n))
    ''',
    g="""
    def g(m=...):
        smallest = m & -m
        ripple = m + smallest
        return ripple | (((m ^ ripple) >> 2) // smallest)
    """,
    instances=make_instances(1001, _popcount),
)


def _xor_pair(rng: random.Random) -> dict[str, object]:
    xs = rng.sample(range(1, 4096), rng.randint(6, 20))
    i, j = rng.sample(range(len(xs)), 2)
    return {"xs": xs, "target": xs[i] ^ xs[j]}


XOR_PAIR = Family(
    name="xor_pair",
    f='''
    def f(ij: List[int], xs=..., target=...) -> bool:
        """Find positions i < j of xs whose values xor to target; answer [i, j]."""
        return len(ij) == 2 and 0 <= ij[0] < ij[1] < len(xs) and xs[ij[0]] ^ xs[ij[1]] == target
    ''',
    g="""
    def g(xs=..., target=...):
        where = {}
        for j, x in enumerate(xs):
            if x ^ target in where:
                return [where[x ^ target], j]
            where.setdefault(x, j)
    """,
    instances=make_instances(1002, _xor_pair),
)


def _reverse(rng: random.Random) -> dict[str, object]:
    bits = rng.randint(8, 32)
    return {"x": rng.randint(3, 2**bits - 1), "bits": bits}


BIT_REVERSE = Family(
    name="bit_reverse",
    f='''
    def f(r: int, x=..., bits=...) -> bool:
        """Reverse the order of the lowest `bits` binary digits of x (x is below 2 ** bits)."""
        return 0 <= r < 2 ** bits and all((r >> i) & 1 == (x >> (bits - 1 - i)) & 1 for i in range(bits))
    ''',
    g="""
    def g(x=..., bits=...):
        return int(format(x, "0" + str(bits) + "b")[::-1], 2)
    """,
    instances=make_instances(1003, _reverse),
)


def _single(rng: random.Random) -> dict[str, object]:
    values = rng.sample(range(11, 999), rng.randint(4, 10))
    xs = values[1:] * 2 + values[:1]
    rng.shuffle(xs)
    return {"xs": xs}


UNPAIRED_VALUE = Family(
    name="unpaired_value",
    f='''
    def f(x: int, xs=...) -> bool:
        """Every value of xs appears twice except one; find that one."""
        return xs.count(x) == 1
    ''',
    g="""
    def g(xs=...):
        out = 0
        for x in xs:
            out ^= x
        return out
    """,
    instances=make_instances(1004, _single),
)

POWER_OF_TWO_ABOVE = Family(
    name="power_of_two_above",
    f='''
    def f(p: int, n=...) -> bool:
        """Find the smallest power of two that is at least n."""
        return p >= n and p & (p - 1) == 0 and p // 2 < n
    ''',
    g="""
    def g(n=...):
        return 1 << (n - 1).bit_length()
    """,
    instances=make_instances(1005, lambda rng: {"n": rng.randint(129, 2**60)}),
)

FAMILIES = (
    NEXT_SAME_POPCOUNT,
    XOR_PAIR,
    BIT_REVERSE,
    UNPAIRED_VALUE,
    POWER_OF_TWO_ABOVE,
)
