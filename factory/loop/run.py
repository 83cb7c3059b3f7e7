"""One self-play round: propose, filter, solve, verify, select, fine-tune, evaluate; and the loop of rounds.

Every stage reads its input from the run's store and writes its output there in batches, each batch
in one transaction with its completion marker. The settings a round runs with are recorded when it
starts and a resumed round runs with those, whatever the command line or config file says now (the
new values apply from the next round): the batches that partition its work never change. Prompts
depend only on the run seed, the round and the item; sampling seeds on the run seed, the round and the
batch. So a round that was killed and rerun redoes exactly the unfinished batches and ends with the
same store as a round that was never interrupted.
"""

from __future__ import annotations

import functools
import json
import math
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from factory.config import IDENTITY_FIELDS, RunConfig, run_identity
from factory.errors import UserError, VerifierError
from factory.loop.corpus import load_eval_puzzles, seed_training_pairs, training_texts
from factory.loop.evaluate import eval_settings, evaluate
from factory.loop.filter import filter_proposals
from factory.loop.preferences import DPO, SPIN, preference_rows, round_solve_prompt, weighted_rows
from factory.loop.prompts import (
    STOP_SEQUENCES,
    ExampleIndex,
    propose_prompt,
    training_example,
)
from factory.loop.seeds import seed_of
from factory.loop.select import select_pairs
from factory.loop.summary import format_summary, round_summary
from factory.loop.weights import weighted_pairs
from factory.models import ModelBackend, SamplingConfig, load_backend
from factory.models.steps import optimizer_steps, read_training_facts
from factory.store import PROPOSE_STAGE, SOLVE_STAGE, AttemptRow, RunStore
from puzzles.canonical import canonical_hash
from puzzles.completion import complete_function
from puzzles.filters import EvalIndex
from puzzles.records import NamedPuzzle
from puzzles.seeds import load_seeds
from sandbox.backend import Sandbox
from sandbox.canaries import Canary, CanaryFlip, draw
from sandbox.canaries import check as check_canaries
from sandbox.verify import SourcePair, verify_pairs

TRAIN_STAGE = "train"
SFT = "sft"
SFT_DPO = "sft+dpo"
EVAL_STAGE = "eval"
# Settings a resumed round takes from the current config rather than from its start: where the model
# is served, not what the round does.
CURRENT_SETTINGS = ("base_url",)
T = TypeVar("T")


def canaries_for(run_seed: int, round: int, batch: int) -> list[Canary]:
    """The canary pairs verified with solve batch ``batch`` of ``round`` (two cheats, one good pair)."""
    return draw(random.Random(f"{run_seed}:{round}:canaries:{batch}"))


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def nothing() -> None:
    pass


@dataclass(frozen=True)
class EvalSet:
    """The puzzles a run evaluates on, and the index that keeps them out of its data."""

    name: str
    puzzles: list[NamedPuzzle]
    index: EvalIndex


def load_eval_set(config: RunConfig, training_seeds: Sequence[NamedPuzzle]) -> EvalSet:
    """The run's evaluation set (``config.eval_p3``/``eval_split``/``eval_all_instances``, else the
    held-out seeds) and its decontamination index over every puzzle of the set's source (all instances
    of the P3 split; near-duplicates are checked only against those that no training seed already comes
    near)."""
    chosen = load_eval_puzzles(
        Path(config.eval_p3) if config.eval_p3 else None, config.eval_split, config.eval_all_instances
    )
    index = EvalIndex.from_sources(
        ((p.key, p.puzzle.source) for p in chosen.guarded), training=(s.puzzle.source for s in training_seeds)
    )
    return EvalSet(chosen.name, chosen.puzzles, index)


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


def round_config(started_with: dict | None, current: RunConfig) -> RunConfig:
    """The settings a round runs with: those recorded at its start (``current`` for a round started
    before settings were recorded), with the ``CURRENT_SETTINGS`` taken from ``current``."""
    if started_with is None:
        return current
    data = {**current.to_json(), **started_with}
    data.update({name: getattr(current, name) for name in CURRENT_SETTINGS})
    return RunConfig.from_json(data)


