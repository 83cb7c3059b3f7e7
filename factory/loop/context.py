"""What every stage of a run works with, set up once per run by ``prepare_run``: the open store (its
identity checked, seeds and evaluation blocklist recorded), the sandbox, the seed and evaluation sets,
the model backends, the arm, and where messages go."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from factory.config import IDENTITY_FIELDS, RunConfig, run_identity
from factory.errors import UserError
from factory.loop.arms import PLAIN_RUN, Arm
from factory.loop.prompts import STOP_SEQUENCES
from factory.loop.run_sets import EvalSet, SeedSet, check_recorded_sets, load_run_sets
from factory.models import RAY_OPTIONS, ModelBackend, SamplingConfig, load_backend
from factory.store import STORE_FILENAME, RunStore
from puzzles.canonical import canonical_hash
from sandbox.backend import Sandbox, log_to_stderr


def nothing() -> None:
    pass


def open_run_store(run_dir: Path, config: RunConfig) -> RunStore:
    """The run directory's store, refusing settings that would mix two experiments in it."""
    store = RunStore.open(run_dir)
    try:
        given = run_identity(config.to_json())
        stored = run_identity(store.record_config(config.to_json()))
        for name in IDENTITY_FIELDS:
            if stored[name] != given[name]:
                raise UserError(
                    f"{run_dir} was started with {name}={stored[name]!r}, not {given[name]!r}: "
                    "use another run directory, or the same settings to resume"
                )
    except BaseException:
        store.close()
        raise
    return store


def check_run_store(run_dir: Path, config: RunConfig) -> None:
    """Before anything starts: refuse a run directory whose store is unusable or holds another run's
    settings. Creates nothing where no store exists yet."""
    if (Path(run_dir) / STORE_FILENAME).exists():
        open_run_store(Path(run_dir), config).close()


@dataclass(frozen=True)
class Generator:
    """A model that generates, and how it is reached: ``backend`` (``load_backend``'s kind) and, for a
    server, ``base_url``."""

    model: str
    backend: str
    base_url: str | None = None


STUDENT = "student"  # propose_model/solve_model: the model being trained


def student_of(c: RunConfig, model: str) -> Generator:
    """The student of a round whose model (a checkpoint, or the base) is ``model``: local when it is a
    separate ``train_model`` (trained, so it cannot be a served name), else on the run's backend."""
    if c.train_model is None:
        return Generator(model, c.backend, c.base_url)
    return Generator(model, "transformers" if c.backend == "openai" else c.backend)


def generator_for(c: RunConfig, role: str, student: str) -> Generator:
    """Who generates in ``role`` ("propose" or "solve") in a round whose student model is ``student``:
    the role's own model (``propose_model``...; "student": the student), else the run's ``model`` as
    a fixed teacher when a separate ``train_model`` is trained, else the student itself."""
    model = getattr(c, f"{role}_model")
    if model == STUDENT or (model is None and c.train_model is None):
        return student_of(c, student)
    backend, base_url = getattr(c, f"{role}_backend"), getattr(c, f"{role}_base_url")
    return Generator(model or c.model or student, backend or c.backend, base_url or c.base_url)


def backend_options(c: RunConfig, generator: Generator | None = None) -> dict[str, object]:
    """``load_backend``'s options from a run's settings for ``generator`` (default: the run's model):
    how the model is prompted, a server's URL."""
    generator = generator or Generator(c.model or "", c.backend, c.base_url)
    options: dict[str, object] = {"api": c.api}
    if generator.backend == "openai" and generator.base_url:
        options["base_url"] = generator.base_url
    if c.chat_template is not None:
        options["chat_template"] = c.chat_template
    return options


