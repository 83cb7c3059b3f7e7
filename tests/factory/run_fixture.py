"""A realistic multi-round self-play run in a real RunStore, written without a model or a sandbox.

``build_run(run_dir)`` does what ``SelfPlayRun`` would store, through the store's public API: the
run config, the evaluation blocklist (the held-out seeds), the training seeds with their reference
solutions, then for each round proposals of every status, attempts with every verdict, pair
selection, a checkpoint, stage timings and tokens, pass@k (round 0 is the base model) and the round
summary.

Generated puzzles are real seed puzzles rewritten so that they are new (a ``salt`` argument, in later
rounds extra always-true conditions): every "verified" pair really verifies, which
``test_export`` checks in the process sandbox. The numbers tell the story of a run that improves:
more puzzles accepted and solved, pass@k going up, puzzles drifting away from the seeds.
"""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass
from pathlib import Path

from factory.config import RunConfig
from factory.store import AttemptRow, ProposalRow, RunStore
from puzzles.canonical import canonical_hash
from puzzles.filters import EvalIndex
from puzzles.parse import parse_puzzle
from puzzles.records import NamedPuzzle
from puzzles.seeds import load_seeds
from sandbox.verdicts import CRASHED, ERROR, INVALID, MEMORY, OUTPUT, TIMEOUT, VERIFIED, WRONG

BASE_MODEL = "tiny-base"
EVAL_NAME = "seeds-test"
PUZZLES_PER_ROUND = 24
ATTEMPTS = 6
BATCH = 8
MAX_PAIRS = 3

# Per round: (verified share of attempts, pass@1, pass@10, structural drift of new puzzles).
ROUND_PLAN = {
    1: (0.34, 0.18, 0.41, 0),
    2: (0.50, 0.24, 0.49, 1),
    3: (0.62, 0.29, 0.55, 2),
}
BASE_PASS = (0.12, 0.33)

FAILING_SOURCES = {
    WRONG: "def g():\n    return None\n",
    ERROR: "def g():\n    return 1 // 0\n",
    TIMEOUT: "def g():\n    while True:\n        pass\n",
    MEMORY: "def g():\n    return [0] * 10 ** 12\n",
    OUTPUT: "def g():\n    print('x' * 10 ** 8)\n",
    INVALID: "def g(:\n    return\n",
    CRASHED: "def g():\n    import os\n    os._exit(9)\n",
}
FAILURES = tuple(FAILING_SOURCES)

TRIVIAL_SOURCE = "def f{n}(b: bool, k={n}) -> bool:\n    return b == (k % 2 == 0)\n"
INVALID_SOURCES = (
    "def f{n}(x: int) -> bool\n    return x > {n}\n",
    "def f{n}(x) -> bool:\n    return x == {n}\n",
    "def f{n}(x: int, y=open('/etc/passwd')) -> bool:\n    return x == {n}\n",
)


@dataclass(frozen=True)
class FixtureRun:
    run_dir: Path
    rounds: tuple[int, ...]  # finished rounds
    open_round: int | None  # a started round with no pairs and no eval, when asked for


def build_run(run_dir: Path, *, rounds: int = 3, open_round: bool = False, seed: int = 0) -> FixtureRun:
    """Fill ``run_dir``'s store with ``rounds`` finished rounds (1..3) and optionally an open one."""
    if not 0 <= rounds <= len(ROUND_PLAN):
        raise ValueError(f"rounds must be in 0..{len(ROUND_PLAN)}")
    rng = random.Random(seed)
    config = RunConfig(
        model=BASE_MODEL,
        puzzles=PUZZLES_PER_ROUND,
        attempts=ATTEMPTS,
        batch_size=BATCH,
        max_pairs_per_puzzle=MAX_PAIRS,
        eval_samples=10,
        eval_ks=(1, 10),
    )
    train_seeds = load_seeds("train")
    test_seeds = load_seeds("test")
    with RunStore.open(run_dir) as store:
        store.record_config(config.to_json())
        index = EvalIndex.from_sources((p.key, p.puzzle.source) for p in test_seeds)
        store.block_hashes(index.hashes(), f"evaluation set {EVAL_NAME}")
        store.add_seed_puzzles((s, canonical_hash(s.puzzle.source)) for s in train_seeds)
        _record_eval(store, 0, BASE_MODEL, *BASE_PASS)
        earlier: list[str] = []  # sources accepted in earlier rounds, re-proposed as duplicates
        for r in range(1, rounds + 1):
            model = BASE_MODEL if r == 1 else f"{run_dir}/checkpoints/round-{r - 1}"
            earlier += _play_round(
                store, r, model, train_seeds, test_seeds, index, earlier, rng, ROUND_PLAN[r]
            )
        open_number = None
        if open_round:
            open_number = rounds + 1
            _open_round(store, open_number, rng)
    return FixtureRun(Path(run_dir), tuple(range(1, rounds + 1)), open_number)


