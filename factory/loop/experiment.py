"""Control arms: runs that differ only in what they fine-tune on.

`factory experiment --run-dir D --arms verified,unverified,seeds-only` keeps one run directory per arm
(``D/<arm>/``, a store of its own, so status, report and export work on each) and runs them round by
round with the same settings, base model and evaluation, and (but for dpo and spin) the same number of
optimizer steps:

- ``verified``: the recipe of every run (``SelfPlayRun.training_texts``): seeds plus verified pairs;
- ``unverified``: seeds plus the same generated puzzles and attempts with the verdicts ignored: every
  attempt whose source parses, deduplicated and capped per puzzle by the select stage's own rule
  (``choose_pairs``: the ``max_pairs_per_puzzle`` shortest distinct), verified or not (the ablation of
  Haluptzok et al. 2023);
- ``seeds-only``: the seed pairs alone, no self-play data;
- ``dpo``, ``spin``, ``sft+dpo``: the verified arm's data with another training objective
  (``RunConfig.objective``, see ``SelfPlayRun.train``): its preference pairs. ``sft`` names the
  verified arm;
- ``sft+learnability``, ``sft+novelty``: the verified arm's pairs resampled by learnability or by
  novelty (``RunConfig.weighting``, ``factory.loop.weights``).

Each arm's texts go through the same ``training_texts`` (solve blocks, then ``len(pairs) // 3``
listings of its pool). Every sft arm trains for the steps the verified arm's recipe takes in that
round, ``optimizer_steps(len(verified texts), epochs)``, so the learning-rate schedule is the same too;
sft+dpo splits those steps, its dpo pass taking at most its rows' own epochs (``preference_steps``).
The pure preference arms, dpo and spin, train their own schedule, ``optimizer_steps(len(rows),
epochs)``: the verified arm's steps over a round's few preference rows are many epochs of DPO, which
over-optimises (measured: 166 steps on 14 pairs took pass@1 from 0.157 to 0.021). The steps are in each
checkpoint's ``training.json`` and the comparison's ``train``.

Round 1 generates once, in the verified arm; the other arms copy its proposals and attempts, batch by
batch with their markers, and its base-model evaluation, so round 1 compares the filters on one set of
generations. Later rounds continue each arm with its own model (its generation, verification and
pairs are its own; only its training texts follow its arm). The verified arm runs each round first.
Rounds run through ``run_rounds`` on each arm's store, so a killed experiment resumes where it
stopped: rerun the same command.

``comparison(D)`` reads the arms' stores: pass@k with 95% bootstrap intervals per arm and round, the
training texts and steps, and each arm's paired difference to seeds-only; ``D/experiment.json`` holds
it after every round.
"""

from __future__ import annotations

import ast
import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from factory.config import RunConfig
from factory.errors import UserError
from factory.loop.confidence import (
    paired_difference_interval,
    pass_at_k_interval,
    per_puzzle_pass_at_k,
    puzzle_counts,
    rounded,
)
from factory.loop.corpus import training_texts
from factory.loop.run import RoundEvents, SelfPlayRun, log_to_stderr, open_run_store, run_rounds
from factory.loop.select import choose_pairs
from factory.loop.summary import format_summary
from factory.models.steps import TrainingFacts, optimizer_steps, read_training_facts
from factory.store import (
    ACCEPTED,
    PROPOSE_STAGE,
    SOLVE_STAGE,
    STORE_FILENAME,
    AttemptRow,
    EvalRecord,
    ProposalRow,
    RunStore,
    StoredAttempt,
    StoredProposal,
    StoredPuzzle,
)
from sandbox.backend import Sandbox
from sandbox.canaries import CanaryCounts
from sandbox.verdicts import VERIFIED

