"""Seed families on matrices written as lists of rows (List[List[int]])."""

from __future__ import annotations

import random

from puzzles.seeds.family import Family, make_instances

TOPIC = "matrices"


def _matrix(rng: random.Random, rows: int, cols: int, low: int = -9, high: int = 9) -> list[list[int]]:
    return [[rng.randint(low, high) for _ in range(cols)] for _ in range(rows)]


def _any_matrix(rng: random.Random) -> dict[str, object]:
    return {"m": _matrix(rng, rng.randint(2, 6), rng.randint(2, 6))}


TRANSPOSE = Family(
    name="transpose",
    f='''
    def f(t: List[List[int]], m=...) -> bool:
        """Give the transpose of m: row j of the answer is column j of m."""
        return [list(col) for col in zip(*m)] == t
    ''',
    g="""
    def g(m=...):
        return [[row[j] for row in m] for j in range(len(m[0]))]
    """,
    instances=make_instances(901, _any_matrix),
)

ROTATE_CLOCKWISE = Family(
    name="rotate_clockwise",
    f='''
    def f(r: List[List[int]], m=...) -> bool:
        """Turn m a quarter turn clockwise."""
        rows, cols = len(m), len(m[0])
        return (
            len(r) == cols
            and all(len(row) == rows for row in r)
            and all(r[j][rows - 1 - i] == m[i][j] for i in range(rows) for j in range(cols))
        )
    ''',
    g="""
    def g(m=...):
        return [list(row) for row in zip(*m[::-1])]
    """,
    instances=make_instances(902, _any_matrix),
)


def _cheapest_descent(rng: random.Random) -> dict[str, object]:
    grid = _matrix(rng, rng.randint(3, 7), rng.randint(3, 7), 0, 9)
    rows, cols = len(grid), len(grid[0])
    best = [[0] * cols for _ in range(rows)]
    for i in range(rows):
        for j in range(cols):
            before = [best[i - 1][j]] * (i > 0) + [best[i][j - 1]] * (j > 0)
            best[i][j] = grid[i][j] + (min(before) if before else 0)
    return {"grid": grid, "total": best[-1][-1]}


CHEAPEST_DESCENT = Family(
    name="cheapest_descent",
    f='''
    def f(moves: str, grid=..., total=...) -> bool:
        """Walk from the top-left to the bottom-right cell of grid with moves "R" (right) and "D"
        (down) so that the numbers on the visited cells, both ends included, add up to total."""
        r = c = 0
        seen = grid[0][0]
        for m in moves:
            if m not in "RD":
                return False
            r, c = (r + 1, c) if m == "D" else (r, c + 1)
            if r >= len(grid) or c >= len(grid[0]):
                return False
            seen += grid[r][c]
        return (r, c) == (len(grid) - 1, len(grid[0]) - 1) and seen == total
    ''',
    g="""
    def g(grid=..., total=...):
        rows, cols = len(grid), len(grid[0])
        best = {}
        for i in range(rows - 1, -1, -1):
            for j in range(cols - 1, -1, -1):
                options = []
                if i + 1 < rows:
                    options.append((best[(i + 1, j)][0], "D" + best[(i + 1, j)][1]))
                if j + 1 < cols:
                    options.append((best[(i, j + 1)][0], "R" + best[(i, j + 1)][1]))
                cost, path = min(options) if options else (0, "")
                best[(i, j)] = (cost + grid[i][j], path)
        return best[(0, 0)][1]
    """,
    instances=make_instances(903, _cheapest_descent),
    held_out=True,
)


def _latin(rng: random.Random) -> dict[str, object]:
    n = rng.randint(4, 8)
    return {"first": rng.sample(range(n), n)}


LATIN_SQUARE = Family(
    name="latin_square",
    f='''
    def f(square: List[List[int]], first=...) -> bool:
        """Complete a Latin square whose first row is first: every row and every column holds each of
        0 .. n-1 exactly once."""
        n = len(first)
        every = list(range(n))
        return (
            len(square) == n
            and square[0] == first
            and all(sorted(row) == every for row in square)
            and all(sorted(col) == every for col in zip(*square))
        )
    ''',
    g="""
    def g(first=...):
        return [first[i:] + first[:i] for i in range(len(first))]
    """,
    instances=make_instances(904, _latin),
)


def _saddle(rng: random.Random) -> dict[str, object]:
    m = _matrix(rng, rng.randint(3, 6), rng.randint(3, 6), 0, 50)
    r, c = rng.randrange(len(m)), rng.randrange(len(m[0]))
    m[r] = [x + 60 for x in m[r]]
    for row in m:
        row[c] = min(row[c], 55)
    m[r][c] = 58
    return {"m": m}


SADDLE_POINT = Family(
    name="saddle_point",
    f='''
    def f(rc: List[int], m=...) -> bool:
        """Find a cell [r, c] of m holding the smallest value of its row and the largest of its column."""
        if len(rc) != 2 or not (0 <= rc[0] < len(m) and 0 <= rc[1] < len(m[0])):
            return False
        value = m[rc[0]][rc[1]]
        return value == min(m[rc[0]]) and value == max(row[rc[1]] for row in m)
    ''',
    g="""
    def g(m=...):
        for r, row in enumerate(m):
            for c, value in enumerate(row):
                if value == min(row) and value == max(x[c] for x in m):
                    return [r, c]
    """,
    instances=make_instances(905, _saddle),
)

FAMILIES = (
    TRANSPOSE,
    ROTATE_CLOCKWISE,
    CHEAPEST_DESCENT,
    LATIN_SQUARE,
    SADDLE_POINT,
)
