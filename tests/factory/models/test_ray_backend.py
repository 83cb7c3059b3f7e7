"""Generation across Ray (``load_backend(..., replicas=N)``) on a real local Ray and the real tiny model:
the same completions, in prompt order, for 1 and 2 replicas; a replica killed during or between calls
loses nothing; no replica left fails in one line; close leaves no actor. One Ray for the module."""

from __future__ import annotations

import threading
import time

import pytest

ray = pytest.importorskip("ray")

from factory.errors import ModelError, UserError  # noqa: E402
from factory.models import SamplingConfig, load_backend  # noqa: E402
from factory.models.ray_backend import RayGeneration, chunk_seed  # noqa: E402

CHUNK = 4
PROMPTS = [f"def f{i}(x: int):\n    return x == {i * 7}\n\ndef g{i}():\n    return " for i in range(24)]
SAMPLING = SamplingConfig(n=2, max_new_tokens=24, temperature=0.8, top_p=0.95, stop=("\n\n",), seed=7)


@pytest.fixture(scope="module")
def local_ray():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=3, object_store_memory=80 * 1024 * 1024, include_dashboard=False,
             log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def replicated(model, replicas: int) -> RayGeneration:
    backend = load_backend("transformers", str(model), replicas=replicas, chunk_prompts=CHUNK, batch_size=CHUNK)
    assert isinstance(backend, RayGeneration)
    return backend


@pytest.fixture(scope="module")
def one(local_ray, synthetic_tiny_model):
    backend = replicated(synthetic_tiny_model, 1)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def two(local_ray, synthetic_tiny_model):
    backend = replicated(synthetic_tiny_model, 2)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def reference(one):
    return one.generate(PROMPTS, SAMPLING)


def test_chunk_seeds_are_stable_and_distinct():
    assert chunk_seed(7, 0) == chunk_seed(7, 0)
    assert len({chunk_seed(s, i) for s in range(4) for i in range(16)}) == 64
    assert all(0 <= chunk_seed(s, i) < 2**63 for s in (0, -1, 2**40) for i in (0, 9))
    assert chunk_seed(0, 0) == 7449349435500472841  # the same in every process and Python version


def test_no_replicas_is_no_ray_and_openai_cannot_be_replicated(synthetic_tiny_model):
    backend = load_backend("transformers", str(synthetic_tiny_model), replicas=0, ray_address="nowhere:1")
    try:
        assert not isinstance(backend, RayGeneration)
    finally:
        backend.close()
    with pytest.raises(ModelError, match="local backend"):
        load_backend("openai", "served", replicas=2)


