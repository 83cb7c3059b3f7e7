"""Seed families on graphs given as edge lists or adjacency lists: orderings, paths, colourings."""

from __future__ import annotations

import heapq
import random
from collections import deque

from puzzles.seeds.family import Family, make_instances

TOPIC = "graphs"


def _dag(rng: random.Random) -> dict[str, object]:
    n = rng.randint(5, 12)
    order = rng.sample(range(n), n)
    pairs = [[order[i], order[j]] for i in range(n) for j in range(i + 1, n) if rng.random() < 0.3]
    rng.shuffle(pairs)
    return {"n": n, "edges": pairs}


TOPOLOGICAL_ORDER = Family(
    name="topological_order",
    f='''
    def f(order: List[int], n=..., edges=...) -> bool:
        """Order the nodes 0 .. n-1 so that every edge [a, b] goes from an earlier node to a later one."""
        if sorted(order) != list(range(n)):
            return False
        place = {v: i for i, v in enumerate(order)}
        return all(place[a] < place[b] for a, b in edges)
    ''',
    g="""
    def g(n=..., edges=...):
        indegree = [0] * n
        out = [[] for _ in range(n)]
        for a, b in edges:
            out[a].append(b)
            indegree[b] += 1
        ready = [v for v in range(n) if indegree[v] == 0]
        order = []
        while ready:
            v = ready.pop()
            order.append(v)
            for w in out[v]:
                indegree[w] -= 1
                if indegree[w] == 0:
                    ready.append(w)
        return order
    """,
    instances=make_instances(801, _dag),
)


def _bfs(adj: list[list[int]], src: int) -> dict[int, int]:
    dist = {src: 0}
    queue = deque([src])
    while queue:
        v = queue.popleft()
        for w in adj[v]:
            if w not in dist:
                dist[w] = dist[v] + 1
                queue.append(w)
    return dist


