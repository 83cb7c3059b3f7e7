"""Generation across a Ray cluster: N replicas of a local backend as Ray actors, one ``ModelBackend``.

``RayGeneration`` holds ``replicas`` actors, each with its own copy of the model, loaded on its node by
``load_in_process`` (``factory.models.in_process``) with the inner kind ("transformers": the fast CPU path where it applies, else plain
transformers; "vllm"). A ``generate`` call is cut into chunks of ``chunk_prompts`` prompts (a fixed
size: it never depends on how many replicas there are), and chunk ``i`` is sampled with the seed
``chunk_seed(sampling.seed, i)``. A chunk's completions therefore depend only on its prompts and its
seed, never on which replica ran it or how many there were: any number of replicas gives the same outputs
(on machines that compute alike), put back in prompt order. Token counts are the inner backend's
(``Completion.tokens``), passed through.

Replicas are spread over the nodes (``SPREAD``) and each reserves ``num_cpus`` CPUs (its torch threads)
and, where the cluster has GPUs, ``num_gpus`` (default 1). With no address (not ``--ray-address``, not
``RAY_ADDRESS``) on a one-node Ray (the one-CPU local instance ``sandbox.ray_sandbox.connect`` starts,
this call's or ``--sandbox ray``'s), replicas reserve no CPU: they share this machine.

Losses: a chunk whose replica died (any Ray error other than the backend's own exception) goes back to
the queue with the other chunks in flight at that replica and runs on a live one; the dead replica is
killed and never used again, and the next call starts a new one in its place where the cluster has
room (``replaced``). Nothing of a chunk is kept until the whole chunk comes back, so nothing is
lost or doubled. An error raised by the backend itself (a ``ModelError``: no room for a prompt, say)
fails the call as it would locally. No replica left: a ``ModelError``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from factory.errors import ModelError
from factory.models.base import Completion, SamplingConfig
from sandbox.ray_chunks import error_line, run_chunks

CHUNK_PROMPTS = 8  # prompts per chunk: fixed, so outputs do not depend on the number of replicas
IN_FLIGHT_PER_REPLICA = 2  # chunks queued at a replica: one running, the next already there
START_TIMEOUT_S = 600.0  # a replica imports torch and loads its model first


def chunk_seed(seed: int, index: int) -> int:
    """The sampling seed of chunk ``index`` of a call seeded ``seed``: a stable hash (the same in every
    process and version of Python), in [0, 2**63)."""
    digest = hashlib.blake2b(f"ray-generation:{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def import_ray():
    try:
        import ray
    except ImportError as e:
        raise ModelError("generation replicas need Ray on every node: pip install 'selfplay-factory[ray]'") from e
    return ray


class GenerationReplica:
    """The body of one replica actor: an ordinary backend on the actor's node. Made a Ray actor by
    ``_actor_class`` (Ray is optional). A load error is returned as text, so the driver can name the node."""

    def __init__(self) -> None:
        self.backend = None

    def start(self, kind: str, model: str, options: dict, threads: int) -> dict:
        import socket

        import ray
        import torch

        from factory.models.in_process import load_in_process

        torch.set_num_threads(threads)  # the same on every replica: CPU results then match exactly
        info = {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname()}
        try:
            self.backend = load_in_process(kind, model, **options)
        except ModelError as e:
            return {**info, "error": str(e)}
        return info

    def generate(self, prompts: list[str], sampling: SamplingConfig) -> list[list[Completion]]:
        assert self.backend is not None, "start() first"
        return self.backend.generate(prompts, sampling)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None


_REMOTE: dict[str, object] = {}


def _actor_class(ray):
    if "actor" not in _REMOTE:
        # No restarts: a restarted replica would reload its model anyway; its lost chunks are re-sent here.
        _REMOTE["actor"] = ray.remote(max_restarts=0, max_task_retries=0)(GenerationReplica)
    return _REMOTE["actor"]


@dataclass
class Replica:
    handle: object
    where: str = "?"
    alive: bool = True
    chunks_done: int = 0


class RayGeneration:
    """``replicas`` actors of the ``kind`` backend for ``model``; ``generate`` as any ``ModelBackend``.

    ``options``: the inner backend's (``batch_size``, ``device``...). ``num_cpus``: CPUs (and torch
    threads) per replica. ``num_gpus``: GPUs per replica (default: 1 where the cluster has GPUs, else
    0). ``ray_address``: the cluster (default ``RAY_ADDRESS``, else a local Ray; a Ray this process is
    already connected to is used as it is)."""

    def __init__(
        self,
        kind: str,
        model: str,
        replicas: int,
        *,
        options: dict | None = None,
        num_cpus: float = 1,
        num_gpus: float | None = None,
        ray_address: str | None = None,
        chunk_prompts: int = CHUNK_PROMPTS,
        start_timeout_s: float = START_TIMEOUT_S,
    ):
        from sandbox.engine import SandboxUnavailable
        from sandbox.ray_sandbox import connect, resolve_address

        if replicas < 1:
            raise ModelError(f"generation replicas must be at least 1 (got {replicas})")
        if chunk_prompts < 1:
            raise ModelError(f"chunk_prompts must be at least 1 (got {chunk_prompts})")
        self.name = str(model)
        self.chunk_prompts = chunk_prompts
        self.redispatched = 0  # chunks sent again after their replica was lost
        self.replaced = 0  # replicas started in place of lost ones
        self._closed = False
        self._spec = (kind, model, options or {}, num_cpus, num_gpus, start_timeout_s)
        ray = self.ray = import_ray()
        self.address = resolve_address(ray_address)
        try:
            self.own_ray = connect(ray, self.address)
        except SandboxUnavailable as e:
            raise ModelError(str(e)) from e
        try:
            self.replicas = self._start(replicas)
        except BaseException:
            if self.own_ray:
                ray.shutdown()
            raise

    def _start(self, replicas: int) -> list[Replica]:
        kind, model, options, num_cpus, num_gpus, timeout_s = self._spec
        ray, address = self.ray, self.address
        if address is None and sum(1 for node in ray.nodes() if node["Alive"]) == 1:
            num_cpus = 0  # a local Ray (ours or the sandbox's, one CPU): the replicas share this machine
        if num_gpus is None:
            num_gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        have = ray.available_resources()
        for resource, each in (("CPU", num_cpus), ("GPU", num_gpus)):
            if each * replicas > have.get(resource, 0) + 1e-9:
                raise ModelError(
                    f"{replicas} generation replicas need {each * replicas:g} {resource}s; the Ray cluster has "
                    f"{have.get(resource, 0):g} free (use fewer replicas or add nodes)"
                )
        actor = _actor_class(ray).options(num_cpus=num_cpus, num_gpus=num_gpus, scheduling_strategy="SPREAD")
        threads = max(1, int(num_cpus or 1))
        starting = {}
        for _ in range(replicas):
            replica = Replica(actor.remote())
            starting[replica.handle.start.remote(kind, model, options, threads)] = replica
        done, not_done = ray.wait(list(starting), num_returns=len(starting), timeout=timeout_s)
        errors = [f"a replica did not start within {timeout_s:.0f} s"] if not_done else []
        for ref in done:
            replica = starting[ref]
            try:
                info = ray.get(ref)
            except ray.exceptions.RayError as e:
                errors.append(error_line(e))
                continue
            replica.where = f"{info['host']} ({info['node_id'][:8]})"
            if "error" in info:
                errors.append(f"{replica.where}: {info['error']}")
        if errors:
            for replica in starting.values():
                _kill(ray, replica)
            raise ModelError(f"generation replicas cannot start: {'; '.join(errors)}")
        return list(starting.values())

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive]

    def _replace_lost(self) -> None:
        """A new replica for each lost one (a killed actor, a node that left, the whole local Ray shut
        down by the sandbox that started it), one at a time while the cluster has room: a long-running
        daemon keeps its N replicas. What cannot start now is tried again at the next call."""
        from sandbox.engine import SandboxUnavailable
        from sandbox.ray_sandbox import connect

        if not self.ray.is_initialized():  # every replica went with it
            for replica in self.replicas:
                replica.alive = False
            try:
                self.own_ray = connect(self.ray, self.address) or self.own_ray
            except SandboxUnavailable:
                return
        lost = [r for r in self.replicas if not r.alive]
        for replica in lost:
            try:
                (new,) = self._start(1)
            except ModelError:
                break  # no room, or the model does not load there: the live replicas go on alone
            self.replicas[self.replicas.index(replica)] = new
            self.replaced += 1

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig) -> list[list[Completion]]:
        if isinstance(prompts, str):
            raise TypeError("generate takes a sequence of prompts, not a single string")
        if self._closed:
            raise ModelError("the Ray generation backend is closed")
        prompts = list(prompts)
        if not prompts:
            return []
        self._replace_lost()
        ray = self.ray
        size = self.chunk_prompts
        chunks = [range(s, min(s + size, len(prompts))) for s in range(0, len(prompts), size)]
        results: list[list[Completion] | None] = [None] * len(prompts)

        def send(replica: Replica, chunk: int):
            seeded = replace(sampling, seed=chunk_seed(sampling.seed, chunk))
            return replica.handle.generate.remote([prompts[i] for i in chunks[chunk]], seeded)

        def deliver(replica: Replica, chunk: int, reply: list[list[Completion]]) -> None:
            replica.chunks_done += 1
            for index, completions in zip(chunks[chunk], reply, strict=True):
                results[index] = completions

        def lose(replica: Replica, error: BaseException, back: int) -> None:
            replica.alive = False
            _kill(ray, replica)

        def none_left(last_loss: str, undone: int) -> ModelError:
            return ModelError(f"every generation replica was lost ({last_loss}); {undone} of {len(chunks)} "
                              f"chunks of {size} prompts have no completions")

        try:
            self.redispatched += run_chunks(
                ray, len(chunks), self.live, send, deliver, lose, none_left,
                in_flight_per_worker=IN_FLIGHT_PER_REPLICA,
                # a replica's own exception (no room for a prompt, say) fails the call, as it would locally
                is_loss=lambda error: not isinstance(error, ray.exceptions.RayTaskError),
            )
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, ModelError):
                raise ModelError(str(cause)) from e
            raise ModelError(f"generation on a replica failed: {error_line(e)}") from e
        return results  # type: ignore[return-value]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        ray = self.ray
        try:
            for replica in self.replicas:
                _kill(ray, replica)
                replica.alive = False
        finally:
            if self.own_ray:
                ray.shutdown()


def _kill(ray, replica: Replica) -> None:
    try:
        ray.kill(replica.handle, no_restart=True)
    except Exception:  # noqa: BLE001 - already gone
        pass
