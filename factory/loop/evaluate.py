"""pass@k of a model on held-out puzzles: n sampled solutions each, verified in the sandbox."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from factory.config import RunConfig
from factory.loop.passk import mean_pass_at_k
from factory.loop.prompts import STOP_SEQUENCES, ExampleIndex, solve_prompt
from factory.loop.seeds import seed_of
from factory.models import ModelBackend, SamplingConfig
from factory.models.base import function_sources
from puzzles.records import NamedPuzzle
from sandbox.backend import Sandbox
from sandbox.verdicts import VERIFIED, Result
from sandbox.verify import SourcePair, verify_pairs


@dataclass(frozen=True)
class EvalSettings:
    """How a model is evaluated; made by ``eval_settings`` from a run's settings, the one definition
    that `factory eval` and every round share, so their pass@k can be compared."""

    samples: int  # n per puzzle
    ks: tuple[int, ...]  # those above ``samples`` are dropped
    examples: int  # few-shot (f, g) pairs in each prompt
    max_new_tokens: int
    temperature: float
    top_p: float
    timeout_s: float
    batch_size: int  # prompts per generate call
    seed: int


def eval_settings(config: RunConfig) -> EvalSettings:
    """The evaluation of a run with these settings: its sampling, its n and k, one seed per run seed."""
    return EvalSettings(
        samples=config.eval_samples,
        ks=tuple(k for k in config.eval_ks if k <= config.eval_samples),
        examples=config.solve_examples,
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        timeout_s=config.timeout_s,
        batch_size=config.batch_size,
        seed=seed_of(config.seed, 0, "eval", 0),
    )


@dataclass(frozen=True)
class EvalResult:
    dataset: str
    model: str
    samples: int
    pass_at_k: dict[int, float]
    solved: dict[str, int]  # puzzle key -> verified samples (c)
    seconds: dict[str, float] = field(default_factory=dict)  # "generate", "verify"
    tokens: int = 0
    first_verified: dict[str, int | None] = field(default_factory=dict)  # key -> 1-based sample, or None

    @property
    def total(self) -> int:
        return len(self.solved)

    @property
    def solved_puzzles(self) -> int:
        return sum(1 for c in self.solved.values() if c > 0)

    def solved_within(self, k: int) -> int:
        """Puzzles whose first verified sample is among their first ``k``: solved in at most ``k``
        attempts, as the paper counts it (its attempts stop at the first success)."""
        return sum(1 for first in self.first_verified.values() if first is not None and first <= k)


# (stage, done, total): "generate" counts puzzles, "verify" sampled solutions; called with done = 0 as a
# stage starts.
Progress = Callable[[str, int, int], None]


def solve_samples(
    backend: ModelBackend,
    puzzles: Sequence[NamedPuzzle],
    examples: Sequence[tuple[str, str]],
    settings: EvalSettings,
    seed: int,
    progress: Progress | None = None,
    before_batch: Callable[[], None] | None = None,
) -> tuple[list[list[str]], int]:
    """``settings.samples`` candidate solution sources per puzzle, and the tokens generated.
    ``before_batch`` is called before each generate call (the daemon's stop points)."""
    index = ExampleIndex(examples)
    prompts, prefixes = [], []
    for i, item in enumerate(puzzles):
        nearest = index.nearest(item.puzzle.source, settings.examples)
        prompt, prefix = solve_prompt(nearest, item.puzzle.source, random.Random(f"{seed}:{i}"), settings.examples)
        prompts.append(prompt)
        prefixes.append(prefix)
    sources: list[list[str]] = []
    tokens = 0
    if progress is not None:
        progress("generate", 0, len(prompts))
    for start in range(0, len(prompts), settings.batch_size):
        sampling = SamplingConfig(
            n=settings.samples,
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            stop=tuple(STOP_SEQUENCES),
            seed=seed + start,
        )
        if before_batch is not None:
            before_batch()
        batch = backend.generate(prompts[start : start + settings.batch_size], sampling)
        sources += function_sources(backend.name, prefixes[start : start + settings.batch_size], batch)
        tokens += sum(c.tokens for completions in batch for c in completions)
        if progress is not None:
            progress("generate", len(sources), len(prompts))
    return sources, tokens


def evaluate(
    backend: ModelBackend,
    puzzles: Sequence[NamedPuzzle],
    examples: Sequence[tuple[str, str]],
    sandbox: Sandbox,
    dataset: str,
    settings: EvalSettings,
    progress: Progress | None = None,
    before_batch: Callable[[], None] | None = None,
) -> EvalResult:
    """pass@k (unbiased estimator) over ``puzzles`` with ``settings.samples`` samples each.

    ``examples`` are the few-shot (f, g) pairs shown in prompts: they must come from training data,
    never from ``puzzles``.
    """
    if not puzzles:
        raise ValueError(f"evaluation set {dataset!r} is empty")
    ks = tuple(k for k in settings.ks if k <= settings.samples)
    if not ks:
        raise ValueError(f"every k in {settings.ks} exceeds the {settings.samples} samples per puzzle")
    start = time.perf_counter()
    sources, tokens = solve_samples(backend, puzzles, examples, settings, settings.seed, progress, before_batch)
    generated = time.perf_counter()
    pairs = [SourcePair(item.puzzle.source, g) for item, gs in zip(puzzles, sources, strict=True) for g in gs]
    verdicts = verify_pairs(pairs, sandbox, settings.timeout_s, verified_counter(progress, len(pairs)), True)
    solved: dict[str, int] = {}
    first_verified: dict[str, int | None] = {}
    for i, item in enumerate(puzzles):
        chunk = [r.status == VERIFIED for r in verdicts[i * settings.samples : (i + 1) * settings.samples]]
        solved[item.key] = sum(chunk)
        first_verified[item.key] = chunk.index(True) + 1 if any(chunk) else None
    counts = [(settings.samples, c) for c in solved.values()]
    return EvalResult(
        dataset=dataset,
        model=backend.name,
        samples=settings.samples,
        pass_at_k={k: mean_pass_at_k(counts, k) for k in ks},
        solved=solved,
        seconds={"generate": generated - start, "verify": time.perf_counter() - generated},
        tokens=tokens,
        first_verified=first_verified,
    )


def verified_counter(progress: Progress | None, total: int) -> Callable[[int, Result], None] | None:
    """``verify_pairs``'s per-verdict callback that reports ("verify", done, total) to ``progress``
    (verdicts may come from several threads: ``itertools.count`` counts them atomically)."""
    if progress is None:
        return None
    progress("verify", 0, total)
    counter = itertools.count(1)
    return lambda index, result: progress("verify", next(counter), total)
