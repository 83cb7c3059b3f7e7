"""The store and the round at scale: per-batch and per-round costs at 10k, 100k and 1M puzzles.

    python benchmarks/bench_store_scale.py [--sizes 10000,100000,1000000] [--full-max 100000]

Grows one real RunStore (a SQLite file in a temporary directory) with synthetic rows shaped like a
run's: rounds of 10,000 generated puzzles (varied sources from a few thousand families, so canonical
hashes differ and near-duplicate search has work), their proposals, 16 attempts each with mixed
verdicts, the pairs the select rule would keep, batch markers and canary counts. Rows are written with
the schema's own SQL in one transaction per round (the store's methods would take hours at 1M), with
the same values the store writes: a synthetic puzzle's source is already in canonical form, so its
canonical hash is the SHA-256 of the source (checked on a sample).

At each size it prints the median seconds of each operation a round does per batch (record a batch,
filter a batch, solve prompts with nearest examples) and per round (select, the daemon's bookkeeping),
and, up to ``--full-max`` puzzles, export and report in a child process with its peak RSS. An operation
whose time at the last size, scaled linearly, would pass ``--max-op-seconds`` is shown as "skipped".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from factory.config import RunConfig  # noqa: E402
from factory.daemon.metrics import run_families  # noqa: E402
from factory.loop.filter import filter_proposals, probe  # noqa: E402
from factory.loop.prompts import ExampleIndex, solve_prompt  # noqa: E402
from factory.loop.run_sets import run_eval_set  # noqa: E402
from factory.loop.select import select_pairs  # noqa: E402
from factory.store import RunStore  # noqa: E402
from factory.store.records import AttemptRow, ProposalRow, solution_hash  # noqa: E402
from factory.store.stats import generated_pairs, last_activity, round_stats, rounds_stats  # noqa: E402
from puzzles.canonical import canonical_hash, canonical_source, near_duplicate_tokens  # noqa: E402
from puzzles.parse import parse_puzzle  # noqa: E402
from puzzles.seeds import load_seeds  # noqa: E402
from puzzles.similarity import ShingleIndex  # noqa: E402
from sandbox.backend import open_sandbox  # noqa: E402

ROUND_SIZE = 10_000  # generated puzzles per synthetic round
ATTEMPTS = 16  # per puzzle
BATCH = 64  # puzzles per propose / solve batch: a solve batch holds 64 x 16 = 1024 attempts
INSTANCES_PER_FAMILY = 25
P3 = Path(__file__).resolve().parents[2] / "shared" / "p3" / "puzzles.json"  # the default --p3

# Clauses per answer type.
CLAUSES = {
    "str": [
        "len(x) == a", "x.count('{w}') == b", "x.startswith('{w}')", "x.endswith('{w}')", "'{w}' in x",
        "x[::-1] != x", "x.upper() != x", "len(set(x)) >= b", "x.find('{w}') > a", "x.isalpha()",
        "sum((ord(c) for c in x)) % a == b", "x[a:b] == '{w}'", "x.lower().count('{w}') < a",
        "len(x.split('{w}')) == b",
    ],
    "int": [
        "x % a == b", "x > a * b", "x * x > b", "str(x).count('7') == b", "x // a != b", "abs(x - a) < b",
        "x.bit_length() == b", "pow(x, 2, a) == b % a", "x % 10 == b % 10", "len(str(x)) == a",
        "x - b > a", "sum((int(d) for d in str(x))) == b", "x & a == b & a", "x != a + b",
    ],
    "List[int]": [
        "len(x) == a", "sum(x) == b", "x == sorted(x)", "all((v > a for v in x))", "len(set(x)) == len(x)",
        "x[0] == b", "max(x) - min(x) == a", "x.count(b) == 1", "x[-1] % a == 0", "sum(x[::2]) > b",
        "all((x[i] < x[i + 1] for i in range(len(x) - 1)))", "a in x", "len([v for v in x if v > b]) == a",
        "min(x) >= -b",
    ],
}
WORDS = ["ab", "zq", "hello", "xyz", "qq", "mno", "tt", "pear", "k", "foo"]
VERDICT_CYCLE = ["verified"] * 4 + ["wrong"] * 8 + ["error"] * 2 + ["timeout"] * 2  # 25% verified


# ---------------------------------------------------------------------------------------------------
# synthetic puzzles


def family_template(family: int) -> str:
    """Family ``family``'s source with ``{a}`` / ``{b}`` for the constants its instances vary."""
    rng = random.Random(family)
    answer_type = ["str", "int", "List[int]"][family % 3]
    clauses = rng.sample(CLAUSES[answer_type], rng.choice((2, 3, 3, 4)))
    word = rng.choice(WORDS)
    joiner = rng.choice((" and ", " and ", " or "))
    condition = joiner.join(c.replace("{w}", word) for c in clauses).replace("{", "{{").replace("}", "}}")
    head = f"def f(x: {answer_type}, a={{a}}, b={{b}}) -> bool:\n"
    shape = rng.randrange(3)
    if shape == 0:
        return head + f"    return {condition}"
    if shape == 1:
        loop = "for i in range(a):\n        if i == b:\n            return False\n"
        return head + f"    {loop}    return {condition}"
    return head + f"    if b < 0:\n        return False\n    return {condition}"