def preference_steps(objective: str, rows: int, epochs: float, steps: int | None) -> int:
    """The optimizer steps of a round's preference pass over ``rows`` rows: dpo and spin take
    ``epochs`` over their own rows whatever ``steps`` (fixed steps, e.g. an experiment's verified arm's)
    say; sft+dpo's pass takes half of fixed ``steps``, never more than its rows' own epochs."""
    own = optimizer_steps(rows, epochs)
    return own if objective in (DPO, SPIN) or steps is None else min(own, steps // 2)


class SelfPlayRun:
    """A run directory (store, checkpoints, summaries) plus the sandbox and model that work on it.

    ``before_step`` is called before every model load, generate call and training run: the daemon's
    stop points (it raises to stop there; nothing of the step has started). ``generation``: more
    ``load_backend`` options for where generation runs (``replicas``, ``ray_address``): chosen per
    invocation, like the sandbox, not recorded as a setting of the run.
    """

    def __init__(
        self,
        run_dir: Path,
        config: RunConfig,
        sandbox: Sandbox,
        log: Callable[[str], None] = log_to_stderr,
        show_progress: bool = True,
        before_step: Callable[[], None] = nothing,
        generation: Mapping[str, object] | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.generation = dict(generation or {})
        self.config = config
        self.sandbox = sandbox
        self.log = log
        self.show_progress = show_progress
        self.before_step = before_step
        seeds = load_seeds("train")
        self.eval = load_eval_set(config, seeds)
        self.store = open_run_store(self.run_dir, config)
        self.store.block_hashes(self.eval.index.hashes(), f"evaluation set {self.eval.name}")
        self.store.add_seed_puzzles((s, canonical_hash(s.puzzle.source)) for s in seeds)
        self._backend: ModelBackend | None = None
        self._backend_key: tuple | None = None

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        self.store.close()

    def __enter__(self) -> SelfPlayRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ models

    @property
    def base_model(self) -> str:
        if self.config.model is not None:
            return self.config.model
        from factory.loop.corpus import embedded_model_path

        return embedded_model_path(log=self.log)

    def model_for_round(self, round: int) -> str:
        """The model that generates in ``round``: the previous round's checkpoint, else the base model."""
        for earlier in range(round - 1, 0, -1):
            checkpoint = self.store.checkpoint(earlier)
            if checkpoint is not None:
                return checkpoint.path
        return self.base_model

    def backend(self, model: str, c: RunConfig) -> ModelBackend:
        options: dict[str, object] = {"batch_size": c.batch_size} if c.backend == "transformers" else {}
        if c.backend == "openai" and c.base_url:
            options["base_url"] = c.base_url
        options.update(self.generation)
        key = (model, tuple(sorted(options.items())))
        if self._backend is not None and self._backend_key == key:
            return self._backend
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        self.before_step()
        self._backend = load_backend(c.backend, model, **options)
        self._backend_key = key
        return self._backend

    def generate(self, backend: ModelBackend, prompts: list[str], sampling: SamplingConfig):
        self.before_step()
        return backend.generate(prompts, sampling)

    @staticmethod
    def sampling(c: RunConfig, n: int, seed: int, temperature: float) -> SamplingConfig:
        return SamplingConfig(
            n=n,
            max_new_tokens=c.max_new_tokens,
            temperature=temperature,
            top_p=c.top_p,
            stop=tuple(STOP_SEQUENCES),
            seed=seed,
        )

    # ------------------------------------------------------------------ rounds

    def next_round(self) -> int:
        rounds = [r for r in self.store.rounds() if r.round > 0]
        unfinished = [r.round for r in rounds if r.finished_at is None]
        if unfinished:
            return min(unfinished)
        return max((r.round for r in rounds), default=0) + 1

    def finished_rounds(self) -> int:
        return sum(1 for r in self.store.rounds() if r.round > 0 and r.finished_at is not None)

    def evaluate_base(self) -> dict[int, float]:
        """Round 0: the base model's pass@k, measured once per run."""
        return self._evaluate(0, self.base_model, self.config)

    def start_round(self, round: int) -> tuple[str, RunConfig]:
        """Record ``round`` as started (model and settings, kept from its first start); returns the
        model it generates with and the settings it runs with."""
        current = self.config.to_json()
        started = self.store.start_round(round, self.model_for_round(round), settings=current)
        c = round_config(self.store.round_settings(round), self.config)
        kept = c.to_json()
        changed = [f"{name}={kept[name]!r}" for name, value in current.items() if kept.get(name) != value]
        if changed:
            self.log(
                f"round {round} resumes with the settings it started with ({', '.join(changed)}); "
                f"the new values apply from round {round + 1}"
            )
        return started.model, c

    def run_round(self, round: int) -> dict:
        model, c = self.start_round(round)
        started = time.perf_counter()
        self.log(f"round {round}: generating with {model}")
        self.propose(round, model, c)
        self.solve(round, model, c)
        select_pairs(self.store, round, c.max_pairs_per_puzzle)
        trained = self.train(round, c) if c.train else None
        pass_at_k = self._evaluate(round, trained or model, c)
        summary = round_summary(
            self.store, round, model, self.eval.name, pass_at_k, time.perf_counter() - started
        )
        self.store.finish_round(round, summary)
        self._write_summary(round, summary)
        return summary

    # ------------------------------------------------------------------ propose and filter

    def propose(self, round: int, model: str, c: RunConfig) -> None:
        batches = math.ceil(c.puzzles / c.batch_size)
        todo = [b for b in range(batches) if not self.store.is_batch_done(round, PROPOSE_STAGE, b)]
        if not todo:
            return
        pool = [p.source for p in self.store.pool_puzzles(up_to_round=round - 1)]
        if not pool:
            raise UserError("the seed pool is empty: nothing to show the model as examples")
        backend = self.backend(model, c)
        for b in self._progress(todo, f"round {round} propose"):
            indices = range(b * c.batch_size, min((b + 1) * c.batch_size, c.puzzles))
            prompts, prefixes = [], []
            for i in indices:
                prompt, prefix = propose_prompt(
                    pool, random.Random(f"{c.seed}:{round}:propose:{i}"), c.propose_examples
                )
                prompts.append(prompt)
                prefixes.append(prefix)
            t0 = time.perf_counter()
            sampling = self.sampling(c, 1, seed_of(c.seed, round, "propose", b), c.propose_temperature)
            outputs = self.generate(backend, prompts, sampling)
            t1 = time.perf_counter()
            raws = [
                complete_function(prefix, out[0].text) for prefix, out in zip(prefixes, outputs, strict=True)
            ]
            rows = filter_proposals(
                list(indices), raws, self.store.known_hashes(), self.eval.index, self.sandbox, c.timeout_s
            )
            tokens = sum(out[0].tokens for out in outputs)
            timings = {"propose.generate": t1 - t0, "propose.filter": time.perf_counter() - t1}
            self.store.record_proposals(round, b, rows, timings=timings, tokens=tokens)

    # ------------------------------------------------------------------ solve and verify

    def solve(self, round: int, model: str, c: RunConfig) -> None:
        puzzles = self.store.puzzles_of_round(round)
        batches = math.ceil(len(puzzles) / c.batch_size)
        todo = [b for b in range(batches) if not self.store.is_batch_done(round, SOLVE_STAGE, b)]
        if not todo:
            return
        examples = ExampleIndex(self.store.training_pairs(up_to_round=round - 1))
        backend = self.backend(model, c)
        for b in self._progress(todo, f"round {round} solve"):
            chunk = puzzles[b * c.batch_size : (b + 1) * c.batch_size]
            prompts, prefixes = [], []
            for stored in chunk:
                prompt, prefix = round_solve_prompt(
                    examples, stored.source, stored.canonical_hash, c.seed, round, c.solve_examples
                )
                prompts.append(prompt)
                prefixes.append(prefix)
            t0 = time.perf_counter()
            sampling = self.sampling(c, c.attempts, seed_of(c.seed, round, "solve", b), c.temperature)
            outputs = self.generate(backend, prompts, sampling)
            t1 = time.perf_counter()
            sources = [
                [complete_function(prefix, o.text) for o in outs]
                for prefix, outs in zip(prefixes, outputs, strict=True)
            ]
            pairs = [
                SourcePair(stored.source, g) for stored, gs in zip(chunk, sources, strict=True) for g in gs
            ]
            canaries = canaries_for(c.seed, round, b)
            verdicts = verify_pairs(pairs + [SourcePair(k.f, k.g) for k in canaries], self.sandbox, c.timeout_s)
            try:
                canary_counts = check_canaries(canaries, verdicts[len(pairs) :])
            except CanaryFlip as e:
                raise VerifierError(f"round {round} solve batch {b}: {e}") from None
            rows = []
            for p_index, stored in enumerate(chunk):
                for j, g in enumerate(sources[p_index]):
                    v = verdicts[p_index * c.attempts + j]
                    rows.append(AttemptRow(stored.id, j, g, v.status, v.seconds, v.detail, prompt_seed=j))
            tokens = sum(o.tokens for outs in outputs for o in outs)
            timings = {"solve.generate": t1 - t0, "solve.verify": time.perf_counter() - t1}
            self.store.record_attempts(round, b, rows, timings=timings, tokens=tokens, canaries=canary_counts)

    # ------------------------------------------------------------------ train and evaluate

    def train(self, round: int, c: RunConfig) -> str:
        """Fine-tune by ``c.objective``; returns the checkpoint path (the generating model's when a
        preference objective finds no pair this round: it is not trained then).

        sft: seeds plus every verified pair so far, from the base model (the previous round's with
        ``incremental``). dpo: the round's preference pairs (``factory.loop.preferences``), from and
        against the model that generated them. spin: verified solutions over the generating model's own
        other samples, from and against that model (the previous iteration's). sft+dpo: sft, then dpo
        from and against the sft checkpoint; with fixed ``steps`` the dpo pass takes up to half of them
        (``preference_steps``; dpo and spin always train their own epochs over their rows). With a
        weighting the preference rows are resampled by their puzzle's weight (``factory.loop.weights``).
        """
        done = self.store.checkpoint(round)
        if done is not None and Path(done.path, "config.json").exists():
            return done.path
        texts = self.training_texts(round, c)
        generator = self.model_for_round(round)
        base = generator if c.incremental or c.objective in (DPO, SPIN) else self.base_model
        out_dir = self.run_dir / "checkpoints" / f"round-{round}"
        rows = self.training_rows(round, c)
        examples = len(texts) if c.objective in (SFT, SFT_DPO) else len(rows)
        if (out_dir / "config.json").exists():  # saved (atomically) but killed before it was recorded
            self.store.record_checkpoint(round, str(out_dir), base, examples, 0.0)
            self.store.mark_batch_done(round, TRAIN_STAGE, 0, examples)
            return str(out_dir)
        if c.objective in (DPO, SPIN) and not rows:
            self.log(f"round {round}: no preference pairs ({c.objective}); the model is not trained this round")
            return generator
        from factory.models.train import fine_tune, fine_tune_preferences

        self.before_step()
        if self._backend is not None:  # a generation engine holds no memory while the model trains
            self._backend.close()
            self._backend = None
        steps = self.steps_of(round, c, texts, rows)
        options = {"epochs": c.epochs, "learning_rate": c.learning_rate, "lora": c.lora,
                   "seed": seed_of(c.seed, round, "train", 0), "log": self.log}
        seconds, sft_done, probed = 0.0, 0, {}
        reference = generator
        if c.objective in (SFT, SFT_DPO):
            sft_steps, dpo_steps, sft_out = steps, None, out_dir
            if c.objective == SFT_DPO and rows and (steps is None or steps >= 2):
                sft_out = out_dir.with_name(f"round-{round}-sft")
                if steps is not None:
                    dpo_steps = preference_steps(c.objective, len(rows), c.epochs, steps)
                    sft_steps = steps - dpo_steps
            if not (sft_out / "config.json").exists():
                self.log(f"round {round}: fine-tuning {base} on {len(texts)} texts")
                probes = self.information_probes(round, c)
                seconds += fine_tune(base, texts, sft_out, steps=sft_steps, probes=probes, **options).seconds
            facts = read_training_facts(sft_out)
            sft_done = facts.steps
            probed = {"probe_loss": facts.probe_loss} if facts.probe_loss else {}
            if (gain := facts.information_gain) is not None:
                self.log(f"round {round}: information gain {gain:+.3f} (base loss on its pairs minus on seeds)")
            if sft_out == out_dir:
                self._record_training(round, out_dir, base, examples, seconds)
                return str(out_dir)
            base = reference = str(sft_out)
            steps = dpo_steps
        self.log(f"round {round}: {c.objective} of {base} on {len(rows)} preference pairs against {reference}")
        report = fine_tune_preferences(
            base, rows, out_dir, ref_model=reference, steps=steps, facts={"sft_steps": sft_done, **probed}, **options
        )
        self._record_training(round, out_dir, base, examples, seconds + report.seconds)
        return str(out_dir)

    def information_probes(self, round: int, c: RunConfig) -> dict[str, list[str]]:
        """The texts whose loss under the base model measures what ``round`` adds (``probe_loss`` of the
        checkpoint's ``training.json``): its new verified pairs, and as many seed pairs (a seeded sample)."""
        new = [(p.puzzle_source, p.solution_source) for p in self.store.stored_pairs(round) if p.round == round]
        if not new:
            return {}
        seeds = self.store.training_pairs(up_to_round=0)
        sample = random.Random(f"{c.seed}:{round}:probes").sample(seeds, min(len(seeds), max(len(new), 32)))
        return {"round": [training_example(f, g) for f, g in new], "seeds": [training_example(f, g) for f, g in sample]}

    def _record_training(self, round: int, out_dir: Path, base: str, examples: int, seconds: float) -> None:
        self.store.record_checkpoint(round, str(out_dir), base, examples, seconds)
        self.store.mark_batch_done(round, TRAIN_STAGE, 0, examples, timings={"train": seconds})

    def training_texts(self, round: int, c: RunConfig) -> list[str]:
        """What ``round`` fine-tunes on: seeds plus every verified pair so far as solve blocks (resampled
        by ``c.weighting``), and listings of the pool (the recipe; the control arms of
        ``factory.loop.experiment`` replace it)."""
        pairs = weighted_pairs(self.store, round, c.weighting)
        pool = [p.source for p in self.store.pool_puzzles(up_to_round=round)]
        rng = random.Random(f"{c.seed}:{round}:listings")
        return training_texts(pairs, pool, len(pairs) // 3, c.propose_examples, rng)

    def training_rows(self, round: int, c: RunConfig) -> list[dict]:
        """The preference rows ``round`` trains on (none for sft): the round's dpo rows (spin's for spin),
        resampled by their puzzle's weight under ``c.weighting``."""
        if c.objective == SFT:
            return []
        rows = preference_rows(self.store, [round], kind=SPIN if c.objective == SPIN else DPO)
        return [r.to_dict() for r in weighted_rows(rows, c.weighting)]

    def steps_of(self, round: int, c: RunConfig, texts: Sequence[str], rows: Sequence[dict]) -> int | None:
        """The optimizer steps ``round`` trains for (sft+dpo: both passes): dpo and spin their own
        epochs over their ``rows`` (``preference_steps``) whatever an experiment sets, the others
        ``training_steps``."""
        if c.objective in (DPO, SPIN):
            return preference_steps(c.objective, len(rows), c.epochs, None)
        return self.training_steps(round, c, texts)

    def training_steps(self, round: int, c: RunConfig, texts: Sequence[str]) -> int | None:
        """The optimizer steps of ``round``'s fine-tuning; None: ``c.epochs`` over ``texts`` decide."""
        return None

    def _evaluate(self, round: int, model: str, c: RunConfig) -> dict[int, float]:
        settings = eval_settings(c)
        recorded = {e.k: e.pass_at_k for e in self.store.evals(round) if e.dataset == self.eval.name}
        if settings.ks and all(k in recorded for k in settings.ks):
            return recorded
        puzzles = self.eval.puzzles[: c.eval_limit] if c.eval_limit else self.eval.puzzles
        self.log(
            f"round {round}: evaluating {model} on {self.eval.name} ({len(puzzles)} puzzles x {c.eval_samples})"
        )
        result = evaluate(
            self.backend(model, c),
            puzzles,
            seed_training_pairs(),
            self.sandbox,
            self.eval.name,
            settings,
            before_batch=self.before_step,
        )
        if round > 0:  # round 0 (the base model) has no rounds row to hang a marker on
            timings = {f"eval.{k}": v for k, v in result.seconds.items()}
            self.store.mark_batch_done(
                round, EVAL_STAGE, 0, result.total, timings=timings, tokens=result.tokens
            )
        for k, value in result.pass_at_k.items():
            self.store.record_eval(
                round=round,
                model=model,
                dataset=self.eval.name,
                k=k,
                n=c.eval_samples,
                pass_at_k=value,
                solved=result.solved_puzzles,
                total=result.total,
                details={"solved": result.solved, "first_verified": result.first_verified},
            )
        return result.pass_at_k

    # ------------------------------------------------------------------ outputs

    def _write_summary(self, round: int, summary: dict) -> None:
        path = self.run_dir / "rounds" / f"round-{round}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".partial")
        temporary.write_text(json.dumps(summary, indent=2))
        temporary.replace(path)

    def _progress(self, items: Sequence[int], label: str):
        from tqdm import tqdm

        return tqdm(
            items,
            desc=label,
            unit="batch",
            file=sys.stderr,
            disable=not (self.show_progress and sys.stderr.isatty()),
            leave=False,
        )


class RoundEvents:
    """What ``run_rounds`` tells its caller; the default prints the summaries to stderr (the CLI's)."""

    def base_evaluated(self, pass_at_k: dict[int, float]) -> None:
        log_to_stderr("round 0 (base model): " + ", ".join(f"pass@{k} {v:.3f}" for k, v in pass_at_k.items()))

    def round_started(self, round: int, model: str) -> None:
        pass

    def round_finished(self, summary: dict) -> None:
        log_to_stderr(format_summary(summary))


def run_rounds(
    run: SelfPlayRun,
    stop_reason: Callable[[SelfPlayRun], str | None],
    events: RoundEvents | None = None,
    attempt: Callable[[Callable[[], T]], T] = lambda step: step(),
) -> str:
    """The loop shared by `factory round/run` and the daemon: evaluate the base model once (a no-op
    when the store has it), then run rounds until ``stop_reason(run)`` gives a reason, which is returned.
    ``attempt`` runs each evaluation and round (the daemon's retries it after a sandbox outage)."""
    events = events or RoundEvents()
    if (reason := stop_reason(run)) is not None:
        return reason
    events.round_started(0, run.base_model)
    events.base_evaluated(attempt(run.evaluate_base))
    while (reason := stop_reason(run)) is None:
        number = run.next_round()
        events.round_started(number, run.model_for_round(number))
        events.round_finished(attempt(functools.partial(run.run_round, number)))
    return reason
