"""``--sandbox ray``: verification spread over a Ray cluster, one warm Docker pool per node.

One verifier actor per live node with a CPU, pinned there (node affinity, not soft). Each actor owns an
ordinary Docker sandbox (``open_docker_sandbox``: the same hardened containers, the same WorkerPool,
the same sweep of dead runs' containers at start, f's hash seeds derived from the driver's installation
secret so that every node gives the same verdicts) and runs whole chunks of a batch on it. The driver
keeps two chunks queued per actor, so an actor never waits for the next one, and puts verdicts back
in input order.

Exactly once: a chunk's verdicts are delivered (``on_result``, the results list) only when the whole
chunk comes back from its actor, and each chunk once. A chunk whose actor or node is lost (any Ray
error on its result) goes back to the queue with every other chunk in flight at that actor, and runs
again on a live actor: nothing of a lost chunk was delivered, so nothing is delivered twice or made
up. The lost actor is killed (so a half-dead one cannot keep working) and never used again. When no
actor is left the batch fails as a whole with ``SandboxUnavailable``, as the local pool does when no
container can start.

Containers: every container carries the owner label of the actor process that made it (host, pid and
start time; ``DockerLink``). Ray does not remove them when an actor dies, so the driver removes a lost
actor's containers by that label on every node it uses (a task pinned to each node, on that node's
engine), again at close, and from its own engine when it has one; a machine whose node left the
cluster altogether has them removed by the next sandbox started there (owner process dead).
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sandbox.engine import (
    OWNER_LABEL,
    SandboxUnavailable,
    docker_client,
    owner_id,
    remove_containers,
    sandbox_containers,
)
from sandbox.installation import HashSeeds
from sandbox.interface import Sandbox
from sandbox.links import WorkerLimits
from sandbox.local import default_workers, open_docker_sandbox
from sandbox.ray_chunks import error_line, run_chunks
from sandbox.verdicts import Job, Result

RAY_ADDRESS_ENV = "RAY_ADDRESS"
ACTOR_CPUS = 1  # Ray CPUs an actor reserves (its host-side threads); containers get Docker's CPU quota
IN_FLIGHT_PER_ACTOR = 2  # chunks queued at an actor: one running, the next already there
# A chunk ends when its slowest job does, so it holds many jobs per worker (little idle time at its end),
# yet a lost chunk costs only its own rework. Small batches are cut finer, so every actor gets some.
CHUNK_JOBS_PER_WORKER = 16
MIN_CHUNK_CAP = 64
START_TIMEOUT_S = 600.0  # an actor may build the image on its node first
CLOSE_TIMEOUT_S = 90.0  # as the local pool waits for containers being started (pool.CLOSE_WAIT_S)
SWEEP_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
LOCAL_RAY_CPUS = 1  # a Ray started here only places the one actor (1 CPU) and sweeps (0 CPU)
LOCAL_OBJECT_STORE_BYTES = 100 * 1024 * 1024  # chunks and verdicts are small


def import_ray():
    try:
        import ray
    except ImportError as e:
        raise SandboxUnavailable(
            "--sandbox ray needs Ray on every node: pip install 'selfplay-factory[ray]'"
        ) from e
    return ray


class VerifierActor:
    """The body of one verifier actor: an ordinary Docker sandbox on the actor's node.

    Made a Ray actor by ``_actor_class`` (Ray is optional, so this module imports without it). A start
    error (no engine, no image) is returned as text, not raised: the driver turns every node's reason
    into one message.
    """

    def __init__(self) -> None:
        self.sandbox: Sandbox | None = None
        self.notes: list[str] = []  # the pool's log lines, handed to the driver with each reply

    def start(
        self, workers: int | None, limits: WorkerLimits, hash_seeds: HashSeeds, build_missing_image: bool
    ) -> dict:
        import ray

        info = {
            "node_id": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(),
            "owner": owner_id(),  # the owner label of every container this actor makes
        }
        try:
            self.sandbox = open_docker_sandbox(
                workers or default_workers(), limits, hash_seeds, build_missing_image, self.notes.append
            )
        except SandboxUnavailable as e:
            return {**info, "error": str(e)}
        return {**info, "workers": self.sandbox.workers, "note": self.sandbox.note, "notes": self._take_notes()}

    def run(self, jobs: list[Job]) -> dict:
        assert self.sandbox is not None, "start() first"
        results = self.sandbox.run(jobs)
        return {"results": results, "replaced": self.sandbox.pool.replaced, "notes": self._take_notes()}

    def close(self) -> None:
        """Remove every container, even while a chunk runs (its run then fails; the driver is done)."""
        if self.sandbox is not None:
            self.sandbox.close()

    def _take_notes(self) -> list[str]:
        notes, self.notes = self.notes, []
        return notes


def remove_owned_containers(owners: list[str]) -> int:
    """Remove the sandbox containers of these owners from this machine's engine."""
    wanted = set(owners)
    client = docker_client(timeout_s=SWEEP_TIMEOUT_S)
    return remove_containers([c for c in sandbox_containers(client) if c.labels.get(OWNER_LABEL) in wanted])


