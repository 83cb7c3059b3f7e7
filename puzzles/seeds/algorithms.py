"""Seed families for classic algorithms: intervals, greedy choice and dynamic programming."""

from __future__ import annotations

import itertools
import random

from puzzles.seeds.family import Family, make_instances

TOPIC = "algorithms"


def _intervals(rng: random.Random, count: int, span: int) -> list[list[int]]:
    out = []
    for _ in range(count):
        start = rng.randint(0, span - 2)
        out.append([start, rng.randint(start + 1, min(span, start + 12))])
    return out


MERGE_INTERVALS = Family(
    name="merge_intervals",
    f='''
    def f(merged: List[List[int]], intervals=...) -> bool:
        """Merge the half-open integer intervals [a, b) into sorted, disjoint, non-touching intervals
        covering exactly the same integers."""

        def points(ivs):
            return {x for a, b in ivs for x in range(a, b)}

        return (
            all(len(iv) == 2 and iv[0] < iv[1] for iv in merged)
            and all(a[1] < b[0] for a, b in zip(merged, merged[1:]))
            and points(merged) == points(intervals)
        )
    ''',
    g="""
    def g(intervals=...):
        merged = []
        for a, b in sorted(intervals):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        return merged
    """,
    instances=make_instances(701, lambda rng: {"intervals": _intervals(rng, rng.randint(4, 10), 60)}),
)


def _disjoint(rng: random.Random) -> dict[str, object]:
    while True:
        intervals = _intervals(rng, rng.randint(6, 14), 50)
        count, end = 0, -1
        for a, b in sorted(intervals, key=lambda iv: iv[1]):
            if a >= end:
                count, end = count + 1, b
        if count >= 4:
            return {"intervals": intervals, "count": count}


MOST_DISJOINT_INTERVALS = Family(
    name="most_disjoint_intervals",
    f='''
    def f(chosen: List[int], intervals=..., count=...) -> bool:
        """Choose `count` positions of intervals whose half-open intervals [a, b) do not overlap."""
        if len(set(chosen)) != count or len(chosen) != count:
            return False
        if not all(0 <= i < len(intervals) for i in chosen):
            return False
        spans = sorted(intervals[i] for i in chosen)
        return all(x[1] <= y[0] for x, y in zip(spans, spans[1:]))
    ''',
    g="""
    def g(intervals=..., count=...):
        chosen, end = [], None
        for i in sorted(range(len(intervals)), key=lambda i: intervals[i][1]):
            if end is None or intervals[i][0] >= end:
                chosen.append(i)
                end = intervals[i][1]
        return chosen
    """,
    instances=make_instances(702, _disjoint),
)


def _lis_length(xs: list[int]) -> int:
    best = [1] * len(xs)
    for j in range(len(xs)):
        for i in range(j):
            if xs[i] < xs[j]:
                best[j] = max(best[j], best[i] + 1)
    return max(best)


def _lis(rng: random.Random) -> dict[str, object]:
    xs = [rng.randint(0, 99) for _ in range(rng.randint(12, 25))]
    return {"xs": xs, "length": _lis_length(xs)}


INCREASING_SUBSEQUENCE = Family(
    name="longest_increasing_positions",
    f='''
    def f(idx: List[int], xs=..., length=...) -> bool:
        """Find `length` positions i1 < i2 < ... of xs whose values strictly increase."""
        return (
            len(idx) == length
            and all(0 <= i < len(xs) for i in idx)
            and all(i < j and xs[i] < xs[j] for i, j in zip(idx, idx[1:]))
        )
    ''',
    g="""
    def g(xs=..., length=...):
        best = [1] * len(xs)
        prev = [-1] * len(xs)
        for j in range(len(xs)):
            for i in range(j):
                if xs[i] < xs[j] and best[i] + 1 > best[j]:
                    best[j], prev[j] = best[i] + 1, i
        j = best.index(max(best))
        idx = []
        while j != -1:
            idx.append(j)
            j = prev[j]
        return idx[::-1]
    """,
    instances=make_instances(703, _lis),
)


def _lcs_length(a: str, b: str) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, j in itertools.product(range(len(a)), range(len(b))):
        table[i + 1][j + 1] = table[i][j] + 1 if a[i] == b[j] else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def _lcs(rng: random.Random) -> dict[str, object]:
    while True:
        a = "".join(rng.choice("abcde") for _ in range(rng.randint(8, 16)))
        b = "".join(rng.choice("abcde") for _ in range(rng.randint(8, 16)))
        if _lcs_length(a, b) >= 4:
            return {"a": a, "b": b, "length": _lcs_length(a, b)}


COMMON_SUBSEQUENCE = Family(
    name="longest_common_subsequence",
    f='''
    def f(s: str, a=..., b=..., length=...) -> bool:
        """Find a string of `length` characters that can be read, in order but skipping freely,
        inside both a and b."""

        def inside(t):
            rest = iter(t)
            return all(c in rest for c in s)

        return len(s) == length and inside(a) and inside(b)
    ''',
    g="""
    def g(a=..., b=..., length=...):
        table = [[""] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(len(a)):
            for j in range(len(b)):
                if a[i] == b[j]:
                    table[i + 1][j + 1] = table[i][j] + a[i]
                else:
                    table[i + 1][j + 1] = max(table[i][j + 1], table[i + 1][j], key=len)
        return table[-1][-1]
    """,
    instances=make_instances(704, _lcs),
)


def _knapsack(rng: random.Random) -> dict[str, object]:
    while True:
        n = rng.randint(6, 12)
        weights = [rng.randint(3, 30) for _ in range(n)]
        values = [rng.randint(5, 60) for _ in range(n)]
        capacity = rng.randint(30, 90)
        best = [0] * (capacity + 1)
        for w, v in zip(weights, values, strict=True):
            for c in range(capacity, w - 1, -1):
                best[c] = max(best[c], best[c - w] + v)
        if best[capacity] > max(values) and best[capacity] > sum(values[1:4]):
            return {"weights": weights, "values": values, "capacity": capacity, "target": best[capacity]}


KNAPSACK = Family(
    name="knapsack_best_value",
    f='''
    def f(chosen: List[int], weights=..., values=..., capacity=..., target=...) -> bool:
        """Pick distinct items (positions) of total weight at most capacity and total value at least
        target."""
        return (
            len(set(chosen)) == len(chosen)
            and all(0 <= i < len(weights) for i in chosen)
            and sum(weights[i] for i in chosen) <= capacity
            and sum(values[i] for i in chosen) >= target
        )
    ''',
    g="""
    def g(weights=..., values=..., capacity=..., target=...):
        best = {0: (0, [])}
        for i, (w, v) in enumerate(zip(weights, values)):
            for used, (value, items) in list(best.items()):
                if used + w <= capacity and best.get(used + w, (-1, []))[0] < value + v:
                    best[used + w] = (value + v, items + [i])
        return max(best.values())[1]
    """,
    instances=make_instances(705, _knapsack),
    held_out=True,
)

FAMILIES = (
    MERGE_INTERVALS,
    MOST_DISJOINT_INTERVALS,
    INCREASING_SUBSEQUENCE,
    COMMON_SUBSEQUENCE,
    KNAPSACK,
)