# ---------------------------------------------------------------------------------------------------
# puzzles and solutions


def new_puzzle(seed: NamedPuzzle, n: int, drift: int) -> str:
    """``seed``'s puzzle renamed ``f{n}`` with a ``salt`` argument; ``drift`` adds always-true conditions.

    The answer and the reference solutions stay valid: every added condition holds for ``salt >= 0``.
    """
    tree = ast.parse(seed.puzzle.source)
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    function.name = f"f{n}"
    function.args.args.append(ast.arg("salt"))
    function.args.defaults.append(ast.Constant(n))
    extra: list[str] = []
    if drift >= 1:
        extra.append("salt >= 0")
    if drift >= 2:
        function.body.insert(
            _after_docstring(function), ast.parse("checks = [salt * k for k in range(3)]").body[0]
        )
        extra.append("len(checks) == 3 and all(c >= 0 for c in checks)")
    if extra:
        for node in ast.walk(function):
            if isinstance(node, ast.Return) and node.value is not None:
                condition = ast.parse(" and ".join(extra), mode="eval").body
                node.value = ast.BoolOp(ast.And(), [node.value, condition])
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def solution_variants(seed: NamedPuzzle, n: int) -> list[str]:
    """Distinct correct solutions of ``new_puzzle(seed, n, ...)``: the reference renamed, and longer ones."""
    reference = seed.solutions[0].source
    tree = ast.parse(reference)
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    function.name = f"g{n}"
    if function.args.args or seed.puzzle.defaults:  # a solution with arguments takes all of the puzzle's
        function.args.args.append(ast.arg("salt"))
        function.args.defaults.append(ast.Constant(n))
    short = ast.unparse(ast.fix_missing_locations(tree)) + "\n"
    returns = [node for node in ast.walk(function) if isinstance(node, ast.Return) and node.value is not None]
    if len(returns) != 1 or returns[0] is not function.body[-1]:
        return [short]
    value = returns[0].value
    function.body[-1] = ast.parse("answer = 0").body[0]
    function.body[-1].value = value
    function.body.append(ast.parse("return answer").body[0])
    longer = ast.unparse(ast.fix_missing_locations(tree)) + "\n"
    function.body.insert(len(function.body) - 1, ast.parse("checked = answer").body[0])
    function.body[-1] = ast.parse("return checked").body[0]
    longest = ast.unparse(ast.fix_missing_locations(tree)) + "\n"
    return [short, longer, longest]


def _after_docstring(function: ast.FunctionDef) -> int:
    first = function.body[0]
    is_doc = (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )
    return 1 if is_doc else 0


# ---------------------------------------------------------------------------------------------------
# rounds