_REMOTE: dict[str, object] = {}


def _actor_class(ray):
    if "actor" not in _REMOTE:
        # No restarts: a restarted actor would be a new pool anyway, and its lost chunks are re-sent here.
        # close() has a thread of its own ("control"), so it never waits behind queued chunks.
        _REMOTE["actor"] = ray.remote(
            num_cpus=ACTOR_CPUS, max_restarts=0, max_task_retries=0, concurrency_groups={"control": 1}
        )(VerifierActor)
    return _REMOTE["actor"]


def _sweep_task(ray):
    if "sweep" not in _REMOTE:
        _REMOTE["sweep"] = ray.remote(num_cpus=0, max_retries=0)(remove_owned_containers)
    return _REMOTE["sweep"]


def _on_node(node_id: str):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


@dataclass
class ActorSlot:
    """One verifier actor as the driver sees it."""

    handle: object
    node_id: str
    where: str  # the node, for messages: address and the start of its id
    owner: str = ""
    workers: int = 0
    note: str = ""
    alive: bool = True
    closed: bool = False  # its pool closed cleanly: none of its containers is left
    replaced: int = 0
    chunks_done: int = 0


class RayPool:
    """Verifier actors fed in chunks; the pool interface the ``Sandbox`` wrapper and the metrics read
    (``run``, ``close``, ``size``, ``links``, ``replaced``)."""

    def __init__(
        self,
        ray,
        slots: list[ActorSlot],
        log: Callable[[str], None],
        own_ray: bool,
    ):
        self.ray = ray
        self.slots = slots
        self.log = log
        self.own_ray = own_ray  # started by us: shut down at close
        self.size = sum(s.workers for s in slots)
        self.redispatched = 0  # chunks sent again after their actor was lost
        self.lost: list[ActorSlot] = []
        self._sweeps: list = []  # sweep tasks still running
        self._closed = False

    @property
    def replaced(self) -> int:
        return sum(s.replaced for s in self.slots)

    @property
    def links(self) -> list:
        """One entry per container slot: the actor holding it, None where the actor was lost."""
        return [s.handle if s.alive else None for s in self.slots for _ in range(s.workers)]

    def live(self) -> list[ActorSlot]:
        return [s for s in self.slots if s.alive]

    def run(self, jobs: Sequence[Job], on_result: Callable[[int, Result], None] | None = None) -> list[Result]:
        if self._closed:
            raise RuntimeError("the sandbox is closed")
        results: list[Result | None] = [None] * len(jobs)
        if not jobs:
            return []
        live = self.live()
        if not live:
            raise SandboxUnavailable("the Ray sandbox has no verifier actor left")
        cap = max(MIN_CHUNK_CAP, CHUNK_JOBS_PER_WORKER * max(s.workers for s in live))
        per_chunk = max(1, min(cap, math.ceil(len(jobs) / (IN_FLIGHT_PER_ACTOR * len(live)))))
        chunks = [range(s, min(s + per_chunk, len(jobs))) for s in range(0, len(jobs), per_chunk)]

        def deliver(slot: ActorSlot, chunk: int, reply: dict) -> None:
            slot.replaced = reply["replaced"]
            slot.chunks_done += 1
            for note in reply["notes"]:
                self.log(f"sandbox: ray {slot.where}: {note}")
            for index, result in zip(chunks[chunk], reply["results"], strict=True):
                results[index] = result
                if on_result is not None:
                    on_result(index, result)

        def none_left(last_loss: str, undone: int) -> SandboxUnavailable:
            return SandboxUnavailable(
                f"the Ray sandbox lost every verifier actor ({last_loss}); {undone} of {len(chunks)} "
                "chunks of the batch had no verdicts, so the batch is abandoned"
            )

        self.redispatched += run_chunks(
            self.ray,
            len(chunks),
            self.live,
            lambda slot, chunk: slot.handle.run.remote([jobs[i] for i in chunks[chunk]]),
            deliver,
            lambda slot, error, back: self._lose(slot, f"{error_line(error)}; {back} chunk(s) sent to the other actors"),
            none_left,
            in_flight_per_worker=IN_FLIGHT_PER_ACTOR,
        )
        return results  # type: ignore[return-value]

    def _lose(self, slot: ActorSlot, why: str) -> None:
        """Never use ``slot`` again: kill its actor and remove its containers on every node we use."""
        slot.alive = False
        self.lost.append(slot)
        self.log(f"sandbox: ray verifier actor on {slot.where} lost ({why})")
        kill_actor(self.ray, slot)
        self._sweep([slot.owner], {s.node_id for s in self.slots})

    def _sweep(self, owners: list[str], node_ids: set[str]) -> None:
        """Containers of dead actors, removed by a task on each node (on its own engine). A node that
        is gone fails its task; that machine's next sandbox start sweeps them (their owner is dead)."""
        owners = [o for o in owners if o]
        if not owners:
            return
        task = _sweep_task(self.ray)
        self._sweeps += [task.options(scheduling_strategy=_on_node(n)).remote(owners) for n in sorted(node_ids)]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        ray = self.ray
        try:
            closing = {s.handle.close.options(concurrency_group="control").remote(): s for s in self.live()}
            done, _ = ray.wait(list(closing), num_returns=len(closing), timeout=CLOSE_TIMEOUT_S)
            for ref in done:
                try:
                    ray.get(ref)
                    closing[ref].closed = True  # its pool removed its containers
                except ray.exceptions.RayError as e:
                    self.log(f"sandbox: closing the ray verifier actor on {closing[ref].where} failed: {error_line(e)}")
            for slot in self.slots:
                kill_actor(self.ray, slot)
            unclosed = [s.owner for s in self.slots if not s.closed]
            self._sweep(unclosed, {s.node_id for s in self.slots})
            self._wait_for_sweeps()
            self._sweep_here(unclosed)
        finally:
            if self.own_ray:
                ray.shutdown()

    def _wait_for_sweeps(self) -> None:
        ray = self.ray
        if not self._sweeps:
            return
        done, _ = ray.wait(self._sweeps, num_returns=len(self._sweeps), timeout=SWEEP_TIMEOUT_S)
        for ref in done:
            try:
                ray.get(ref)
            except ray.exceptions.RayError:
                pass  # a node that is gone: see _sweep
        self._sweeps = []

    def _sweep_here(self, owners: list[str]) -> None:
        """The driver's own engine too, when it has one: it may be the engine of a node that is gone."""
        if not owners:
            return
        try:
            removed = remove_owned_containers(owners)
        except SandboxUnavailable:
            return
        if removed:
            self.log(f"sandbox: removed {removed} container(s) of lost ray verifier actors")


