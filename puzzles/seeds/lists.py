"""Seed families about lists of integers: sums, order, positions, rotations, subarrays, regrouping."""

from __future__ import annotations

import random

from puzzles.seeds.family import Family, make_instances

TOPIC = "lists"


def _ints(rng: random.Random, shortest: int, longest: int, low: int, high: int) -> list[int]:
    return [rng.randint(low, high) for _ in range(rng.randint(shortest, longest))]


def _bounded_sum(rng: random.Random) -> dict[str, object]:
    n, low = rng.randint(4, 12), rng.randint(-5, 5)
    high = low + rng.randint(3, 20)
    return {"n": n, "low": low, "high": high, "target": rng.randint(n * low, n * high)}


BOUNDED_SUM = Family(
    name="bounded_sum",
    f='''
    def f(xs: List[int], n=..., low=..., high=..., target=...) -> bool:
        """Find n integers, each between low and high inclusive, that add up to target."""
        return len(xs) == n and all(low <= x <= high for x in xs) and sum(xs) == target
    ''',
    g="""
    def g(n=..., low=..., high=..., target=...):
        xs = [low] * n
        rest = target - low * n
        for i in range(n):
            step = min(high - low, rest)
            xs[i] += step
            rest -= step
        return xs
    """,
    instances=make_instances(201, _bounded_sum),
)

SORTED_COPY = Family(
    name="sorted_copy",
    f='''
    def f(ys: List[int], xs=...) -> bool:
        """Rearrange xs into non-decreasing order."""
        from collections import Counter

        return Counter(ys) == Counter(xs) and all(a <= b for a, b in zip(ys, ys[1:]))
    ''',
    g="""
    def g(xs=...):
        return sorted(xs)
    """,
    instances=make_instances(202, lambda rng: {"xs": _ints(rng, 6, 15, -50, 50)}),
)


def _argmax(rng: random.Random) -> dict[str, object]:
    xs = _ints(rng, 12, 20, 0, 60)
    place = rng.choice([k for k in range(3, len(xs)) if k != 10])
    xs[place] = max(xs) + rng.randint(1, 5)
    if rng.random() < 0.5 and place + 1 < len(xs):
        xs[rng.randint(place + 1, len(xs) - 1)] = xs[place]
    return {"xs": xs}


FIRST_ARGMAX = Family(
    name="first_argmax",
    f='''
    def f(i: int, xs=...) -> bool:
        """Find the first position of the largest value in xs."""
        return 0 <= i < len(xs) and xs[i] == max(xs) and xs[i] not in xs[:i]
    ''',
    g="""
    def g(xs=...):
        return xs.index(max(xs))
    """,
    instances=make_instances(203, _argmax),
)


def _second_largest(rng: random.Random) -> dict[str, object]:
    xs = rng.sample(range(11, 99), rng.randint(5, 12))
    xs += [max(xs)] * rng.randint(0, 2) + rng.sample(xs, 2)
    rng.shuffle(xs)
    return {"xs": xs}


SECOND_LARGEST = Family(
    name="second_largest",
    f='''
    def f(v: int, xs=...) -> bool:
        """Find the second largest distinct value of xs."""
        return v in xs and len({x for x in xs if x > v}) == 1
    ''',
    g="""
    def g(xs=...):
        return sorted(set(xs))[-2]
    """,
    instances=make_instances(204, _second_largest),
)


def _rotation(rng: random.Random) -> dict[str, object]:
    xs = rng.sample(range(-30, 30), rng.randint(8, 16))
    k = rng.choice([k for k in range(3, len(xs)) if k != 10])
    return {"xs": xs, "ys": xs[k:] + xs[:k]}


ROTATION_AMOUNT = Family(
    name="rotation_amount",
    f='''
    def f(k: int, xs=..., ys=...) -> bool:
        """Find how many places xs must be rotated to the left to give ys."""
        return 0 <= k < len(xs) and xs[k:] + xs[:k] == ys
    ''',
    g="""
    def g(xs=..., ys=...):
        return xs.index(ys[0])
    """,
    instances=make_instances(205, _rotation),
)


def _two_sum(rng: random.Random) -> dict[str, object]:
    xs = _ints(rng, 6, 20, -40, 40)
    i, j = rng.sample(range(len(xs)), 2)
    return {"xs": xs, "target": xs[i] + xs[j]}


TWO_SUM = Family(
    name="two_sum_positions",
    f='''
    def f(ij: List[int], xs=..., target=...) -> bool:
        """Find two positions i < j in xs whose values add up to target; answer [i, j]."""
        return len(ij) == 2 and 0 <= ij[0] < ij[1] < len(xs) and xs[ij[0]] + xs[ij[1]] == target
    ''',
    g="""
    def g(xs=..., target=...):
        seen = {}
        for j, x in enumerate(xs):
            if target - x in seen:
                return [seen[target - x], j]
            seen.setdefault(x, j)
    """,
    instances=make_instances(206, _two_sum),
)

