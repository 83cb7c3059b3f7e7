"""One self-play round: propose, filter, solve, verify, select, fine-tune, evaluate.

Every stage reads its input from the run's store and writes its output there in batches, each batch
in one transaction with its completion marker. Prompts and sampling seeds depend only on the run
seed, the round and the item, so a round that was killed and rerun redoes exactly the unfinished
batches and ends with the same store as a round that was never interrupted.
"""

from __future__ import annotations

import functools
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from factory.config import IDENTITY_FIELDS, RunConfig
from factory.errors import UserError
from factory.loop.corpus import eval_set, seed_training_pairs
from factory.loop.evaluate import eval_settings, evaluate
from factory.loop.prompts import (
    STOP_SEQUENCES,
    ExampleIndex,
    propose_prompt,
    puzzle_listing,
    solve_prompt,
    training_example,
)
from factory.loop.seeds import seed_of
from factory.loop.summary import format_summary, round_summary
from factory.models import ModelBackend, SamplingConfig, load_backend
from factory.store import PROPOSE_STAGE, SOLVE_STAGE, AttemptRow, ProposalRow, RunStore
from puzzles.canonical import canonical_hash
from puzzles.filters import EvalIndex, probe_answers
from puzzles.parse import complete_function, parse_puzzle
from puzzles.records import InvalidProgram, Puzzle
from puzzles.seeds import load_seeds
from sandbox.backend import Sandbox
from sandbox.verdicts import ERROR, VERIFIED, WRONG
from sandbox.verify import SourcePair, probe_job, verify_pairs

TRAIN_STAGE = "train"
EVAL_STAGE = "eval"
T = TypeVar("T")


def log_to_stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