def resolve_address(ray_address: str | None) -> str | None:
    """``--ray-address`` / the daemon's ``ray_address``, else ``RAY_ADDRESS``; None: a local Ray."""
    return ray_address or os.environ.get(RAY_ADDRESS_ENV) or None


def connect(ray, address: str | None) -> bool:
    """Connect to ``address`` (or start a local Ray); True when we started or joined it ourselves and
    must shut it down. A driver already connected (an embedding program, the tests) keeps its Ray."""
    if ray.is_initialized():
        return False
    if address is not None:
        check_reachable(address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a sandbox does not phone home
    try:
        if address is None:
            ray.init(
                address="local",  # never join whatever cluster this machine started last
                num_cpus=LOCAL_RAY_CPUS,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as e:  # noqa: BLE001 - ConnectionError, RuntimeError, ValueError ... by version
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise SandboxUnavailable(f"cannot start or reach {where}: {error_line(e)}") from e
    return True


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """A ``HOST:PORT`` that nothing answers on fails at once: ``ray.init`` would wait for minutes."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # "auto", "ray://...": Ray resolves these itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise SandboxUnavailable(
            f"cannot reach the Ray cluster at {address}: {e.strerror or e} (is its head node up? "
            "start one with `ray start --head`)"
        ) from e


def open_ray_sandbox(
    workers: int | None,
    limits: WorkerLimits,
    hash_seeds: HashSeeds,
    build_missing_image: bool,
    log: Callable[[str], None],
    ray_address: str | None = None,
    start_timeout_s: float = START_TIMEOUT_S,
) -> Sandbox:
    """A sandbox of one verifier actor per live Ray node, ``workers`` containers each (default: the
    node's CPU count). Any node without a Docker engine or the image fails the whole start, naming it."""
    ray = import_ray()
    address = resolve_address(ray_address)
    own = connect(ray, address)
    try:
        slots = start_actors(ray, workers, limits, hash_seeds, build_missing_image, log, start_timeout_s)
    except BaseException:
        if own:
            ray.shutdown()
        raise
    pool = RayPool(ray, slots, log, own)
    where = f"Ray cluster at {address}" if address else "a local Ray instance"
    note = f"{where}: {len(slots)} verifier actor(s), {pool.size} Docker workers ({slots[0].note})"
    return Sandbox("ray", pool, note=note)


def start_actors(
    ray,
    workers: int | None,
    limits: WorkerLimits,
    hash_seeds: HashSeeds,
    build_missing_image: bool,
    log: Callable[[str], None],
    start_timeout_s: float,
) -> list[ActorSlot]:
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= ACTOR_CPUS]
    if not nodes:
        raise SandboxUnavailable(f"the Ray cluster has no live node with {ACTOR_CPUS} CPU for a verifier actor")
    actor = _actor_class(ray)
    starting = {}
    for node in nodes:
        node_id = node["NodeID"]
        handle = actor.options(scheduling_strategy=_on_node(node_id)).remote()
        slot = ActorSlot(handle, node_id, where=f"node {node.get('NodeManagerAddress', '?')} ({node_id[:8]})")
        starting[handle.start.remote(workers, limits, hash_seeds, build_missing_image)] = slot
    done, not_done = ray.wait(list(starting), num_returns=len(starting), timeout=start_timeout_s)
    slots, errors = [], []
    for ref in not_done:
        slot = starting[ref]
        log(f"sandbox: ray verifier actor on {slot.where} did not start within {start_timeout_s:.0f} s; skipped")
        kill_actor(ray, slot)
    for ref in done:
        slot = starting[ref]
        try:
            info = ray.get(ref)
        except ray.exceptions.RayError as e:  # its node died meanwhile, an engine error, say
            log(f"sandbox: ray verifier actor on {slot.where} failed to start ({error_line(e)}); skipped")
            kill_actor(ray, slot)
            continue
        slot.owner = info["owner"]
        if "error" in info:
            errors.append(f"{slot.where}, host {info['host']}: {info['error']}")
            kill_actor(ray, slot)
            continue
        slot.workers, slot.note = info["workers"], info["note"]
        for note in info["notes"]:
            log(f"sandbox: ray {slot.where}: {note}")
        slots.append(slot)
    if errors or not slots:
        for slot in slots:  # no container started yet (pools start theirs on the first jobs)
            kill_actor(ray, slot)
        reason = "; ".join(errors) or "no verifier actor started"
        raise SandboxUnavailable(f"--sandbox ray cannot start on every node: {reason}")
    return slots


def kill_actor(ray, slot: ActorSlot) -> None:
    try:
        ray.kill(slot.handle, no_restart=True)
    except Exception:  # noqa: BLE001 - already gone
        pass
