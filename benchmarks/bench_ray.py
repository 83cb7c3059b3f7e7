"""Overhead of ``--sandbox ray``: the same pairs through the local Docker pool and through verifier
actors on a local two-node Ray cluster (``ray.cluster_utils.Cluster``, one CPU per node), in one run.

    python benchmarks/bench_ray.py --pairs 2000 --workers 2

Both get the same number of containers in all (``--workers``; on the cluster split evenly over the
nodes), the same pairs (bench_sandbox's trivial pairs) and the same warm-up: a few jobs per worker
before the clock starts, so every container of every actor is running. Start-up (Ray, actors,
containers) is printed separately. The timed batches alternate between the two, so load from other
work on the machine falls on both alike; the median of each is compared.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_sandbox import jobs_of, trivial_pairs  # noqa: E402  (benchmarks/, next to this file)

from sandbox.backend import Sandbox, open_sandbox  # noqa: E402
from sandbox.verdicts import VERIFIED  # noqa: E402

NODES = 2
NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024}


def quiet(message: str) -> None:
    pass


def open_warm(stack: ExitStack, open_box: Callable[[], Sandbox]) -> tuple[Sandbox, float]:
    """An open sandbox with every container of every actor running, and the seconds that took."""
    start = time.perf_counter()
    sandbox = stack.enter_context(open_box())
    sandbox.run(jobs_of(trivial_pairs(8 * sandbox.workers)))  # enough chunks to reach every actor's workers
    return sandbox, time.perf_counter() - start


def timed(sandbox: Sandbox, pairs: list[tuple[str, str]]) -> float:
    t0 = time.perf_counter()
    results = sandbox.run(jobs_of(pairs))
    elapsed = time.perf_counter() - t0
    bad = [r for r in results if r.status != VERIFIED]
    assert not bad, f"{sandbox.kind}: {len(bad)} pairs not verified, e.g. {bad[0]}"
    return len(pairs) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="containers in all (on the cluster: per node = this / 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed batches of each, alternating")
    args = parser.parse_args()
    import ray
    from ray.cluster_utils import Cluster

    pairs = trivial_pairs(args.pairs)
    per_node = max(1, args.workers // NODES)
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    for _ in range(NODES - 1):
        cluster.add_node(**NODE)
    ray.init(address=cluster.address, log_to_driver=False)
    rates: dict[str, list[float]] = {"docker": [], "ray": []}
    try:
        with ExitStack() as stack:
            local, local_start = open_warm(stack, lambda: open_sandbox("docker", workers=args.workers, log=quiet))
            box, ray_start = open_warm(stack, lambda: open_sandbox("ray", workers=per_node, log=quiet))
            for _ in range(args.repeats):  # alternating, so load from elsewhere hits both alike
                rates["docker"].append(timed(local, pairs))
                rates["ray"].append(timed(box, pairs))
    finally:
        ray.shutdown()
        cluster.shutdown()
    local_rate, ray_rate = statistics.median(rates["docker"]), statistics.median(rates["ray"])
    chunks = ", ".join(f"{s.where}: {s.chunks_done}" for s in box.pool.slots)

    def each(kind: str) -> str:
        return ", ".join(f"{r:.1f}" for r in rates[kind])

    print(f"{args.pairs} trivial pairs, {args.workers} containers in all, median of {args.repeats} alternating batches")
    print(f"{'local docker pool':36s} {local_rate:8.1f} pairs/s   (start {local_start:.2f} s; {each('docker')})")
    print(
        f"{f'ray, {NODES} nodes x {per_node} workers':36s} {ray_rate:8.1f} pairs/s   (start {ray_start:.2f} s; "
        f"{each('ray')}; chunks per actor {chunks})"
    )
    print(f"ratio ray / local docker pool: {ray_rate / local_rate:.2f}")


if __name__ == "__main__":
    main()