def _adjacency(rng: random.Random) -> dict[str, object]:
    while True:
        n = rng.randint(8, 15)
        adj: list[list[int]] = [[] for _ in range(n)]
        for _ in range(n + rng.randint(0, n // 2)):
            a, b = rng.sample(range(n), 2)
            if b not in adj[a]:
                adj[a].append(b)
                adj[b].append(a)
        src = rng.randrange(n)
        far = [v for v, d in _bfs(adj, src).items() if d >= 3]
        if far:
            dst = rng.choice(sorted(far))
            return {"adj": adj, "src": src, "dst": dst, "most": _bfs(adj, src)[dst]}


SHORTEST_PATH = Family(
    name="shortest_path",
    f='''
    def f(path: List[int], adj=..., src=..., dst=..., most=...) -> bool:
        """Walk from src to dst along edges of the graph (adj[v] lists the neighbours of v) using at
        most `most` edges; answer the nodes visited."""
        return (
            1 <= len(path) <= most + 1
            and path[0] == src
            and path[-1] == dst
            and all(b in adj[a] for a, b in zip(path, path[1:]))
        )
    ''',
    g="""
    def g(adj=..., src=..., dst=..., most=...):
        from collections import deque

        parent = {src: None}
        queue = deque([src])
        while queue:
            v = queue.popleft()
            for w in adj[v]:
                if w not in parent:
                    parent[w] = v
                    queue.append(w)
        path = [dst]
        while path[-1] != src:
            path.append(parent[path[-1]])
        return path[::-1]
    """,
    instances=make_instances(802, _adjacency),
)


def _dijkstra(n: int, edges: list[list[int]], src: int) -> dict[int, int]:
    out: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for a, b, w in edges:
        out[a].append((b, w))
        out[b].append((a, w))
    dist = {src: 0}
    heap = [(0, src)]
    while heap:
        d, v = heapq.heappop(heap)
        if d > dist[v]:
            continue
        for w, cost in out[v]:
            if d + cost < dist.get(w, d + cost + 1):
                dist[w] = d + cost
                heapq.heappush(heap, (d + cost, w))
    return dist


def _weighted(rng: random.Random) -> dict[str, object]:
    while True:
        n = rng.randint(6, 12)
        pairs = sorted({tuple(sorted(rng.sample(range(n), 2))) for _ in range(2 * n)})
        edges = [[a, b, rng.randint(1, 20)] for a, b in pairs]
        src, dst = rng.sample(range(n), 2)
        dist = _dijkstra(n, edges, src)
        direct = [w for a, b, w in edges if {a, b} == {src, dst}]
        if dst in dist and (not direct or direct[0] > dist[dst]):
            return {"n": n, "edges": edges, "src": src, "dst": dst, "cost": dist[dst]}


CHEAPEST_ROUTE = Family(
    name="cheapest_route",
    f='''
    def f(path: List[int], n=..., edges=..., src=..., dst=..., cost=...) -> bool:
        """Travel from src to dst over the two-way roads [a, b, toll] paying at most cost in tolls;
        answer the nodes visited."""
        toll = {}
        for a, b, w in edges:
            toll[(a, b)] = toll[(b, a)] = w
        steps = list(zip(path, path[1:]))
        return (
            path[:1] == [src]
            and path[-1:] == [dst]
            and all(step in toll for step in steps)
            and sum(toll[step] for step in steps) <= cost
        )
    ''',
    g="""
    def g(n=..., edges=..., src=..., dst=..., cost=...):
        import heapq

        out = [[] for _ in range(n)]
        for a, b, w in edges:
            out[a].append((b, w))
            out[b].append((a, w))
        best, parent = {src: 0}, {src: None}
        heap = [(0, src)]
        while heap:
            d, v = heapq.heappop(heap)
            if d > best[v]:
                continue
            for w, c in out[v]:
                if w not in best or d + c < best[w]:
                    best[w], parent[w] = d + c, v
                    heapq.heappush(heap, (d + c, w))
        path = [dst]
        while parent[path[-1]] is not None:
            path.append(parent[path[-1]])
        return path[::-1]
    """,
    instances=make_instances(803, _weighted),
    held_out=True,
)


def _bipartite(rng: random.Random) -> dict[str, object]:
    n = rng.randint(6, 14)
    side = [rng.randint(0, 1) for _ in range(n)]
    pairs = sorted(
        {(a, b) for a in range(n) for b in range(a + 1, n) if side[a] != side[b] and rng.random() < 0.35}
    )
    return {"n": n, "edges": [list(p) for p in pairs]}


TWO_COLORING = Family(
    name="two_coloring",
    f='''
    def f(colors: List[int], n=..., edges=...) -> bool:
        """Colour the nodes 0 .. n-1 with 0 and 1 so that every edge [a, b] joins different colours."""
        return len(colors) == n and set(colors) <= {0, 1} and all(colors[a] != colors[b] for a, b in edges)
    ''',
    g="""
    def g(n=..., edges=...):
        near = [[] for _ in range(n)]
        for a, b in edges:
            near[a].append(b)
            near[b].append(a)
        colors = [-1] * n
        for root in range(n):
            if colors[root] != -1:
                continue
            colors[root] = 0
            stack = [root]
            while stack:
                v = stack.pop()
                for w in near[v]:
                    if colors[w] == -1:
                        colors[w] = 1 - colors[v]
                        stack.append(w)
        return colors
    """,
    instances=make_instances(804, _bipartite),
)


def _components(rng: random.Random) -> dict[str, object]:
    n = rng.randint(6, 16)
    edges = [sorted(rng.sample(range(n), 2)) for _ in range(rng.randint(n // 3, n))]
    parent = list(range(n))

    def root(v: int) -> int:
        while parent[v] != v:
            v = parent[v]
        return v

    for a, b in edges:
        parent[root(a)] = root(b)
    return {"n": n, "edges": edges, "components": len({root(v) for v in range(n)})}


COMPONENT_LABELS = Family(
    name="component_labels",
    f='''
    def f(labels: List[int], n=..., edges=..., components=...) -> bool:
        """Label the nodes 0 .. n-1 so that nodes get the same label exactly when edges connect them;
        the graph has `components` connected pieces."""
        return (
            len(labels) == n
            and all(labels[a] == labels[b] for a, b in edges)
            and len(set(labels)) == components
        )
    ''',
    g="""
    def g(n=..., edges=..., components=...):
        parent = list(range(n))

        def root(v):
            while parent[v] != v:
                parent[v] = parent[parent[v]]
                v = parent[v]
            return v

        for a, b in edges:
            parent[root(a)] = root(b)
        return [root(v) for v in range(n)]
    """,
    instances=make_instances(805, _components),
)

FAMILIES = (
    TOPOLOGICAL_ORDER,
    SHORTEST_PATH,
    CHEAPEST_ROUTE,
    TWO_COLORING,
    COMPONENT_LABELS,
)
