"""``--sandbox ray`` on a real two-node Ray cluster on this machine (a head and a worker node, one CPU
each): the local pool's verdicts, nothing lost or doubled when an actor or a node dies mid-batch, a
batch that fails as a whole when no actor is left, a node without Docker named at start, and no
container left behind. One cluster for the module keeps the added time small.
"""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

from sandbox.backend import open_sandbox  # noqa: E402
from sandbox.engine import OWNER_LABEL, SandboxUnavailable, docker_client, sandbox_containers  # noqa: E402
from sandbox.verdicts import ERROR, TIMEOUT, VERIFIED, WRONG  # noqa: E402
from sandbox.verify import SourcePair, verify_pairs  # noqa: E402
from tests.sandbox.test_adversarial import CASES, LEGIT  # noqa: E402
from tests.sandbox.test_adversarial import TIMEOUT_S as CATALOGUE_TIMEOUT_S  # noqa: E402

pytestmark = pytest.mark.docker

NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024}
QUIET = {"log": lambda m: None}
CATALOGUE = (
    "infinite loop", "memory bomb", "fork", "kill the worker", "stdout flood", "True for an int",
    "hostile __eq__ object", "forged reply on every fd", "network", "error only the compiler finds",
)  # fmt: skip


def numbered(i: int) -> SourcePair:
    return SourcePair(f"def f(x: int, n={i}):\n    return x == n * 3\n", f"def g(n={i}):\n    return n * 3\n")


def mixed_batch() -> tuple[list[SourcePair], list[str]]:
    """Verified, wrong, error and timeout pairs and some of the adversarial catalogue, with the verdict
    each must get."""
    pairs, expected = [], []
    for i in range(24):
        pair, verdict = numbered(i), VERIFIED
        if i % 6 == 1:
            pair, verdict = SourcePair(pair.f, f"def g(n={i}):\n    return n * 3 + 1\n"), WRONG
        elif i % 6 == 3:
            pair, verdict = SourcePair(pair.f, "def g():\n    return 1 // 0\n"), ERROR
        elif i == 10:
            pair, verdict = SourcePair(pair.f, "def g():\n    while True:\n        pass\n"), TIMEOUT
        pairs.append(pair)
        expected.append(verdict)
    for name in CATALOGUE:
        f, g, verdict = CASES[name]
        pairs += [SourcePair(f, g), LEGIT]
        expected += [verdict, VERIFIED]
    return pairs, expected


@pytest.fixture(scope="module")
def cluster(docker_ready):
    if ray.is_initialized():
        ray.shutdown()
    # Fast node-death detection, so a lost node is noticed within a few seconds.
    head = {**NODE, "include_dashboard": False,
            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4}}  # fmt: skip
    cluster = Cluster(initialize_head=True, head_node_args=head)
    cluster.add_node(**NODE)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def worker_node(cluster):
    (node,) = cluster.worker_nodes
    return node


def containers_of(owners: set[str]) -> list:
    return [c for c in sandbox_containers(docker_client()) if c.labels.get(OWNER_LABEL) in owners]


class Delivered:
    """An ``on_result`` that counts deliveries per index, and does ``then`` once, at the first."""

    def __init__(self, then=None):
        self.counts: dict[int, int] = {}
        self.then = then

    def __call__(self, index: int, result) -> None:
        self.counts[index] = self.counts.get(index, 0) + 1
        if self.then is not None:
            then, self.then = self.then, None
            then()