class Families:
    """Puzzle families: instances differ only in their constants (``a`` is unique per puzzle), so
    canonical hashes differ while a family's near-duplicate shingles are one set, computed once."""

    def __init__(self) -> None:
        self._templates: dict[int, str] = {}
        self._tokens: dict[int, frozenset[str]] = {}

    def source(self, family: int, number: int) -> str:
        if family not in self._templates:
            # Written as canonical_source prints it, so the canonical hash is the source's SHA-256.
            sentinel = canonical_source(family_template(family).format(a=1234567, b=7654321))
            escaped = sentinel.replace("{", "{{").replace("}", "}}")
            self._templates[family] = escaped.replace("1234567", "{a}").replace("7654321", "{b}")
        return self._templates[family].format(a=number + 2, b=number % 7 + 1)

    def tokens(self, family: int, number: int) -> frozenset[str]:
        if family not in self._tokens:
            self._tokens[family] = near_duplicate_tokens(self.source(family, number))
        return self._tokens[family]


def family_of(number: int, families: int) -> int:
    return (number * 7919) % families


# ---------------------------------------------------------------------------------------------------
# growing the store


class Grower:
    """Appends synthetic rounds to the store with the schema's SQL, one transaction per round."""

    def __init__(self, path: Path, families: int) -> None:
        self.path = path
        self.families = Families()
        self.n_families = families
        self.puzzles = 0  # generated puzzles so far: puzzle number n is the n-th generated puzzle
        self.round = 0
        self.pair_shingles: list[frozenset[str]] = []  # of every pair, in pair id order (seeds first)
        self.pair_sources: list[tuple[str, str]] = []
        self.solutions = [f"def g(a=1, b=2):\n    return [{k}] * a" for k in range(256)]
        self.solution_hashes = [solution_hash(s) for s in self.solutions]

    def grow_to(self, total: int, next_round: Callable[[], int]) -> None:
        db = sqlite3.connect(str(self.path), isolation_level=None)
        db.execute("PRAGMA synchronous=OFF")
        try:
            while self.puzzles < total:
                self._round(db, next_round(), min(ROUND_SIZE, total - self.puzzles))
        finally:
            db.close()

    def _round(self, db: sqlite3.Connection, round: int, count: int) -> None:
        now = time.time()
        first_pid = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM puzzles").fetchone()[0]
        first_aid = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM attempts").fetchone()[0]
        db.execute("BEGIN")
        db.execute(
            "INSERT INTO rounds(round, model, started_at, finished_at, summary_json) VALUES (?, ?, ?, ?, ?)",
            (round, f"model-{round}", now, now + 1, json.dumps({"round": round})),
        )
        puzzles, proposals, attempts, pairs = [], [], [], []
        for i in range(count):
            number = self.puzzles + i
            family = family_of(number, self.n_families)
            source = self.families.source(family, number)
            pid = first_pid + i
            digest = hashlib.sha256(source.encode()).hexdigest()  # the canonical hash: source is canonical
            puzzles.append((pid, digest, source, "f", "x", ["str", "int", "List[int]"][family % 3],
                            json.dumps([["a", number + 2], ["b", number % 7 + 1]]), "generated", None, round,
                            f"model-{round}", i, now))
            batch = i // BATCH
            proposals.append((round, batch, 2 * (i % BATCH), i, source, "accepted", "", pid, now))
            if i % 3 == 0:  # a rejected sibling: a copy of the same puzzle
                proposals.append((round, batch, 2 * (i % BATCH) + 1, i, source, "duplicate",
                                  "same canonical form as an earlier puzzle", None, now))
            paired = False
            for j in range(ATTEMPTS):
                aid = first_aid + i * ATTEMPTS + j
                k = (number * 31 + j * 17) % 256
                status = VERDICT_CYCLE[(number * 5 + j * 3) % len(VERDICT_CYCLE)]
                attempts.append((aid, pid, round, batch, j, self.solutions[k], self.solution_hashes[k],
                                 len(self.solutions[k]), status, 0.01, "", f"model-{round}", j, now))
                if status == "verified" and not paired:
                    paired = True
                    pairs.append((pid, aid, round, self.solutions[k], self.solution_hashes[k],
                                  len(self.solutions[k]), now))
                    self.pair_shingles.append(self.families.tokens(family, number))
                    self.pair_sources.append((source, self.solutions[k]))
        db.executemany("INSERT INTO puzzles(id, canonical_hash, source, name, answer_arg, answer_type, "
                       "defaults_json, origin, key, round, model, prompt_seed, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", puzzles)
        db.executemany("INSERT INTO proposals(round, batch, idx, prompt_seed, raw, status, reason, puzzle_id, "
                       "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", proposals)
        db.executemany("INSERT INTO attempts(id, puzzle_id, round, batch, idx, source, solution_hash, length, "
                       "status, seconds, detail, model, prompt_seed, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", attempts)
        db.executemany("INSERT INTO pairs(puzzle_id, attempt_id, round, solution_source, solution_hash, length, "
                       "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)", pairs)
        batches = -(-count // BATCH)
        timings = json.dumps({"propose.generate": 2.0, "propose.filter": 0.2})
        db.executemany("INSERT INTO batches(round, stage, batch, items, finished_at, timings_json, tokens) "
                       "VALUES (?, 'propose', ?, ?, ?, ?, ?)",
                       [(round, b, BATCH, now, timings, 4000) for b in range(batches)])
        timings = json.dumps({"solve.generate": 20.0, "solve.verify": 5.0})
        db.executemany("INSERT INTO batches(round, stage, batch, items, finished_at, timings_json, tokens) "
                       "VALUES (?, 'solve', ?, ?, ?, ?, ?)",
                       [(round, b, BATCH * ATTEMPTS, now, timings, 60000) for b in range(batches)])
        db.execute("INSERT INTO batches(round, stage, batch, items, finished_at) VALUES (?, 'select', 0, ?, ?)",
                   (round, len(pairs), now))
        db.executemany("INSERT INTO canaries(round, stage, batch, cheats, cheats_passed, good, good_failed) "
                       "VALUES (?, 'solve', ?, 4, 0, 2, 0)", [(round, b) for b in range(batches)])
        db.execute("INSERT INTO evals(round, model, dataset, k, n, pass_at_k, solved, total, details_json, "
                   "created_at) VALUES (?, ?, 'seeds-test', 1, 4, 0.1, 10, 100, '{}', ?)",
                   (round, f"model-{round}", now))
        db.execute("COMMIT")
        self.puzzles += count


# ---------------------------------------------------------------------------------------------------
# measuring


def timed(fn: Callable[[], object], repeat: int) -> float:
    """The median seconds of ``repeat`` calls (one call when the first takes over 5 s)."""
    seconds: list[float] = []
    while len(seconds) < repeat and sum(seconds) < 5.0:
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds)