PREFIX_SUMS = Family(
    name="prefix_sums",
    f='''
    def f(ps: List[int], xs=...) -> bool:
        """Give the running totals of xs: element i is the sum of xs[0] .. xs[i]."""
        return (
            len(ps) == len(xs)
            and ps[0] == xs[0]
            and all(b - a == x for a, b, x in zip(ps, ps[1:], xs[1:]))
        )
    ''',
    g="""
    def g(xs=...):
        import itertools

        return list(itertools.accumulate(xs))
    """,
    instances=make_instances(207, lambda rng: {"xs": _ints(rng, 5, 14, -20, 30)}),
)

DEDUPE_IN_ORDER = Family(
    name="dedupe_in_order",
    f='''
    def f(ys: List[int], xs=...) -> bool:
        """Keep only the first occurrence of every value of xs, in the order they appear."""
        return (
            len(ys) == len(set(ys)) == len(set(xs))
            and set(ys) == set(xs)
            and all(xs.index(a) < xs.index(b) for a, b in zip(ys, ys[1:]))
        )
    ''',
    g="""
    def g(xs=...):
        return list(dict.fromkeys(xs))
    """,
    instances=make_instances(208, lambda rng: {"xs": _ints(rng, 8, 20, 4, 15)}),
)


def _max_subarray(rng: random.Random) -> dict[str, object]:
    xs = _ints(rng, 10, 25, -15, 12)
    best = max(sum(xs[i:j]) for i in range(len(xs)) for j in range(i + 1, len(xs) + 1))
    return {"xs": xs, "total": best}


MAX_SUBARRAY = Family(
    name="max_subarray_slice",
    f='''
    def f(ij: List[int], xs=..., total=...) -> bool:
        """Find a non-empty slice xs[i:j] whose sum is total, the largest sum of any slice; answer [i, j]."""
        return len(ij) == 2 and 0 <= ij[0] < ij[1] <= len(xs) and sum(xs[ij[0]:ij[1]]) == total
    ''',
    g="""
    def g(xs=..., total=...):
        best, best_ij = xs[0], [0, 1]
        run, start = 0, 0
        for j, x in enumerate(xs):
            if run <= 0:
                run, start = x, j
            else:
                run += x
            if run > best:
                best, best_ij = run, [start, j + 1]
        return best_ij
    """,
    instances=make_instances(209, _max_subarray),
    held_out=True,
)


def _majority(rng: random.Random) -> dict[str, object]:
    n = rng.randint(7, 21)
    value = rng.randint(11, 99)
    xs = [value] * (n // 2 + 1) + _ints(rng, n - n // 2 - 1, n - n // 2 - 1, 0, 99)
    rng.shuffle(xs)
    return {"xs": xs}


MAJORITY = Family(
    name="majority_value",
    f='''
    def f(m: int, xs=...) -> bool:
        """Find the value that fills more than half of xs."""
        return 2 * xs.count(m) > len(xs)
    ''',
    g="""
    def g(xs=...):
        candidate, votes = None, 0
        for x in xs:
            if votes == 0:
                candidate = x
            votes += 1 if x == candidate else -1
        return candidate
    """,
    instances=make_instances(210, _majority),
)


def _regroup(rng: random.Random) -> dict[str, object]:
    widths = [rng.randint(1, 5) for _ in range(rng.randint(3, 6))]
    return {"flat": _ints(rng, sum(widths), sum(widths), -9, 9), "widths": widths}


REGROUP_ROWS = Family(
    name="regroup_rows",
    f='''
    def f(rows: List[List[int]], flat=..., widths=...) -> bool:
        """Cut flat, in order, into consecutive rows with the given widths."""
        return [len(r) for r in rows] == widths and [x for r in rows for x in r] == flat
    ''',
    g="""
    def g(flat=..., widths=...):
        rows, start = [], 0
        for w in widths:
            rows.append(flat[start:start + w])
            start += w
        return rows
    """,
    instances=make_instances(211, _regroup),
)

EVENS_FIRST = Family(
    name="evens_first_stable",
    f='''
    def f(ys: List[int], xs=...) -> bool:
        """Reorder xs so all even values come before all odd ones, each group keeping its order."""
        return (
            [y for y in ys if y % 2 == 0] == [x for x in xs if x % 2 == 0]
            and [y for y in ys if y % 2] == [x for x in xs if x % 2]
            and all(a % 2 <= b % 2 for a, b in zip(ys, ys[1:]))
        )
    ''',
    g="""
    def g(xs=...):
        return [x for x in xs if x % 2 == 0] + [x for x in xs if x % 2]
    """,
    instances=make_instances(212, lambda rng: {"xs": _ints(rng, 6, 16, 3, 60)}),
)

FAMILIES = (
    BOUNDED_SUM,
    SORTED_COPY,
    FIRST_ARGMAX,
    SECOND_LARGEST,
    ROTATION_AMOUNT,
    TWO_SUM,
    PREFIX_SUMS,
    DEDUPE_IN_ORDER,
    MAX_SUBARRAY,
    MAJORITY,
    REGROUP_ROWS,
    EVENS_FIRST,
)