def test_two_nodes_give_the_local_pools_verdicts(cluster):
    pairs, expected = mixed_batch()
    with open_sandbox("docker", workers=2, **QUIET) as local:
        local_results = verify_pairs(pairs, local, timeout_s=CATALOGUE_TIMEOUT_S)
    assert [r.status for r in local_results] == expected
    delivered = Delivered()
    with open_sandbox("ray", workers=1, **QUIET) as box:
        pool = box.pool
        assert box.kind == "ray" and len(pool.slots) == 2 and box.workers == 2
        assert {s.node_id for s in pool.slots} == {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        results = verify_pairs(pairs, box, timeout_s=CATALOGUE_TIMEOUT_S, on_result=delivered)
        assert all(s.chunks_done > 0 for s in pool.slots), "both nodes got work"
        owners = {s.owner for s in pool.slots}
        assert len(containers_of(owners)) == 2  # one warm container per actor
    assert [(r.status, r.detail) for r in results] == [(r.status, r.detail) for r in local_results]
    # every verdict once; the one invalid pair never reached the sandbox and is reported by verify_pairs
    assert sorted(delivered.counts) == list(range(len(pairs))) and set(delivered.counts.values()) == {1}
    assert containers_of(owners) == []


def test_factory_verify_runs_on_the_cluster(cluster, tmp_path):
    from factory.cli.main import main

    pairs, expected = mixed_batch()
    pairs, expected = pairs[:12], expected[:12]
    path, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    path.write_text("".join(json.dumps({"id": i, "f": p.f, "g": p.g}) + "\n" for i, p in enumerate(pairs)))
    argv = ["verify", str(path), "--out", str(out), "--sandbox", "ray", "--ray-address", cluster.address]
    assert main([*argv, "--workers", "1"]) == 0
    assert [json.loads(line)["status"] for line in out.read_text().splitlines()] == expected


def run_losing(kill, count: int = 96):
    """``count`` pairs (every 7th wrong) on a fresh two-actor sandbox; ``kill(pool)`` at the first verdict."""
    pairs = [numbered(i) for i in range(count)]
    for i in range(0, count, 7):
        pairs[i] = SourcePair(pairs[i].f, f"def g(n={i}):\n    return n\n")
    expected = [WRONG if i % 7 == 0 and i else VERIFIED for i in range(count)]  # 0 * 3 == 0 verifies
    box = open_sandbox("ray", workers=1, **QUIET)
    delivered = Delivered(lambda: kill(box.pool))
    try:
        results = verify_pairs(pairs, box, on_result=delivered)
    finally:
        box.close()
    assert [r.status for r in results] == expected
    assert sorted(delivered.counts) == list(range(count)) and set(delivered.counts.values()) == {1}
    assert box.pool.redispatched >= 1 and len(box.pool.lost) == 1
    assert containers_of({s.owner for s in box.pool.slots}) == []
    return box.pool


def idle_slot(pool):
    """The actor that has delivered nothing yet: both of its chunks are still in flight."""
    return next(s for s in pool.slots if s.chunks_done == 0)


def test_an_actor_killed_mid_batch_loses_nothing(cluster):
    run_losing(lambda pool: ray.kill(idle_slot(pool).handle))


def test_no_actor_left_fails_the_batch_as_a_whole(cluster):
    # wrong pairs among them: a verified pair's verdict is delivered only after its second run
    pairs = [numbered(i) if i % 7 else SourcePair(numbered(i).f, f"def g(n={i}):\n    return n * 3 + 1\n") for i in range(48)]
    with open_sandbox("ray", workers=1, **QUIET) as box:
        delivered = Delivered(lambda: [ray.kill(s.handle) for s in box.pool.slots])
        with pytest.raises(SandboxUnavailable, match="lost every verifier actor"):
            verify_pairs(pairs, box, on_result=delivered)
        assert set(delivered.counts.values()) == {1} and len(delivered.counts) < len(pairs)
        owners = {s.owner for s in box.pool.slots}
    assert containers_of(owners) == []


def test_a_node_lost_mid_batch_loses_nothing(cluster):
    node = worker_node(cluster)
    pool = run_losing(lambda pool: cluster.remove_node(node))
    assert pool.lost[0].node_id == node.node_id  # the head node is left for the next test


def test_a_node_without_docker_says_so_at_start(cluster):
    """A node whose raylet (so every worker on it) sees no engine, beside the head node, which does."""
    node = cluster.add_node(**NODE, env_vars={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    try:
        with pytest.raises(SandboxUnavailable) as caught:
            open_sandbox("ray", workers=1, **QUIET)
        message = str(caught.value)
        assert node.node_id[:8] in message and "Docker" in message, message
        assert message.count("node ") == 1, "only the node without Docker is named"
    finally:
        cluster.remove_node(node)


class LosesANode:
    """The ray sandbox of a round; at the first verdict of the first solve-sized batch (``jobs`` or
    more), ``lose()`` once."""

    def __init__(self, box, jobs: int, lose):
        self.box, self.jobs, self.lose = box, jobs, lose
        self.kind, self.workers, self.note = box.kind, box.workers, box.note

    def run(self, jobs, on_result=None):
        if self.lose is None or len(jobs) < self.jobs:
            return self.box.run(jobs, on_result)
        lose, self.lose = self.lose, None

        def first_then_lose(index, result):
            nonlocal lose
            if lose is not None:
                lose, then = None, lose
                then()
            if on_result is not None:
                on_result(index, result)

        return self.box.run(jobs, first_then_lose)

    def __getattr__(self, name):
        return getattr(self.box, name)


def test_a_round_that_loses_a_node_mid_solve_stores_what_an_uninterrupted_round_stores(cluster, tmp_path):
    """The whole loop (``run_rounds``) on the cluster, a worker node removed at the first verdict of a
    solve batch: its chunks run again on the other actors, and the store holds what the same round on
    the local Docker pool stores (every proposal, puzzle, attempt and verdict, pair and evaluation)."""
    from dataclasses import replace

    from factory.loop.context import prepare_run
    from factory.loop.rounds import rounds_finished, run_rounds
    from tests.factory.loop.test_run import store_contents
    from tests.factory.played_run import QuietEvents, played_config
    from tests.factory.scripted_model import ScriptedModelServer

    server = ScriptedModelServer()
    config = replace(played_config(server.base_url), batch_size=8, eval_limit=2)  # one solve batch of ~30 jobs
    node = cluster.add_node(**NODE)

    def one_round(run_dir, sandbox) -> dict:
        with prepare_run(run_dir, config, sandbox, log=lambda m: None, show_progress=False) as ctx:
            assert run_rounds(ctx, rounds_finished(1), QuietEvents()) == "1 rounds are finished"
        return store_contents(run_dir)

    try:
        with open_sandbox("docker", workers=2, **QUIET) as local:
            expected = one_round(tmp_path / "local", local)
        assert expected["pairs"] and {a[4] for a in expected["attempts"]} >= {VERIFIED, WRONG}
        with open_sandbox("ray", workers=1, **QUIET) as box:
            assert node.node_id in {s.node_id for s in box.pool.slots}
            got = one_round(tmp_path / "ray", LosesANode(box, 16, lambda: cluster.remove_node(node)))
            pool = box.pool
            assert [s.node_id for s in pool.lost] == [node.node_id] and pool.redispatched >= 1
            owners = {s.owner for s in pool.slots}
        assert got == expected
        assert containers_of(owners) == []
    finally:
        server.close()
        if node in cluster.worker_nodes:
            cluster.remove_node(node)