SKIPPED = float("nan")  # an operation not run at a size: its estimate from the last size was too long


class Bench:
    def __init__(self, run_dir: Path, families: int, repeat: int, max_seconds: float, p3: Path) -> None:
        self.run_dir = run_dir
        self.repeat = repeat
        self.max_seconds = max_seconds
        self.last: dict[str, tuple[int, float]] = {}  # operation -> (size, seconds) where last run
        self.skip: tuple[str, ...] = ()  # operations whose names hold one of these are not run
        self.store = RunStore.open(run_dir)
        seeds = load_seeds("train")
        self.store.add_seed_puzzles((s, canonical_hash(s.puzzle.source)) for s in seeds)
        config = RunConfig(model="unused", eval_p3=str(p3), eval_all_instances=True) if p3.exists() else \
            RunConfig(model="unused")
        t0 = time.perf_counter()
        self.eval = run_eval_set(config, seeds)
        print(f"# evaluation set {self.eval.name}: {len(self.eval.index.entries)} puzzles, index built in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        self.grower = Grower(self.store.path, families)
        for pair in self.store.stored_pairs(0):
            self.grower.pair_sources.append((pair.puzzle_source, pair.solution_source))
            self.grower.pair_shingles.append(near_duplicate_tokens(pair.puzzle_source))
        self.sandbox = open_sandbox("process", workers=2, log=lambda m: None)
        self.fresh = 10**9  # puzzle numbers for new puzzles the benchmark proposes (never bulk-grown)

    def close(self) -> None:
        self.sandbox.close()
        self.store.close()

    def within_budget(self, name: str, size: int) -> bool:
        """False when ``name``'s seconds at the last size, scaled linearly to ``size``, exceed the budget."""
        if name not in self.last:
            return True
        last_size, seconds = self.last[name]
        return seconds * size / last_size <= self.max_seconds

    def op(self, out: dict[str, float], size: int, name: str, fn: Callable[[], object]) -> None:
        if not self.within_budget(name, size) or any(word in name for word in self.skip):
            out[name] = SKIPPED
            return
        out[name] = timed(fn, self.repeat)
        self.last[name] = (size, out[name])

    def grow(self, size: int) -> float:
        t0 = time.perf_counter()
        self.store.close()
        self.grower.grow_to(size, self.next_round)
        self.store = RunStore.open(self.run_dir)
        return time.perf_counter() - t0

    def next_round(self) -> int:
        self.grower.round = max(self.grower.round, 0) + 1
        return self.grower.round

    def new_sources(self, count: int) -> list[str]:
        sources = []
        for _ in range(count):
            self.fresh += 1
            sources.append(self.grower.families.source(family_of(self.fresh, self.grower.n_families), self.fresh))
        return sources

    def measure(self, size: int) -> dict[str, float]:
        out: dict[str, float] = {}
        store = self.store
        self.grower.round += 1
        round = self.grower.round
        store.start_round(round, "bench")
        batch = iter(range(10**6))

        def record() -> None:
            b = next(batch)
            sources = self.new_sources(BATCH)
            rows = [ProposalRow(i, s, "accepted", "", i, parse_puzzle(s), canonical_hash(s))
                    for i, s in enumerate(sources)]
            ids = store.record_proposals(round, b, rows)
            attempts = [AttemptRow(pid, j, self.grower.solutions[(pid + j) % 256],
                                   VERDICT_CYCLE[(pid + j) % len(VERDICT_CYCLE)], 0.01,
                                   solution_hash=self.grower.solution_hashes[(pid + j) % 256])
                        for pid in ids for j in range(ATTEMPTS)]
            store.record_attempts(round, b, attempts)

        self.op(out, size, "record batch (64 proposals + 1024 attempts)", record)

        # The filter as run.py calls it, with the hashes the store gives; half the batch are copies
        # of stored puzzles (duplicates), the other half new.
        stored = [store.puzzle(pid).source for pid in (1 + (size * k) // 40 for k in range(BATCH // 2))]
        raws = stored + self.new_sources(BATCH - len(stored))
        self.op(out, size, "known_hashes() (what run.py passes the filter)", store.known_hashes)
        accepted = [r.puzzle for r in filter_proposals(list(range(BATCH)), raws, store.known_hashes(),
                                                       self.eval.index, self.sandbox, 1.0) if r.puzzle]
        total = timed(lambda: filter_proposals(list(range(BATCH)), raws, store.known_hashes(), self.eval.index,
                                               self.sandbox, 1.0), self.repeat)
        probes = timed(lambda: probe(accepted, self.sandbox, 1.0), self.repeat)
        out["filter batch of 64, without probes (dedup + decontamination)"] = max(total - probes, 0.0)
        self.op(out, size, "  of which decontamination (EvalIndex.contamination x64)", lambda: [self.eval.index.contamination(s) for s in raws])
        out["  probes in the process sandbox (constant, for scale)"] = probes

        # Solve prompts: the index over every training pair, as run.py builds once per solve stage.
        t0 = time.perf_counter()
        pairs = store.training_pairs()
        out["per round: training_pairs() load"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        examples = ExampleIndex([])
        examples.pairs = pairs
        examples.index = ShingleIndex(self.grower.pair_shingles)  # the synthetic families' shingles
        out["per round: example index build (shingles precomputed)"] = time.perf_counter() - t0
        assert len(examples.pairs) == len(examples.index.shingles), (len(pairs), len(self.grower.pair_shingles))
        targets = self.new_sources(BATCH)

        def prompts() -> None:
            for k, source in enumerate(targets):
                nearest = examples.nearest(source, 3)
                solve_prompt(nearest, source, random.Random(k), 3)

        self.op(out, size, "solve prompts of 64 with nearest examples (k=3)", prompts)
        tokens = [near_duplicate_tokens(s) for s in targets]
        self.op(out, size, "  of which nearest() in the index x64", lambda: [examples.index.nearest(t, 4) for t in tokens])
        self.op(out, size, "near-duplicate lookup x64 in the pairs index (first_match 0.8)", lambda: [examples.index.first_match(t, 0.8) for t in tokens])
        # Puzzles of families the store has never seen: nothing is near them, so no early stop.
        novel = [near_duplicate_tokens(self.grower.families.source(10**7 + k, k)) for k in range(BATCH)]
        self.op(out, size, "  nearest() x64, puzzles of new families", lambda: [examples.index.nearest(t, 4) for t in novel])
        self.op(out, size, "  first_match 0.8 x64, puzzles of new families", lambda: [examples.index.first_match(t, 0.8) for t in novel])


        t0 = time.perf_counter()
        select_pairs(store, round, 1)
        out["per round: select pairs of the round"] = time.perf_counter() - t0
        for pair in store.stored_pairs():  # keep the benchmark's shingle list in pair id order
            if pair.round == round:
                self.grower.pair_shingles.append(near_duplicate_tokens(pair.puzzle_source))
        self.op(out, size, "per round: round_stats(round) (round summary)", lambda: round_stats(store, round))
        self.op(out, size, "per round: generated_pairs() (daemon stop check)", lambda: generated_pairs(store))
        self.op(out, size, "per round: rounds_stats() (every round)", lambda: rounds_stats(store))
        self.op(out, size, "per round: last_activity()", lambda: last_activity(store))
        t0 = time.perf_counter()
        run_families(self.run_dir)
        out["per scrape: metrics run_families(), first after growing"] = time.perf_counter() - t0
        record()  # the round moves on by one batch, as between two scrapes of a running daemon
        self.op(out, size, "per scrape: metrics run_families(), one batch later", lambda: run_families(self.run_dir))
        store.finish_round(round, {"round": round})
        return out


def child_rss(what: str, run_dir: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of ``what`` (export or report) in a fresh child process."""
    t0 = time.perf_counter()
    result = subprocess.run([sys.executable, __file__, "--child", what, str(run_dir)], capture_output=True,
                            text=True)
    seconds = time.perf_counter() - t0
    if result.returncode:
        raise RuntimeError(f"{what} failed:\n{result.stderr[-3000:]}")
    return seconds, json.loads(result.stdout.strip().splitlines()[-1])["rss_mib"]


def child(what: str, run_dir: Path) -> None:
    """The whole export (read, filter, write parquet and card) or report, as the CLI runs it."""
    from factory.outputs.export import export_dataset
    from factory.outputs.report.collect import collect_report

    if what == "export":
        with tempfile.TemporaryDirectory(dir=run_dir.parent) as tmp:
            export_dataset(run_dir, Path(tmp) / "export")
    else:
        store = RunStore.open(run_dir, create=False)
        collect_report(store, run_dir)
        store.close()
    print(json.dumps({"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def table(results: dict[int, dict[str, float]]) -> Iterator[str]:
    sizes = sorted(results)
    names = list(dict.fromkeys(name for r in results.values() for name in r))
    width = max(len(n) for n in names)
    yield f"{'operation (seconds; RSS in MiB)':<{width}} " + " ".join(f"{s:>12,}" for s in sizes)
    for name in names:
        cells = []
        for s in sizes:
            v = results[s].get(name)
            if v is None or v != v:  # absent, or NaN: skipped
                cells.append(f"{'-' if v is None else 'skipped':>12}")
            else:
                cells.append(f"{v:>12.0f}" if "MiB" in name else f"{v:>12.4f}")
        yield f"{name:<{width}} " + " ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="store sizes in puzzles, comma-separated")
    parser.add_argument("--full-max", type=int, default=100_000,
                        help="export and report (whole-store reads) only up to this many puzzles")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma-separated words: skip the operations whose names "
                        "hold one (e.g. 'nearest,first_match,solve prompts,export,report' for a quick look)")
    parser.add_argument("--p3", default=str(P3), help="P3's puzzles.json: its test split is the evaluation set "
                        "(every instance); without it, the held-out seeds")
    parser.add_argument("--max-op-seconds", type=float, default=150.0,
                        help="skip an operation whose time at the last size, scaled to this size, is longer")
    parser.add_argument("--dir", default=None, help="where the store goes (default: a temporary directory)")
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "RUN_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], Path(args.child[1]))
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        run_dir = Path(tmp) / "run"
        bench = Bench(run_dir, max(400, sizes[-1] // INSTANCES_PER_FAMILY), args.repeat,
                      args.max_op_seconds, Path(args.p3))
        bench.skip = tuple(word for word in args.skip.split(",") if word)
        results: dict[int, dict[str, float]] = {}
        try:
            for size in sizes:
                grow = bench.grow(size)
                mib = os.path.getsize(bench.store.path) / 2**20
                print(f"# grew to {size:,} puzzles in {grow:.1f} s ({mib:,.0f} MiB)", flush=True)
                results[size] = bench.measure(size)
                for what in ("export", "report"):
                    name = f"{what} (whole store, child process)"
                    if size <= args.full_max and bench.within_budget(name, size) and what not in bench.skip:
                        seconds, rss = child_rss(what, run_dir)
                        bench.last[name] = (size, seconds)
                    else:
                        seconds = rss = SKIPPED
                    results[size][name] = seconds
                    results[size][f"  {what} peak RSS MiB"] = rss
                print("\n".join(table({size: results[size]})), flush=True)
        finally:
            bench.close()
        print()
        print("\n".join(table(results)))


if __name__ == "__main__":
    main()