class Models:
    """The generation backend: loaded on first use, kept while the same ``Generator`` and options are
    asked for. ``generation``: more ``load_backend`` options for where generation runs (``replicas``,
    ``ray_address``), chosen per invocation like the sandbox, not recorded as a setting of the run."""

    def __init__(self, generation: Mapping[str, object] | None, before_step: Callable[[], None]):
        self.generation = dict(generation or {})
        self.before_step = before_step
        self._backend: ModelBackend | None = None
        self._key: tuple | None = None

    def backend(self, generator: Generator, c: RunConfig) -> ModelBackend:
        options = backend_options(c, generator)
        if generator.backend == "transformers":
            options["batch_size"] = c.batch_size
        options.update(self.generation)
        if generator.backend == "openai":  # replicas are for the local models (a student beside a served teacher)
            options = {k: v for k, v in options.items() if k != "replicas" and k not in RAY_OPTIONS}
        key = (generator.model, generator.backend, tuple(sorted(options.items())))
        if self._backend is not None and self._key == key:
            return self._backend
        self.release()
        self.before_step()
        self._backend = load_backend(generator.backend, generator.model, **options)
        self._key = key
        return self._backend

    def generate(self, backend: ModelBackend, prompts: list[str], sampling: SamplingConfig):
        self.before_step()
        return backend.generate(prompts, sampling)

    def release(self) -> None:
        """Close the loaded backend (a generation engine holds no memory while the model trains)."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None


@dataclass
class RunContext:
    """One run directory's open store and what works on it. ``before_step`` is called before every
    model load, generate call and training run: the daemon's stop points (it raises to stop there;
    nothing of the step has started)."""

    run_dir: Path
    config: RunConfig
    store: RunStore
    sandbox: Sandbox
    seeds: SeedSet
    eval: EvalSet
    models: Models
    arm: Arm = PLAIN_RUN
    log: Callable[[str], None] = log_to_stderr
    show_progress: bool = True
    before_step: Callable[[], None] = field(default=nothing)

    @functools.cached_property
    def base_model(self) -> str:
        """The student of round 1: ``config.train_model``, else ``config.model``, else the embedded
        default model."""
        if self.config.train_model is not None:
            return self.config.train_model
        if self.config.model is not None:
            return self.config.model
        from factory.loop.corpus import embedded_model_path

        return embedded_model_path(self.config.seeds, log=self.log)

    def model_for_round(self, round: int) -> str:
        """The model that generates in ``round``: the previous round's checkpoint, else the base model."""
        for earlier in range(round - 1, 0, -1):
            checkpoint = self.store.checkpoint(earlier)
            if checkpoint is not None:
                return checkpoint.path
        return self.base_model

    def next_round(self) -> int:
        rounds = [r for r in self.store.rounds() if r.round > 0]
        unfinished = [r.round for r in rounds if r.finished_at is None]
        if unfinished:
            return min(unfinished)
        return max((r.round for r in rounds), default=0) + 1

    def finished_rounds(self) -> int:
        return sum(1 for r in self.store.rounds() if r.round > 0 and r.finished_at is not None)

    def close(self) -> None:
        self.models.release()
        self.store.close()

    def __enter__(self) -> RunContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare_run(
    run_dir: Path | str,
    config: RunConfig,
    sandbox: Sandbox,
    *,
    arm: Arm = PLAIN_RUN,
    log: Callable[[str], None] = log_to_stderr,
    show_progress: bool = True,
    before_step: Callable[[], None] = nothing,
    generation: Mapping[str, object] | None = None,
) -> RunContext:
    """Once per run, before any round: load the seed and evaluation sets (a user's seeds are verified
    in ``sandbox``), open the store (refusing another run's settings or a changed seed or evaluation
    file), record the seeds and block the evaluation set's puzzles in it."""
    seeds, eval_set = load_run_sets(config, sandbox)
    store = open_run_store(Path(run_dir), config)
    try:
        check_recorded_sets(store, Path(run_dir), seeds, eval_set)
        store.block_hashes(eval_set.index.hashes(), f"evaluation set {eval_set.name}")
        store.add_seed_puzzles((s, canonical_hash(s.puzzle.source)) for s in seeds.puzzles)
    except BaseException:
        store.close()
        raise
    return RunContext(
        Path(run_dir), config, store, sandbox, seeds, eval_set, Models(generation, before_step), arm, log,
        show_progress, before_step,
    )


def sampling_for(c: RunConfig, n: int, seed: int, temperature: float) -> SamplingConfig:
    """The sampling settings of one generate call: ``n`` samples a prompt, seeded by ``seed``."""
    return SamplingConfig(
        n=n, max_new_tokens=c.max_new_tokens, temperature=temperature, top_p=c.top_p,
        stop=tuple(STOP_SEQUENCES), seed=seed,
    )


def batch_progress(ctx: RunContext, batches: Sequence[int], label: str):
    """``batches`` with a progress bar on a terminal (none in logs and tests)."""
    from tqdm import tqdm

    return tqdm(
        batches, desc=label, unit="batch", file=sys.stderr,
        disable=not (ctx.show_progress and sys.stderr.isatty()), leave=False,
    )