VERIFIED_ARM = "verified"
UNVERIFIED_ARM = "unverified"
SEEDS_ONLY_ARM = "seeds-only"
# Arms that train on the verified arm's data with another objective (RunConfig.objective).
OBJECTIVE_ARMS = {"dpo": "dpo", "spin": "spin", "sft+dpo": "sft+dpo"}
LEARNABILITY_ARM = "sft+learnability"  # the verified arm's data resampled by learnability
NOVELTY_ARM = "sft+novelty"  # the verified arm's data resampled by novelty
# Arms that train on the verified arm's data resampled by a weighting (RunConfig.weighting).
WEIGHTING_ARMS = {LEARNABILITY_ARM: "learnability", NOVELTY_ARM: "novelty"}
ARMS = (VERIFIED_ARM, UNVERIFIED_ARM, SEEDS_ONLY_ARM, *OBJECTIVE_ARMS, *WEIGHTING_ARMS)
# The control arms an arm's pass@k is compared with, and the key of that comparison in an arm's record
# (``comparison``): seeds-only for every arm; unverified for the verified arm (what the filter adds).
CONTROLS = ((SEEDS_ONLY_ARM, "over_seeds_only"), (UNVERIFIED_ARM, "over_unverified"))
ALIASES = {"sft": VERIFIED_ARM}  # the verified arm is the sft objective
EXPERIMENT_FILENAME = "experiment.json"