def test_two_replicas_give_the_outputs_of_one_in_prompt_order(one, two, reference, synthetic_tiny_model):
    from factory.models.fast_cpu import FastCPUBackend

    out = two.generate(PROMPTS, SAMPLING)
    assert out == reference
    assert len(out) == len(PROMPTS) and all(len(c) == SAMPLING.n for c in out)
    assert all(c.tokens >= 1 for cs in out for c in cs)
    assert sum(r.chunks_done for r in two.replicas) == len(PROMPTS) // CHUNK
    # In prompt order: each chunk is what the backend itself samples for those prompts with its seed.
    local = FastCPUBackend(str(synthetic_tiny_model), batch_size=CHUNK)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the replicas
    try:
        for chunk in (0, len(PROMPTS) // CHUNK - 1):
            seeded = SamplingConfig(**{**SAMPLING.__dict__, "seed": chunk_seed(SAMPLING.seed, chunk)})
            assert local.generate(PROMPTS[chunk * CHUNK : (chunk + 1) * CHUNK], seeded) == out[
                chunk * CHUNK : (chunk + 1) * CHUNK
            ]
    finally:
        torch.set_num_threads(threads)
        local.close()
    other_seed = two.generate(PROMPTS[:CHUNK], SamplingConfig(**{**SAMPLING.__dict__, "seed": 8}))
    assert other_seed != reference[:CHUNK]
    assert two.generate([], SAMPLING) == []


class Shared:
    """A module fixture's replicas lent to one run: its close leaves them running for the next."""

    def __init__(self, backend: RayGeneration):
        self.backend, self.name = backend, backend.name

    def generate(self, prompts, sampling):
        return self.backend.generate(prompts, sampling)

    def close(self) -> None:
        pass


def test_a_round_on_one_or_two_replicas_stores_the_same_proposals_and_evaluation(one, two, tmp_path, monkeypatch):
    """The whole loop (``run_rounds``, as the CLI and the daemon run it) generating on Ray replicas: the
    run asks ``load_backend`` for them, and the store does not depend on how many there are. (The
    module's replicas stand in for the ones it would start: starting more costs a model load each.)"""
    import factory.loop.context as loop_context
    from factory.config import RunConfig
    from factory.loop.context import prepare_run
    from factory.loop.rounds import RoundEvents, rounds_finished, run_rounds
    from sandbox.backend import open_sandbox

    config = RunConfig(model=one.name, backend="transformers", seed=3, train=False, puzzles=4, attempts=2,
                       batch_size=2, propose_examples=1, solve_examples=1, max_new_tokens=24, timeout_s=2.0,
                       eval_samples=2, eval_ks=(1,), eval_limit=3)
    asked = []

    def replicated_backend(kind, model, **options):
        asked.append((kind, model, options))
        return Shared({1: one, 2: two}[options["replicas"]])

    monkeypatch.setattr(loop_context, "load_backend", replicated_backend)
    stored = {}
    with open_sandbox("process", workers=1) as sandbox:
        for replicas in (1, 2):
            generation = {"replicas": replicas, "ray_address": None}
            with prepare_run(tmp_path / f"replicas-{replicas}", config, sandbox, log=lambda m: None,
                             show_progress=False, generation=generation) as run:
                run_rounds(run, rounds_finished(1), RoundEvents())
                stored[replicas] = (
                    [(p.prompt_seed, p.raw) for p in run.store.proposals_of_round(1)],
                    [(a.puzzle_id, a.solution_source, a.status) for a in run.store.attempts_of_round(1)],
                    [(e.round, e.k, e.solved, e.total) for e in run.store.evals()],
                )
            assert asked and all(options == {"api": "auto", "batch_size": 2, **generation} for _, _, options in asked)
            asked.clear()
    proposals, _, evals = stored[1]
    assert len(proposals) == config.puzzles and evals
    assert stored[2] == stored[1]


def test_a_replica_killed_mid_call_is_replaced_at_the_next_and_none_startable_fails_in_one_line(
    one, two, reference, monkeypatch
):
    """Runs after the others that use ``two``: it kills its replicas."""
    expected = one.generate(PROMPTS * 2, SAMPLING)
    assert expected[: len(PROMPTS)] == reference
    first, second = two.replicas
    done_before = first.chunks_done + second.chunks_done
    box: dict = {}
    call = threading.Thread(target=lambda: box.update(out=two.generate(PROMPTS * 2, SAMPLING)))
    call.start()
    deadline = time.monotonic() + 60
    while first.chunks_done + second.chunks_done == done_before and time.monotonic() < deadline:
        time.sleep(0.005)
    ray.kill(first.handle, no_restart=True)  # during the call: its queued chunks go to the other
    call.join(timeout=120)
    assert box["out"] == expected
    assert not first.alive and two.redispatched >= 1  # noticed during the call (12 chunks, 1 was done)
    assert two.replaced == 0 and two.replicas[1] is second

    assert two.generate(PROMPTS, SAMPLING) == reference  # the next call starts one in its place
    assert two.replaced == 1 and all(r.alive for r in two.replicas) and first not in two.replicas
    assert two.replicas[1] is second and two.replicas[0].chunks_done >= 1

    for replica in two.replicas:  # between calls, and no replica can start now
        ray.kill(replica.handle, no_restart=True)
    monkeypatch.setattr(two, "_start", lambda count: (_ for _ in ()).throw(ModelError("no room")))
    with pytest.raises(ModelError, match="every generation replica was lost") as lost:
        two.generate(PROMPTS[:CHUNK], SAMPLING)
    assert "\n" not in str(lost.value)


def test_close_leaves_no_actor(local_ray, synthetic_tiny_model):
    backend = replicated(synthetic_tiny_model, 1)
    assert backend.generate(PROMPTS[:2], SAMPLING)
    handles = [r.handle for r in backend.replicas]
    backend.close()
    backend.close()  # twice is fine
    for handle in handles:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(handle.generate.remote(PROMPTS[:1], SAMPLING), timeout=30)
    with pytest.raises(ModelError, match="closed"):
        backend.generate(PROMPTS[:1], SAMPLING)
    assert ray.is_initialized()  # a Ray it did not start is left running


@pytest.mark.parametrize("command", ["eval", "round", "run", "experiment", "daemon-config"])
def test_every_generating_command_takes_generation_replicas(command, tmp_path):
    from factory.cli.main import build_parser
    from factory.daemon.config import load_config

    if command == "daemon-config":
        path = tmp_path / "factory.toml"
        path.write_text('[run]\nrun_dir = "r"\ngeneration_replicas = 2\nray_address = "10.0.0.1:6379"\n')
        config = load_config(path)
        assert config.generation_options() == {"replicas": 2, "ray_address": "10.0.0.1:6379"}
        path.write_text('[run]\nrun_dir = "r"\ngeneration_replicas = -1\n')
        with pytest.raises(UserError, match="generation_replicas must be at least 0"):
            load_config(path)
        return
    needed = {"eval": [], "round": ["--run-dir", "r"], "run": ["--run-dir", "r", "--rounds", "1"],
              "experiment": ["--run-dir", "r", "--rounds", "1"]}[command]
    parser = build_parser()
    assert parser.parse_args([command, *needed]).generation_replicas == 0
    assert parser.parse_args([command, *needed, "--generation-replicas", "2"]).generation_replicas == 2
    with pytest.raises(SystemExit):
        parser.parse_args([command, *needed, "--generation-replicas", "-1"])


def test_replicas_come_back_after_the_local_ray_was_shut_down_under_them(local_ray, synthetic_tiny_model):
    """What a daemon's ``--sandbox ray`` on a local Ray does when it reopens: it shuts that Ray down,
    and every replica with it. The next call starts a local Ray and the replicas again. Last in this
    file: it leaves the module's Ray shut down."""
    backend = replicated(synthetic_tiny_model, 1)
    try:
        before = backend.generate(PROMPTS[:CHUNK], SAMPLING)
        ray.shutdown()
        assert backend.generate(PROMPTS[:CHUNK], SAMPLING) == before
        assert backend.replaced == 1 and backend.own_ray and ray.is_initialized()
    finally:
        backend.close()
    assert not ray.is_initialized()  # the Ray it started, it shuts down
