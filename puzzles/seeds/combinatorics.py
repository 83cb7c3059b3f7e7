"""Seed families about counting and arrangements: permutations, subsets, binomials, partitions."""

from __future__ import annotations

import math
import random

from puzzles.seeds.family import Family, make_instances

TOPIC = "combinatorics"


def _kth(rng: random.Random) -> dict[str, object]:
    n = rng.randint(5, 9)
    return {"n": n, "k": rng.randint(1, math.factorial(n) - 1)}


KTH_PERMUTATION = Family(
    name="kth_permutation",
    f='''
    def f(perm: List[int], n=..., k=...) -> bool:
        """Find the permutation of 0 .. n-1 that comes k-th in lexicographic order, counting from 0."""
        import math

        if sorted(perm) != list(range(n)):
            return False
        rank, rest = 0, list(range(n))
        for i, x in enumerate(perm):
            rank += rest.index(x) * math.factorial(n - 1 - i)
            rest.remove(x)
        return rank == k
    ''',
    g="""
    def g(n=..., k=...):
        import math

        rest, perm = list(range(n)), []
        for i in range(n - 1, -1, -1):
            q, k = divmod(k, math.factorial(i))
            perm.append(rest.pop(q))
        return perm
    """,
    instances=make_instances(601, _kth),
    held_out=True,
)

PASCAL_ROW = Family(
    name="pascal_row",
    f='''
    def f(row: List[int], n=...) -> bool:
        """Give row n of Pascal's triangle: the n + 1 numbers of ways to choose 0 .. n of n items."""
        return len(row) == n + 1 and row[0] == 1 and all(
            row[i + 1] * (i + 1) == row[i] * (n - i) for i in range(n)
        )
    ''',
    g="""
    def g(n=...):
        row = [1]
        for i in range(n):
            row.append(row[-1] * (n - i) // (i + 1))
        return row
    """,
    instances=make_instances(602, lambda rng: {"n": rng.randint(5, 40)}),
)


def _subsets(rng: random.Random) -> dict[str, object]:
    n = rng.randint(4, 8)
    return {"n": n, "k": rng.randint(2, n - 2)}


ALL_K_SUBSETS = Family(
    name="all_k_subsets",
    f='''
    def f(subsets: List[List[int]], n=..., k=...) -> bool:
        """List every k-element subset of 0 .. n-1 exactly once (any order)."""
        import math

        return (
            len(subsets) == math.comb(n, k)
            and len({tuple(sorted(s)) for s in subsets}) == len(subsets)
            and all(len(set(s)) == len(s) == k and all(0 <= x < n for x in s) for s in subsets)
        )
    ''',
    g="""
    def g(n=..., k=...):
        import itertools

        return [list(c) for c in itertools.combinations(range(n), k)]
    """,
    instances=make_instances(603, _subsets),
)


def _avoiding(rng: random.Random) -> dict[str, object]:
    n = rng.randint(5, 9)
    return {"n": n, "banned": [rng.choice([v for v in range(n) if v != i]) for i in range(n)]}


AVOIDING_PERMUTATION = Family(
    name="avoiding_permutation",
    f='''
    def f(p: List[int], n=..., banned=...) -> bool:
        """Find a permutation p of 0 .. n-1 with p[i] != i and p[i] != banned[i] for every i."""
        return sorted(p) == list(range(n)) and all(p[i] != i and p[i] != banned[i] for i in range(n))
    ''',
    g="""
    def g(n=..., banned=...):
        def extend(p, used):
            i = len(p)
            if i == n:
                return p
            for v in range(n):
                if v not in used and v != i and v != banned[i]:
                    found = extend(p + [v], used | {v})
                    if found:
                        return found
            return None

        return extend([], set())
    """,
    instances=make_instances(604, _avoiding),
)


def _gray(rng: random.Random) -> dict[str, object]:
    bits = rng.randint(3, 7)
    return {"bits": bits, "start": rng.randrange(2**bits)}


GRAY_SEQUENCE = Family(
    name="gray_sequence",
    f='''
    def f(seq: List[int], bits=..., start=...) -> bool:
        """Order all numbers below 2 ** bits, beginning with start, so that neighbours differ in
        exactly one binary digit."""
        return (
            seq[:1] == [start]
            and sorted(seq) == list(range(2 ** bits))
            and all(bin(a ^ b).count("1") == 1 for a, b in zip(seq, seq[1:]))
        )
    ''',
    g="""
    def g(bits=..., start=...):
        return [start ^ i ^ (i >> 1) for i in range(2 ** bits)]
    """,
    instances=make_instances(605, _gray),
)


def _partitions(limit: int) -> list[int]:
    ways = [1] + [0] * limit
    for part in range(1, limit + 1):
        for total in range(part, limit + 1):
            ways[total] += ways[total - part]
    return ways


PARTITION_COUNT = Family(
    name="partition_count_inverse",
    f='''
    def f(n: int, count=...) -> bool:
        """Find n (0 <= n <= 200) that can be written as a sum of positive parts, order ignored,
        in exactly `count` ways."""
        if not 0 <= n <= 200:
            return False
        ways = [1] + [0] * n
        for part in range(1, n + 1):
            for total in range(part, n + 1):
                ways[total] += ways[total - part]
        return ways[n] == count
    ''',
    g="""
    def g(count=...):
        n = 0
        while True:
            ways = [1] + [0] * n
            for part in range(1, n + 1):
                for total in range(part, n + 1):
                    ways[total] += ways[total - part]
            if ways[n] == count:
                return n
            n += 1
    """,
    instances=make_instances(606, lambda rng: {"count": _partitions(60)[rng.randint(11, 60)]}),
)


def _catalan(rng: random.Random) -> dict[str, object]:
    n = rng.choice([k for k in range(3, 60) if k != 10])
    return {"value": math.comb(2 * n, n) // (n + 1)}


CATALAN_INDEX = Family(
    name="catalan_index",
    f='''
    def f(n: int, value=...) -> bool:
        """Find n (0 <= n <= 1000) for which the number of balanced strings of n bracket pairs is value."""
        import math

        return 0 <= n <= 1000 and math.comb(2 * n, n) // (n + 1) == value
    ''',
    g="""
    def g(value=...):
        n, c = 0, 1
        while c != value:
            c = c * 2 * (2 * n + 1) // (n + 2)
            n += 1
        return n
    """,
    instances=make_instances(607, _catalan),
)

FAMILIES = (
    KTH_PERMUTATION,
    PASCAL_ROW,
    ALL_K_SUBSETS,
    AVOIDING_PERMUTATION,
    GRAY_SEQUENCE,
    PARTITION_COUNT,
    CATALAN_INDEX,
)