def _play_round(store, r, model, train_seeds, test_seeds, index, earlier, rng, plan) -> list[str]:
    solve_share, pass1, pass10, drift = plan
    store.start_round(r, model)
    raws: list[tuple[str, str, str]] = []  # (raw, status the filters gave, reason)
    for j in range(2 + (r == 1)):
        raws.append(
            (INVALID_SOURCES[j % len(INVALID_SOURCES)].format(n=r * 100 + j), "invalid", "does not parse")
        )
    raws.append(
        (TRIVIAL_SOURCE.format(n=r * 100 + 10), "trivial", "a bool answer is found by trying True and False")
    )
    # Verbatim training seed and test seed: the store itself downgrades these to duplicate / contaminated.
    raws.append((train_seeds[rng.randrange(len(train_seeds))].puzzle.source, "accepted", ""))
    raws.append((test_seeds[rng.randrange(len(test_seeds))].puzzle.source, "accepted", ""))
    near_test = test_seeds[(r * 7) % len(test_seeds)]
    raws.append(
        (
            new_puzzle(near_test, r * 100 + 20, 0),
            "contaminated",
            f"near-duplicate of evaluation puzzle {near_test.key}",
        )
    )
    raws += [(source, "accepted", "") for source in earlier[: r - 1]]  # the model repeats itself a little
    chosen = rng.sample(range(len(train_seeds)), PUZZLES_PER_ROUND - len(raws))
    seed_of: dict[str, NamedPuzzle] = {}  # by the new puzzle's name
    for k, seed_index in enumerate(chosen):
        n = r * 100 + 30 + k
        seed_of[f"f{n}"] = train_seeds[seed_index]
        source = new_puzzle(train_seeds[seed_index], n, drift if k % 3 else max(drift - 1, 0))
        # Stricter than the real filter (which skips the near check for fresh instances of training
        # families): any near test instance counts, so the export's near filters find nothing new.
        why = index.contamination(source)
        raws.append((source, "contaminated", why) if why else (source, "accepted", ""))
    order = list(range(len(raws)))
    rng.shuffle(order)
    raws = [raws[i] for i in order]

    for b in range(0, len(raws), BATCH):
        rows = []
        for idx in range(b, min(b + BATCH, len(raws))):
            raw, status, reason = raws[idx]
            puzzle = digest = None
            if status == "accepted":
                puzzle = parse_puzzle(raw)
                digest = canonical_hash(puzzle.source)
            rows.append(
                ProposalRow(idx, raw, status, reason, prompt_seed=idx, puzzle=puzzle, canonical_hash=digest)
            )
        store.record_proposals(
            r,
            b // BATCH,
            rows,
            timings={"propose.generate": 11.0 + rng.random() * 3, "propose.filter": 1.5 + rng.random()},
            tokens=BATCH * (150 + 10 * r),
        )
    puzzles = store.puzzles_of_round(r)

    for b in range(0, len(puzzles), BATCH):
        rows = []
        for p in puzzles[b : b + BATCH]:
            seed = seed_of.get(p.name)
            variants = solution_variants(seed, int(p.name[1:])) if seed is not None else []
            verified = sum(rng.random() < solve_share for _ in range(ATTEMPTS)) if variants else 0
            for j in range(ATTEMPTS):
                if j < verified:
                    source, status = variants[rng.randrange(len(variants))], VERIFIED
                else:
                    status = FAILURES[(j + p.id + r) % len(FAILURES)]
                    source = FAILING_SOURCES[status]
                seconds = {TIMEOUT: 2.0, MEMORY: 0.4}.get(status, round(0.02 + rng.random() * 0.08, 4))
                rows.append(
                    AttemptRow(
                        p.id, j, source, status, seconds, "" if status == VERIFIED else status, prompt_seed=j
                    )
                )
        store.record_attempts(
            r,
            b // BATCH,
            rows,
            timings={"solve.generate": 30.0 + rng.random() * 6, "solve.verify": 4.0 + rng.random() * 2},
            tokens=len(rows) * (60 + 5 * r),
        )
    store.select_pairs(r, MAX_PAIRS)

    examples = len(store.training_pairs(up_to_round=r))
    checkpoint = f"{store.path.parent}/checkpoints/round-{r}"
    store.record_checkpoint(r, checkpoint, BASE_MODEL, examples, 95.0 + 10 * r)
    store.mark_batch_done(r, "train", 0, examples, timings={"train": 95.0 + 10 * r})
    store.mark_batch_done(
        r, "eval", 0, 141, timings={"eval.generate": 40.0, "eval.verify": 6.0}, tokens=141 * 10 * 80
    )
    _record_eval(store, r, checkpoint, pass1, pass10)
    _finish(store, r, model, pass1, pass10)
    return [p.source for p in puzzles]


def _open_round(store, r, rng) -> None:
    """A round that was started and proposed only rubbish: no puzzles, no pairs, no eval yet."""
    store.start_round(r, "open-model")
    rows = [
        ProposalRow(i, f"def f{i}(x: int) -> bool\n", "invalid", "does not parse", prompt_seed=i)
        for i in range(4)
    ]
    store.record_proposals(r, 0, rows, timings={"propose.generate": 9.0, "propose.filter": 0.2}, tokens=600)


def _record_eval(store, r, model, pass1, pass10) -> None:
    for k, value in ((1, pass1), (10, pass10)):
        store.record_eval(
            round=r,
            model=model,
            dataset=EVAL_NAME,
            k=k,
            n=10,
            pass_at_k=value,
            solved=round(141 * pass10),
            total=141,
            details={},
        )


def _finish(store, r, model, pass1, pass10) -> None:
    timings = store.stage_timings(r)
    generation = sum(v for k, v in timings.items() if k.endswith("generate"))
    tokens = store.generated_tokens(r)
    summary = {
        "round": r,
        "model": model,
        "funnel": store.funnel(r),
        "verdicts": store.verdict_counts(r),
        "timings": {k: round(v, 3) for k, v in sorted(timings.items())},
        "seconds": round(sum(timings.values()) + 12.0, 3),
        "tokens": tokens,
        "tokens_per_second": round(tokens / generation, 3) if generation else 0.0,
        "eval": {
            "dataset": EVAL_NAME,
            "pass_at_k": {"1": pass1, "10": pass10},
            "base_pass_at_k": {"1": BASE_PASS[0], "10": BASE_PASS[1]},
        },
    }
    store.finish_round(r, summary)
