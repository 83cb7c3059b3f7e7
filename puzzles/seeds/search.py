"""Seed families solved by search: brute force, binary search, BFS on grids and words, subset sums."""

from __future__ import annotations

import functools
import random
from collections import deque

from puzzles.seeds.family import Family, make_instances, template_function

TOPIC = "search"


@functools.cache
def _collatz_steps(n: int) -> int:
    """Steps of the 3n+1 walk from n to 1 (at most a few hundred below 10,000: recursion is safe)."""
    return 0 if n == 1 else 1 + _collatz_steps(n // 2 if n % 2 == 0 else 3 * n + 1)


def _collatz(rng: random.Random) -> dict[str, object]:
    limit = rng.randint(300, 6000)
    return {"limit": limit, "steps": max(_collatz_steps(n) for n in range(1, limit + 1)) - rng.randint(0, 3)}


LONG_COLLATZ = Family(
    name="long_collatz_start",
    f='''
    def f(n: int, limit=..., steps=...) -> bool:
        """Find a start between 1 and limit from which the 3n+1 walk (halve if even, else 3n+1)
        takes at least `steps` steps to reach 1."""
        if not 1 <= n <= limit:
            return False
        count = 0
        while n != 1:
            n = n // 2 if n % 2 == 0 else 3 * n + 1
            count += 1
        return count >= steps
    ''',
    g="""
    def g(limit=..., steps=...):
        known = {1: 0}

        def length(n):
            path = []
            while n not in known:
                path.append(n)
                n = n // 2 if n % 2 == 0 else 3 * n + 1
            total = known[n]
            for m in reversed(path):
                total += 1
                known[m] = total
            return total

        return max(range(1, limit + 1), key=length)
    """,
    instances=make_instances(501, _collatz),
)

_GRID_G = """
    def g(grid=...):
        from collections import deque

        start = next((i, row.index("S")) for i, row in enumerate(grid) if "S" in row)
        paths = {start: ""}
        queue = deque([start])
        while queue:
            r, c = queue.popleft()
            if grid[r][c] == "G":
                return paths[(r, c)]
            for m, (dr, dc) in (("U", (-1, 0)), ("D", (1, 0)), ("L", (0, -1)), ("R", (0, 1))):
                nr, nc = r + dr, c + dc
                inside = 0 <= nr < len(grid) and 0 <= nc < len(grid[0])
                if inside and grid[nr][nc] != "#" and (nr, nc) not in paths:
                    paths[(nr, nc)] = paths[(r, c)] + m
                    queue.append((nr, nc))
"""
_grid_path = template_function(_GRID_G)  # the seed's own BFS: the instance generator keeps only solvable grids


def _grid(rng: random.Random) -> dict[str, object]:
    while True:
        rows, cols = rng.randint(5, 9), rng.randint(6, 12)
        cells = [["#" if rng.random() < 0.3 else "." for _ in range(cols)] for _ in range(rows)]
        cells[rng.randrange(rows)][0] = "S"
        cells[rng.randrange(rows)][cols - 1] = "G"
        grid = ["".join(row) for row in cells]
        path = _grid_path(grid)
        if path is not None and len(path) >= 6:
            return {"grid": grid}


GRID_WALK = Family(
    name="grid_walk",
    f='''
    def f(moves: str, grid=...) -> bool:
        """Give moves (letters U, D, L, R) that walk from S to G in grid without leaving it or
        stepping on a wall '#'."""
        step = {"U": (-1, 0), "D": (1, 0), "L": (0, -1), "R": (0, 1)}
        r, c = next((i, row.index("S")) for i, row in enumerate(grid) if "S" in row)
        for m in moves:
            if m not in step:
                return False
            r, c = r + step[m][0], c + step[m][1]
            if not (0 <= r < len(grid) and 0 <= c < len(grid[0])) or grid[r][c] == "#":
                return False
        return grid[r][c] == "G"
    ''',
    g=_GRID_G,
    instances=make_instances(502, _grid),
)


def _subset_sum(rng: random.Random) -> dict[str, object]:
    xs = [rng.randint(1, 60) for _ in range(rng.randint(10, 16))]
    return {"xs": xs, "target": sum(rng.sample(xs, rng.randint(4, 7)))}


SUBSET_SUM = Family(
    name="subset_sum_positions",
    f='''
    def f(idx: List[int], xs=..., target=...) -> bool:
        """Choose distinct positions of xs whose values add up to target."""
        return (
            len(set(idx)) == len(idx)
            and all(0 <= i < len(xs) for i in idx)
            and sum(xs[i] for i in idx) == target
        )
    ''',
    g="""
    def g(xs=..., target=...):
        reach = {0: []}
        for i, x in enumerate(xs):
            for total, idx in list(reach.items()):
                if total + x <= target and total + x not in reach:
                    reach[total + x] = idx + [i]
        return reach[target]
    """,
    instances=make_instances(503, _subset_sum),
)


def _ladder(rng: random.Random) -> dict[str, object]:
    letters = "abcdefghijklmnoprstu"
    while True:
        chain = ["".join(rng.choice(letters) for _ in range(4))]
        while len(chain) < 7:
            word = list(chain[-1])
            word[rng.randrange(4)] = rng.choice(letters)
            if "".join(word) not in chain:
                chain.append("".join(word))
        extra = set()
        for w in rng.sample(chain, 4):
            for _ in range(2):
                word = list(w)
                word[rng.randrange(4)] = rng.choice(letters)
                extra.add("".join(word))
        vocab = sorted(set(chain[1:]) | (extra - {chain[0]}))
        distance = _ladder_distance(chain[0], chain[-1], vocab)
        if distance is not None and distance >= 3:
            return {"start": chain[0], "end": chain[-1], "vocab": vocab, "most": distance + 1}


def _ladder_distance(start: str, end: str, vocab: list[str]) -> int | None:
    seen = {start: 0}
    queue = deque([start])
    while queue:
        w = queue.popleft()
        if w == end:
            return seen[w]
        for v in vocab:
            if v not in seen and sum(a != b for a, b in zip(v, w, strict=True)) == 1:
                seen[v] = seen[w] + 1
                queue.append(v)
    return None


WORD_LADDER = Family(
    name="word_ladder",
    f='''
    def f(path: List[str], start=..., end=..., vocab=..., most=...) -> bool:
        """Go from start to end in at most `most` words, changing one letter at a time, every word
        after start taken from vocab."""
        return (
            1 <= len(path) <= most
            and path[0] == start
            and path[-1] == end
            and all(w in vocab for w in path[1:])
            and all(len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1 for a, b in zip(path, path[1:]))
        )
    ''',
    g="""
    def g(start=..., end=..., vocab=..., most=...):
        from collections import deque

        parent = {start: None}
        queue = deque([start])
        while queue:
            w = queue.popleft()
            if w == end:
                break
            for v in vocab:
                if v not in parent and len(v) == len(w) and sum(x != y for x, y in zip(v, w)) == 1:
                    parent[v] = w
                    queue.append(v)
        path = [end]
        while parent[path[-1]] is not None:
            path.append(parent[path[-1]])
        return path[::-1]
    """,
    instances=make_instances(504, _ladder),
    held_out=True,
)

CUBE_ROOT_CEILING = Family(
    name="cube_root_ceiling",
    f='''
    def f(x: int, n=...) -> bool:
        """Find the smallest integer whose cube is at least n."""
        return x ** 3 >= n and (x - 1) ** 3 < n
    ''',
    g="""
    def g(n=...):
        lo, hi = 0, 1
        while hi ** 3 < n:
            hi *= 2
        while lo < hi:
            mid = (lo + hi) // 2
            if mid ** 3 >= n:
                hi = mid
            else:
                lo = mid + 1
        return lo
    """,
    instances=make_instances(505, lambda rng: {"n": rng.randint(10**20, 10**45)}),
)


def _coins(rng: random.Random) -> dict[str, object]:
    denoms = sorted({1, *rng.sample(range(3, 40), rng.randint(2, 4))})
    amount = rng.randint(30, 300)
    best = [0] + [amount + 1] * amount
    for a in range(1, amount + 1):
        best[a] = min(best[a - d] + 1 for d in denoms if d <= a)
    return {"denoms": denoms, "amount": amount, "count": best[amount]}


FEWEST_COINS = Family(
    name="fewest_coins",
    f='''
    def f(coins: List[int], denoms=..., amount=..., count=...) -> bool:
        """Pay exactly amount with at most `count` coins, each of a value in denoms."""
        return len(coins) <= count and all(c in denoms for c in coins) and sum(coins) == amount
    ''',
    g="""
    def g(denoms=..., amount=..., count=...):
        best = {0: []}
        for a in range(1, amount + 1):
            for d in denoms:
                if d <= a and a - d in best and (a not in best or len(best[a - d]) + 1 < len(best[a])):
                    best[a] = best[a - d] + [d]
        return best[amount]
    """,
    instances=make_instances(506, _coins),
)


def _remainder_pair(rng: random.Random) -> dict[str, object]:
    m = rng.randint(5, 30)
    return {"xs": rng.sample(range(-500, 500), m + 1), "m": m}


SAME_REMAINDER = Family(
    name="same_remainder_pair",
    f='''
    def f(ij: List[int], xs=..., m=...) -> bool:
        """Find positions i < j of xs whose values leave the same remainder modulo m; answer [i, j]."""
        return len(ij) == 2 and 0 <= ij[0] < ij[1] < len(xs) and xs[ij[0]] % m == xs[ij[1]] % m
    ''',
    g="""
    def g(xs=..., m=...):
        first = {}
        for j, x in enumerate(xs):
            if x % m in first:
                return [first[x % m], j]
            first[x % m] = j
    """,
    instances=make_instances(507, _remainder_pair),
)

FAMILIES = (
    LONG_COLLATZ,
    GRID_WALK,
    SUBSET_SUM,
    WORD_LADDER,
    CUBE_ROOT_CEILING,
    FEWEST_COINS,
    SAME_REMAINDER,
)