class SelfPlayRun:
    """A run directory (store, checkpoints, summaries) plus the sandbox and model that work on it."""

    def __init__(
        self,
        run_dir: Path,
        config: RunConfig,
        sandbox: Sandbox,
        log: Callable[[str], None] = log_to_stderr,
        show_progress: bool = True,
    ):
        self.run_dir = Path(run_dir)
        self.config = config
        self.sandbox = sandbox
        self.log = log
        self.show_progress = show_progress
        self.store = RunStore.open(self.run_dir)
        self._check_identity()
        self.eval_name, self.eval_puzzles = eval_set(
            Path(config.eval_p3) if config.eval_p3 else None, config.eval_split
        )
        seeds = load_seeds("train")
        self.eval_index = EvalIndex.from_sources(
            ((p.key, p.puzzle.source) for p in self.eval_puzzles),
            training=(s.puzzle.source for s in seeds),
        )
        self.store.block_hashes(self.eval_index.hashes(), f"evaluation set {self.eval_name}")
        self.store.add_seed_puzzles((s, canonical_hash(s.puzzle.source)) for s in seeds)
        self._backend: ModelBackend | None = None

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

    def _check_identity(self) -> None:
        stored = self.store.record_config(self.config.to_json())
        for name in IDENTITY_FIELDS:
            if stored.get(name) != self.config.to_json()[name]:
                raise UserError(
                    f"{self.run_dir} was started with {name}={stored.get(name)!r}, not {self.config.to_json()[name]!r}: "
                    "use a new --run-dir, or the same settings to resume"
                )

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

    def backend(self, model: str) -> ModelBackend:
        if self._backend is not None and self._backend.name == model:
            return self._backend
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        options = {"batch_size": self.config.batch_size} if self.config.backend == "transformers" else {}
        if self.config.backend == "openai" and self.config.base_url:
            options["base_url"] = self.config.base_url
        self._backend = load_backend(self.config.backend, model, **options)
        return self._backend

    def sampling(self, n: int, seed: int, temperature: float) -> SamplingConfig:
        c = self.config
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
        return self._evaluate(0, self.base_model)

    def run_round(self, round: int) -> dict:
        model = self.model_for_round(round)
        self.store.start_round(round, model)
        started = time.perf_counter()
        self.log(f"round {round}: generating with {model}")
        self.propose(round, model)
        self.solve(round, model)
        self.store.select_pairs(round, self.config.max_pairs_per_puzzle)
        trained = self.train(round) if self.config.train else None
        pass_at_k = self._evaluate(round, trained or model)
        summary = round_summary(
            self.store, round, self.model_for_round(round), self.eval_name, pass_at_k,
            time.perf_counter() - started,
        )
        self.store.finish_round(round, summary)
        self._write_summary(round, summary)
        return summary

    # ------------------------------------------------------------------ propose and filter

    def propose(self, round: int, model: str) -> None:
        c = self.config
        batches = math.ceil(c.puzzles / c.batch_size)
        todo = [b for b in range(batches) if not self.store.is_batch_done(round, PROPOSE_STAGE, b)]
        if not todo:
            return
        pool = [p.source for p in self.store.pool_puzzles(up_to_round=round - 1)]
        if not pool:
            raise UserError("the seed pool is empty: nothing to show the model as examples")
        backend = self.backend(model)
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
            outputs = backend.generate(prompts, self.sampling(1, seed_of(c.seed, round, "propose", b), c.propose_temperature))
            t1 = time.perf_counter()
            raws = [
                complete_function(prefix, out[0].text) for prefix, out in zip(prefixes, outputs, strict=True)
            ]
            rows = self.filter_proposals(list(indices), raws)
            tokens = sum(out[0].tokens for out in outputs)
            timings = {"propose.generate": t1 - t0, "propose.filter": time.perf_counter() - t1}
            self.store.record_proposals(round, b, rows, timings=timings, tokens=tokens)

    def filter_proposals(self, indices: Sequence[int], raws: Sequence[str]) -> list[ProposalRow]:
        """Parse, reject bool answers, dedup, decontaminate, then probe the survivors in the sandbox."""
        known = self.store.known_hashes()
        rows: dict[int, ProposalRow] = {}
        candidates: list[tuple[int, str, Puzzle, str]] = []
        for idx, raw in zip(indices, raws, strict=True):
            try:
                puzzle = parse_puzzle(raw)
                digest = canonical_hash(puzzle.source)
            except InvalidProgram as e:
                rows[idx] = ProposalRow(idx, raw, "invalid", str(e), prompt_seed=idx)
                continue
            if puzzle.answer_type == "bool":
                rows[idx] = ProposalRow(
                    idx, raw, "trivial", "a bool answer is found by trying True and False", idx
                )
            elif digest in known:
                rows[idx] = ProposalRow(
                    idx, raw, "duplicate", "same canonical form as an earlier puzzle", idx
                )
            elif (why := self.eval_index.contamination(puzzle.source)) is not None:
                rows[idx] = ProposalRow(idx, raw, "contaminated", why, idx)
            else:
                known.add(digest)
                candidates.append((idx, raw, puzzle, digest))
        probed = self.probe([puzzle for _, _, puzzle, _ in candidates])
        for (idx, raw, puzzle, digest), (status, why) in zip(candidates, probed, strict=True):
            if status:
                rows[idx] = ProposalRow(idx, raw, status, why, idx)
            else:
                rows[idx] = ProposalRow(idx, raw, "accepted", "", idx, puzzle, digest)
        return [rows[idx] for idx in indices]

    def probe(self, puzzles: Sequence[Puzzle]) -> list[tuple[str, str]]:
        """Run each puzzle on cheap answers of its type in the sandbox: ("trivial", why) when one
        solves it, ("invalid", why) when every probe hits a name the puzzle never defines or gets
        something other than a bool back (it can never be solved), ("", "") otherwise."""
        jobs, owners, probes = [], [], []
        for p_index, puzzle in enumerate(puzzles):
            for answer in probe_answers(puzzle.answer_type):
                jobs.append(probe_job(len(jobs), puzzle, answer, min(1.0, self.config.timeout_s)))
                owners.append(p_index)
                probes.append(answer)
        solved_by: list[object] = [None] * len(puzzles)
        name_errors = [0] * len(puzzles)
        not_bool = [0] * len(puzzles)  # f returned something other than a bool
        counts = [0] * len(puzzles)
        for result, owner, answer in zip(self.sandbox.run(jobs), owners, probes, strict=True):
            counts[owner] += 1
            if result.status == VERIFIED and solved_by[owner] is None:
                solved_by[owner] = answer
            elif result.status == ERROR and ("NameError" in result.detail or "UnboundLocalError" in result.detail):
                name_errors[owner] += 1
            elif result.status == WRONG and result.detail.startswith("f returned ") and result.detail != "f returned False":
                not_bool[owner] += 1
        verdicts = []
        for i in range(len(puzzles)):
            if solved_by[i] is not None:
                verdicts.append(("trivial", f"solved by the probe answer {solved_by[i]!r}"))
            elif name_errors[i] == counts[i]:
                verdicts.append(("invalid", "uses a name it never defines (NameError on every probe)"))
            elif not_bool[i] == counts[i]:
                verdicts.append(("invalid", "returns something other than a bool on every probe"))
            else:
                verdicts.append(("", ""))
        return verdicts

    # ------------------------------------------------------------------ solve and verify

    def solve(self, round: int, model: str) -> None:
        c = self.config
        puzzles = self.store.puzzles_of_round(round)
        batches = math.ceil(len(puzzles) / c.batch_size)
        todo = [b for b in range(batches) if not self.store.is_batch_done(round, SOLVE_STAGE, b)]
        if not todo:
            return
        examples = ExampleIndex(self.store.training_pairs(up_to_round=round - 1))
        backend = self.backend(model)
        for b in self._progress(todo, f"round {round} solve"):
            chunk = puzzles[b * c.batch_size : (b + 1) * c.batch_size]
            prompts, prefixes = [], []
            for stored in chunk:
                rng = random.Random(f"{c.seed}:{round}:solve:{stored.canonical_hash}")
                nearest = examples.nearest(stored.source, c.solve_examples)
                prompt, prefix = solve_prompt(nearest, stored.source, rng, c.solve_examples)
                prompts.append(prompt)
                prefixes.append(prefix)
            t0 = time.perf_counter()
            outputs = backend.generate(prompts, self.sampling(c.attempts, seed_of(c.seed, round, "solve", b), c.temperature))
            t1 = time.perf_counter()
            sources = [
                [complete_function(prefix, o.text) for o in outs]
                for prefix, outs in zip(prefixes, outputs, strict=True)
            ]
            pairs = [
                SourcePair(stored.source, g) for stored, gs in zip(chunk, sources, strict=True) for g in gs
            ]
            verdicts = verify_pairs(pairs, self.sandbox, c.timeout_s)
            rows = []
            for p_index, stored in enumerate(chunk):
                for j, g in enumerate(sources[p_index]):
                    v = verdicts[p_index * c.attempts + j]
                    rows.append(AttemptRow(stored.id, j, g, v.status, v.seconds, v.detail, prompt_seed=j))
            tokens = sum(o.tokens for outs in outputs for o in outs)
            timings = {"solve.generate": t1 - t0, "solve.verify": time.perf_counter() - t1}
            self.store.record_attempts(round, b, rows, timings=timings, tokens=tokens)

    # ------------------------------------------------------------------ train and evaluate

    def train(self, round: int) -> str:
        """Fine-tune on seeds plus every verified pair so far; returns the checkpoint path."""
        from factory.models.train import fine_tune

        done = self.store.checkpoint(round)
        if done is not None and Path(done.path, "config.json").exists():
            return done.path
        c = self.config
        pairs = self.store.training_pairs(up_to_round=round)
        texts = [training_example(f, g) for f, g in pairs]
        pool = [p.source for p in self.store.pool_puzzles(up_to_round=round)]
        rng = random.Random(f"{c.seed}:{round}:listings")
        texts += [
            puzzle_listing(rng.sample(pool, min(c.propose_examples, len(pool))))
            for _ in range(len(pairs) // 3)
        ]
        base = self.model_for_round(round) if c.incremental else self.base_model
        out_dir = self.run_dir / "checkpoints" / f"round-{round}"
        if (out_dir / "config.json").exists():  # saved (atomically) but killed before it was recorded
            self.store.record_checkpoint(round, str(out_dir), base, len(texts), 0.0)
            self.store.mark_batch_done(round, TRAIN_STAGE, 0, len(texts))
            return str(out_dir)
        self.log(
            f"round {round}: fine-tuning {base} on {len(pairs)} pairs and {len(texts) - len(pairs)} listings"
        )
        report = fine_tune(
            base,
            texts,
            out_dir,
            epochs=c.epochs,
            learning_rate=c.learning_rate,
            lora=c.lora,
            seed=seed_of(c.seed, round, "train", 0),
            log=self.log,
        )
        self.store.record_checkpoint(round, str(out_dir), base, len(texts), report.seconds)
        self.store.mark_batch_done(round, TRAIN_STAGE, 0, len(texts), timings={"train": report.seconds})
        return str(out_dir)

    def _evaluate(self, round: int, model: str) -> dict[int, float]:
        c = self.config
        ks = [k for k in c.eval_ks if k <= c.eval_samples]
        recorded = {e.k: e.pass_at_k for e in self.store.evals(round) if e.dataset == self.eval_name}
        if ks and all(k in recorded for k in ks):
            return recorded
        settings = eval_settings(c)
        puzzles = self.eval_puzzles[: c.eval_limit] if c.eval_limit else self.eval_puzzles
        self.log(
            f"round {round}: evaluating {model} on {self.eval_name} ({len(puzzles)} puzzles x {c.eval_samples})"
        )
        result = evaluate(
            self.backend(model), puzzles, seed_training_pairs(), self.sandbox, self.eval_name, settings
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
                dataset=self.eval_name,
                k=k,
                n=c.eval_samples,
                pass_at_k=value,
                solved=result.solved_puzzles,
                total=result.total,
                details={"solved": result.solved},
            )
        return result.pass_at_k

    def _write_summary(self, round: int, summary: dict) -> None:
        path = self.run_dir / "rounds" / f"round-{round}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".partial")
        temporary.write_text(json.dumps(summary, indent=2))
        temporary.replace(path)

    def _progress(self, items: Sequence[int], label: str):
        import sys

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
    events.base_evaluated(attempt(run.evaluate_base))
    while (reason := stop_reason(run)) is None:
        number = run.next_round()
        events.round_started(number, run.model_for_round(number))
        events.round_finished(attempt(functools.partial(run.run_round, number)))
    return reason