def parse_arms(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"verified,seeds-only"`` -> the arms in ``ARMS`` order; the verified arm is required (round 1
    generates in it, and it sets the other arms' steps)."""
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else [n.strip() for n in text]
    names = [ALIASES.get(n, n) for n in names]
    unknown = [n for n in names if n not in ARMS]
    if unknown or not names:
        raise UserError(
            f"unknown arm {', '.join(map(repr, unknown)) or '(none)'}: choose among {', '.join(ARMS)} (sft = verified)"
        )
    if VERIFIED_ARM not in names:
        raise UserError(f"the arms must include {VERIFIED_ARM!r}: round 1 generates in it and it sets the steps")
    return tuple(arm for arm in ARMS if arm in names)


def arm_config(config: RunConfig, arm: str) -> RunConfig:
    """The settings an arm runs with: the experiment's, with the arm's objective (sft but for the
    objective arms) and weighting (none but for the weighting arms)."""
    return replace(config, objective=OBJECTIVE_ARMS.get(arm, "sft"), weighting=WEIGHTING_ARMS.get(arm, "none"))


def arm_dirs(root: Path | str) -> dict[str, Path]:
    """The arms of the experiment at ``root`` that have a store, in ``ARMS`` order."""
    return {arm: Path(root) / arm for arm in ARMS if (Path(root) / arm / STORE_FILENAME).exists()}


def is_experiment(root: Path | str) -> bool:
    """Whether ``root`` holds an experiment's arms (and no run store of its own)."""
    root = Path(root)
    return not (root / STORE_FILENAME).exists() and bool(arm_dirs(root))


# ---------------------------------------------------------------------------------------------------
# what each arm trains on


def parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def unverified_attempts(store: RunStore, round: int, max_per_puzzle: int) -> list[StoredAttempt]:
    """The attempts of ``round`` the unverified arm keeps: those that parse, chosen by the select
    stage's rule as if every one were verified (distinct, shortest first, ``max_per_puzzle`` a puzzle),
    in its order (puzzle by puzzle), with their own verdicts."""
    attempts = {a.id: a for a in store.attempts_of_round(round) if parses(a.source)}
    as_if_verified = [replace(a, status=VERIFIED) for a in attempts.values()]
    return [attempts[a.id] for a in choose_pairs(as_if_verified, {}, max_per_puzzle)]


def control_data(
    store: RunStore, round: int, arm: str, max_per_puzzle: int
) -> tuple[list[tuple[str, str]], list[str]]:
    """(pairs, listing pool) of a control arm (unverified or seeds-only) up to ``round``: the seed
    pairs, plus for the unverified arm the ``unverified_attempts`` of every round so far."""
    pairs = store.training_pairs(up_to_round=0)
    pool = [p.source for p in store.pool_puzzles(up_to_round=0)]
    if arm == SEEDS_ONLY_ARM:
        return pairs, pool
    if arm != UNVERIFIED_ARM:
        raise ValueError(f"{arm!r} is not a control arm")
    for r in range(1, round + 1):
        attempts = unverified_attempts(store, r, max_per_puzzle)
        sources = {p.id: p.source for p in store.puzzles_of_round(r)}
        pairs += [(sources[a.puzzle_id], a.source) for a in attempts]
        pool += [sources[i] for i in sorted({a.puzzle_id for a in attempts})]
    return pairs, pool


# ---------------------------------------------------------------------------------------------------
# one arm


class ArmRun(SelfPlayRun):
    """A run of one arm. Arms other than the verified one name its directory as ``reference``: they
    copy its round-1 generation and base evaluation, and train for the steps it trained for."""

    def __init__(
        self,
        run_dir: Path,
        config: RunConfig,
        sandbox: Sandbox | None,
        arm: str,
        reference: Path | None = None,
        **options: object,
    ):
        if arm not in ARMS:
            raise ValueError(f"unknown arm {arm!r}")
        if (arm == VERIFIED_ARM) != (reference is None):
            raise ValueError("the verified arm has no reference; every other arm has the verified arm's")
        super().__init__(run_dir, config, sandbox, **options)  # type: ignore[arg-type]
        self.arm = arm
        self.reference = Path(reference) if reference is not None else None

    def _reference_store(self) -> RunStore:
        assert self.reference is not None
        return RunStore.open(self.reference, create=False)

    def evaluate_base(self) -> dict[int, float]:
        if self.reference is not None:
            with self._reference_store() as source:
                copied = copy_evals(source.evals(0), self.store, self.eval.name)
            if copied:
                return copied
        return super().evaluate_base()

    def propose(self, round: int, model: str, c: RunConfig) -> None:
        if round == 1 and self.reference is not None:
            self.log(f"round 1: copying the proposals and attempts of {self.reference} (no generation)")
            with self._reference_store() as source:
                copy_stage(source, self.store, round, PROPOSE_STAGE)
            return
        super().propose(round, model, c)

    def solve(self, round: int, model: str, c: RunConfig) -> None:
        if round == 1 and self.reference is not None:
            with self._reference_store() as source:
                copy_stage(source, self.store, round, SOLVE_STAGE)
            return
        super().solve(round, model, c)

    def training_texts(self, round: int, c: RunConfig) -> list[str]:
        if self.arm not in (UNVERIFIED_ARM, SEEDS_ONLY_ARM):
            return super().training_texts(round, c)
        pairs, pool = control_data(self.store, round, self.arm, c.max_pairs_per_puzzle)
        rng = random.Random(f"{c.seed}:{round}:listings")
        return training_texts(pairs, pool, len(pairs) // 3, c.propose_examples, rng)

    def training_steps(self, round: int, c: RunConfig, texts: Sequence[str]) -> int:
        if self.reference is None:
            return optimizer_steps(len(texts), c.epochs)
        with self._reference_store() as source:
            checkpoint = source.checkpoint(round)
        if checkpoint is None:
            raise UserError(
                f"round {round} of {self.arm}: the {VERIFIED_ARM} arm ({self.reference}) has not trained "
                "that round yet, and its steps set this arm's"
            )
        facts = read_training_facts(checkpoint.path)
        return int(facts.total_steps) if facts else optimizer_steps(checkpoint.examples, c.epochs)


def _training_of(checkpoint: str, facts: TrainingFacts) -> dict:
    """What a round's checkpoint trained on: sft texts, preference rows (dpo and spin) or both
    (sft+dpo: its sft pass is the ``round-N-sft`` checkpoint beside it), and the steps of every pass."""
    if facts.objective != "dpo":
        return {"texts": facts.examples, "steps": facts.steps}
    sft = read_training_facts(Path(checkpoint).with_name(Path(checkpoint).name + "-sft")) if facts.sft_steps else None
    return {"texts": sft.examples if sft else 0, "preference_rows": facts.examples,
            "steps": facts.steps + (facts.sft_steps or 0)}


def copy_evals(records: Iterable[EvalRecord], target: RunStore, dataset: str) -> dict[int, float]:
    """Record ``records`` of ``dataset`` in ``target`` (the same round, model and per-puzzle counts)."""
    copied: dict[int, float] = {}
    for e in records:
        if e.dataset != dataset:
            continue
        target.record_eval(
            round=e.round, model=e.model, dataset=e.dataset, k=e.k, n=e.n, pass_at_k=e.pass_at_k,
            solved=e.solved, total=e.total, details=e.details,
        )
        copied[e.k] = e.pass_at_k
    return copied


def copy_stage(source: RunStore, target: RunStore, round: int, stage: str) -> None:
    """Copy the propose or solve batches of ``round`` from ``source`` (where the round is finished)
    into ``target``, one batch per transaction with its marker, timings and tokens (and the solve
    batches' canary counts): a copy that is killed resumes with the batches it lacks."""
    info = source.round_info(round)
    if info is None or info.finished_at is None:
        raise UserError(f"round {round} of {source.path.parent} is not finished: nothing to copy yet")
    with source.snapshot() as db:
        batches = db.execute(
            "SELECT batch, timings_json, tokens FROM batches WHERE round = ? AND stage = ? ORDER BY batch",
            (round, stage),
        ).fetchall()
        canaries = {
            row[0]: CanaryCounts(*row[1:])
            for row in db.execute(
                "SELECT batch, cheats, cheats_passed, good, good_failed FROM canaries WHERE round = ? AND stage = ?",
                (round, stage),
            )
        }
        proposals = source.proposals_of_round(round)
        attempts = source.attempts_of_round(round)
        puzzles = {p.id: p for p in source.puzzles_of_round(round)}
    if stage == SOLVE_STAGE:
        ids = {p.canonical_hash: p.id for p in target.puzzles_of_round(round)}
        new_id = {old: ids[p.canonical_hash] for old, p in puzzles.items()}
    for batch, timings_json, tokens in batches:
        if target.is_batch_done(round, stage, batch):
            continue
        timings = json.loads(timings_json)
        if stage == PROPOSE_STAGE:
            rows = [proposal_row(p, puzzles) for p in proposals if p.batch == batch]
            target.record_proposals(round, batch, rows, timings=timings, tokens=tokens)
        else:
            chosen = [a for a in attempts if a.batch == batch]
            target.record_attempts(
                round, batch, [attempt_row(a, new_id[a.puzzle_id]) for a in chosen],
                timings=timings, tokens=tokens, canaries=canaries.get(batch),
            )


def proposal_row(p: StoredProposal, puzzles: Mapping[int, StoredPuzzle]) -> ProposalRow:
    if p.status == ACCEPTED:
        assert p.puzzle_id is not None
        stored = puzzles[p.puzzle_id]
        return ProposalRow(p.idx, p.raw, p.status, p.reason, p.prompt_seed, stored.puzzle, stored.canonical_hash)
    return ProposalRow(p.idx, p.raw, p.status, p.reason, p.prompt_seed)


def attempt_row(a: StoredAttempt, puzzle_id: int) -> AttemptRow:
    return AttemptRow(puzzle_id, a.idx, a.source, a.status, a.seconds, a.detail, a.prompt_seed, a.solution_hash)


# ---------------------------------------------------------------------------------------------------
# the experiment


class ArmEvents(RoundEvents):
    """The default round messages, each line prefixed with the arm."""

    def __init__(self, arm: str, log: Callable[[str], None] = log_to_stderr):
        self.arm, self.log = arm, log

    def base_evaluated(self, pass_at_k: dict[int, float]) -> None:
        self.log(f"[{self.arm}] round 0 (base model): " + ", ".join(f"pass@{k} {v:.3f}" for k, v in pass_at_k.items()))

    def round_finished(self, summary: dict) -> None:
        self.log("\n".join(f"[{self.arm}] {line}" for line in format_summary(summary).splitlines()))


def check_settings(config: RunConfig) -> None:
    """Refuse settings that cannot run an experiment (before any directory is touched)."""
    if not config.train:
        raise UserError("an experiment compares what models train on: it needs train = true (drop --no-train)")
    if config.weighting != "none":
        arms = [arm for arm, weighting in WEIGHTING_ARMS.items() if weighting == config.weighting]
        raise UserError(
            f"the arms of an experiment set the weighting: drop --weighting {config.weighting} and add the "
            f"{' or '.join(arms or WEIGHTING_ARMS)} arm"
        )
    if config.objective != "sft":
        raise UserError(
            f"the arms of an experiment set the objective: drop --objective {config.objective} and add the "
            f"{config.objective} arm (--arms verified,{config.objective})"
        )


def check_arms(root: Path, config: RunConfig, arms: Sequence[str]) -> None:
    """Refuse, before any work: settings that cannot train, and an arm directory started otherwise."""
    check_settings(config)
    if (Path(root) / STORE_FILENAME).exists():
        raise UserError(f"{root} is a run directory; an experiment keeps its arms in subdirectories of a new one")
    for arm in arms:
        open_run_store(Path(root) / arm, arm_config(config, arm)).close()


def run_experiment(
    root: Path | str,
    config: RunConfig,
    rounds: int,
    arms: Sequence[str],
    sandbox: Sandbox,
    *,
    log: Callable[[str], None] = log_to_stderr,
    show_progress: bool = True,
    events: Callable[[str], RoundEvents] | None = None,
    run_class: type[ArmRun] = ArmRun,
    generation: Mapping[str, object] | None = None,
) -> dict:
    """Run every arm until ``rounds`` are finished, the verified arm first in each round; returns
    ``comparison(root)`` (also written to ``root/experiment.json`` after every round). Resumable."""
    from factory.store.lock import RunLock

    root = Path(root)
    arms = parse_arms(arms)
    if rounds < 1:
        raise UserError("--rounds must be at least 1")
    check_arms(root, config, arms)
    reference = root / VERIFIED_ARM
    for number in range(1, rounds + 1):
        for arm in arms:
            arm_log = lambda message, arm=arm: log(f"[{arm}] {message}")  # noqa: E731
            with RunLock(root / arm), run_class(
                root / arm, arm_config(config, arm), sandbox, arm, None if arm == VERIFIED_ARM else reference,
                log=arm_log, show_progress=show_progress, generation=generation,
            ) as run:
                run_rounds(
                    run,
                    lambda r, n=number: f"{n} rounds are finished" if r.finished_rounds() >= n else None,
                    events(arm) if events else ArmEvents(arm, log),
                )
        write_comparison(root)
    return comparison(root)


# ---------------------------------------------------------------------------------------------------
# the comparison


def _eval_of(store: RunStore, round: int) -> dict[int, EvalRecord]:
    records = store.evals(round)
    datasets = sorted({e.dataset for e in records})
    return {e.k: e for e in records if e.dataset == datasets[0]} if datasets else {}


def difference(a: EvalRecord, b: EvalRecord) -> dict | None:
    """mean pass@k of ``a`` minus ``b`` over the puzzles both evaluated, with its paired 95% interval."""
    sa, sb = puzzle_counts(a), puzzle_counts(b)
    keys = sorted(set(sa) & set(sb))
    if not keys or a.k != b.k:
        return None
    pa, pb = per_puzzle_pass_at_k(sa, a.n, a.k), per_puzzle_pass_at_k(sb, b.n, b.k)
    x, y = [pa[key] for key in keys], [pb[key] for key in keys]
    point = sum(x) / len(x) - sum(y) / len(y)
    return {"k": a.k, "difference": round(point, 4), "ci": rounded(paired_difference_interval(x, y)),
            "puzzles": len(keys)}


def comparison(root: Path | str) -> dict:
    """The arms side by side: per arm and round (0 = base model) pass@k with its 95% interval, the
    round's training texts and optimizer steps, the paired difference to seeds-only and, for the verified
    arm, to unverified (what the filter itself adds)."""
    dirs = arm_dirs(root)
    evals: dict[str, dict[int, dict[int, EvalRecord]]] = {}
    arms: dict[str, dict] = {}
    for arm, path in dirs.items():
        with RunStore.open(path, create=False) as store:
            finished = sorted(r.round for r in store.rounds() if r.round > 0 and r.finished_at is not None)
            evals[arm] = {r: _eval_of(store, r) for r in [0, *finished]}
            train = {}
            for r in finished:
                checkpoint = store.checkpoint(r)
                facts = read_training_facts(checkpoint.path) if checkpoint else None
                if facts:
                    train[str(r)] = _training_of(checkpoint.path, facts)
        arms[arm] = {
            "run_dir": str(path),
            "rounds": {
                str(r): {
                    "pass_at_k": {str(k): e.pass_at_k for k, e in by_k.items()},
                    "pass_at_k_ci": {
                        str(k): rounded(pass_at_k_interval(puzzle_counts(e), e.n, e.k)) for k, e in by_k.items() if puzzle_counts(e)
                    },
                }
                for r, by_k in evals[arm].items()
            },
            "train": train,
        }
    for control, key in CONTROLS:
        compared = [a for a in arms if a != control] if control == SEEDS_ONLY_ARM else [VERIFIED_ARM]
        for arm in compared:
            if control in evals and arm in evals:
                arms[arm][key] = round_differences(evals[arm], evals[control])
    return {"arms": arms}


def round_differences(
    arm: Mapping[int, Mapping[int, EvalRecord]], control: Mapping[int, Mapping[int, EvalRecord]]
) -> dict[str, dict[str, dict]]:
    """Per trained round and k: ``arm``'s pass@k minus ``control``'s (``difference``), paired by puzzle."""
    over = {}
    for r, by_k in arm.items():
        base = control.get(r, {})
        diffs = {str(k): d for k, e in by_k.items() if k in base and (d := difference(e, base[k]))}
        if r > 0 and diffs:
            over[str(r)] = diffs
    return over


def write_comparison(root: Path | str) -> Path:
    path = Path(root) / EXPERIMENT_FILENAME
    temporary = path.with_suffix(".partial")
    temporary.write_text(json.dumps(comparison(root), indent=2))
    temporary.replace(path)
    return path


def over_seeds_only(run_dir: Path | str, k: int = 1) -> dict | None:
    """For an arm's run directory beside a seeds-only arm: the last round both finished, and this arm's
    pass@k minus seeds-only's there with its paired 95% interval (``difference``); else None."""
    run_dir = Path(run_dir)
    arm, seeds = run_dir.name, run_dir.parent / SEEDS_ONLY_ARM
    if arm not in ARMS or arm == SEEDS_ONLY_ARM or not (seeds / STORE_FILENAME).exists():
        return None
    finished: list[set[int]] = []
    records: list[dict[int, dict[int, EvalRecord]]] = []
    for path in (run_dir, seeds):
        with RunStore.open(path, create=False) as store:
            done = {r.round for r in store.rounds() if r.round > 0 and r.finished_at is not None}
            finished.append(done)
            records.append({r: _eval_of(store, r) for r in done})
    common = sorted(finished[0] & finished[1])
    for r in reversed(common):
        a, b = records[0][r].get(k), records[1][r].get(k)
        if a is not None and b is not None and (d := difference(a, b)) is not None:
            return {"arm": arm, "round": r, "dataset": a.dataset, **d}
    return None


def format_comparison(result: Mapping) -> str:
    """The comparison as a few lines of text (what the CLI prints)."""
    lines = []
    for arm, data in result["arms"].items():
        for r, values in data["rounds"].items():
            cells = []
            for k, v in values["pass_at_k"].items():
                ci = values["pass_at_k_ci"].get(k)
                cells.append(f"pass@{k} {v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
            train = data["train"].get(r)
            on = [f"{train[key]} {what}" for key, what in (("texts", "texts"), ("preference_rows", "preference rows"))
                  if train and train.get(key)]
            steps = f", trained {train['steps']} steps on {' + '.join(on) or 'nothing'}" if train else ""
            lines.append(f"{arm} round {r}: " + ", ".join(cells) + steps)
        for control, key in CONTROLS:
            for r, diffs in data.get(key, {}).items():
                for k, d in diffs.items():
                    lines.append(
                        f"{arm} round {r}: {d['difference']:+.3f} pass@{k} over {control}, "
                        f"95% CI [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] ({d['puzzles']} puzzles)"
                    )
    return "\n".join(lines)
