"""What a run directory holds and whether a daemon works on it: for ``factory status RUN_DIR``.

Read-only: the store is only queried, and the daemon's lock file (``RUN_DIR/daemon.lock``) is only read
and probed with a non-blocking shared ``flock`` that is released at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from factory.config import prices_of
from factory.errors import UserError
from factory.loop.progress import duration
from factory.store.lock import LockHolder, lock_state, utc_text
from factory.store.records import TokenUsage
from factory.store.stats import (
    Activity,
    add_usage,
    describe_usage,
    generated_pairs,
    last_activity,
    rounds_stats,
    seed_pairs,
)

# ---------------------------------------------------------------------------------------------------
# the whole status


@dataclass(frozen=True)
class RoundStatus:
    round: int
    model: str
    started_at: float
    finished_at: float | None
    seconds: float | None  # the round's own time, from its summary (finished rounds)
    funnel: dict[str, int]
    verdicts: dict[str, int]
    pass_at_k: dict[int, float]
    usage: dict[str, TokenUsage] = field(default_factory=dict)  # tokens by stage


@dataclass(frozen=True)
class RunStatus:
    run_dir: str
    running: bool
    holder: LockHolder | None
    config: dict | None
    dataset: str | None
    rounds: tuple[RoundStatus, ...]  # round 0 (the base model's evaluation) first when present
    generated_pairs: int
    seed_pairs: int
    last_activity: Activity | None
    puzzle_sets: dict[str, dict] = field(default_factory=dict)  # seed_set, eval_set: source, hash, count

    def to_json(self) -> dict:
        data = asdict(self)
        data["rounds"] = [{**asdict(r), "pass_at_k": {str(k): v for k, v in r.pass_at_k.items()}} for r in self.rounds]
        return data


def read_status(run_dir: Path | str) -> RunStatus:
    from factory.errors import StoreError
    from factory.store import STORE_FILENAME, RunStore

    run_dir = Path(run_dir)
    if not (run_dir / STORE_FILENAME).exists():
        raise UserError(f"{run_dir} holds no run (no {STORE_FILENAME}): is this the run directory?")
    running, holder = lock_state(run_dir)
    try:
        store = RunStore.open(run_dir, create=False)
    except StoreError as e:
        raise UserError(str(e)) from None
    try:
        with store.snapshot():
            config = store.config()
            sets = store.puzzle_sets()
            evals = store.evals()
            stats = rounds_stats(store)
            generated = generated_pairs(store)
            seeds = seed_pairs(store)
            activity = last_activity(store)
    finally:
        store.close()
    datasets = [e.dataset for e in evals]
    dataset = datasets[-1] if datasets else None
    rounds = []
    for s in stats:
        assert s.info is not None  # every started round has its row
        rounds.append(RoundStatus(
            round=s.round, model=s.info.model, started_at=s.info.started_at, finished_at=s.info.finished_at,
            seconds=(s.info.summary or {}).get("seconds") if s.finished else None,
            funnel=dict(s.funnel), verdicts=dict(s.verdicts),
            pass_at_k={e.k: e.pass_at_k for e in evals if e.round == s.round and e.dataset == dataset},
            usage=dict(s.usage),
        ))
    if evals and not any(r.round == 0 for r in rounds):  # the base evaluation starts no round row
        rounds.insert(0, RoundStatus(0, str(config.get("model") if config else ""), evals[0].created_at,
                                     evals[0].created_at, None, {}, {},
                                     {e.k: e.pass_at_k for e in evals if e.round == 0 and e.dataset == dataset}))
    return RunStatus(str(run_dir), running, holder, config, dataset, tuple(rounds), generated, seeds, activity, sets)


def puzzle_set_line(record: Mapping[str, object]) -> str:
    """``"tasks.jsonl: 12 puzzles, hash 3f2a...(12 hex), 1 skipped (does not verify)"``: how status, the
    report and the dataset card name a run's seed or evaluation set."""
    skipped = record.get("skipped") or {}
    left_out = f", {sum(skipped.values())} skipped ({', '.join(sorted(skipped))})" if skipped else ""
    count = int(record["count"])  # type: ignore[call-overload]
    return f"{record['source']}: {count} puzzle{'' if count == 1 else 's'}, hash {str(record['hash'])[:12]}{left_out}"


def format_status(status: RunStatus, now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines = [f"run {status.run_dir}"]
    if status.running and status.holder:
        lines.append(f"state: running (daemon {status.holder.describe()}, up {duration(now - status.holder.started_at)})")
    elif status.running:
        lines.append("state: running (a daemon holds the lock; its lock file is unreadable)")
    elif status.holder and status.holder.stopped_at is None:
        lines.append(f"state: not running (last daemon: {status.holder.describe()}; it died without stopping cleanly)")
    elif status.holder:
        lines.append(f"state: not running (last daemon: {status.holder.describe()})")
    else:
        lines.append("state: not running (no daemon has worked on it; `factory run` may have)")
    if status.config:
        c = status.config
        lines.append(f"model: {c.get('model') or 'the embedded default model'} ({c.get('backend')}), seed {c.get('seed')}, "
                     f"{c.get('puzzles')} puzzles x {c.get('attempts')} attempts per round")
    for key, what in (("seed_set", "seeds"), ("eval_set", "evaluation set")):
        if key in status.puzzle_sets:
            lines.append(f"{what}: {puzzle_set_line(status.puzzle_sets[key])}")
    if status.last_activity:
        a = status.last_activity
        lines.append(f"last activity: {utc_text(a.at)} ({duration(now - a.at)} ago): {a.what}")
    finished = sum(1 for r in status.rounds if r.round > 0 and r.finished_at is not None)
    lines.append(f"rounds finished: {finished}; pairs: {status.generated_pairs} generated, {status.seed_pairs} seed references")
    usage = add_usage(r.usage for r in status.rounds)
    if usage:
        lines.append("tokens: " + describe_usage(usage, prices_of(status.config)))
    ks = sorted({k for r in status.rounds for k in r.pass_at_k})
    head = ["round", "state", "proposed", "accepted", "attempts", "verified", "pairs", *(f"pass@{k}" for k in ks), "time"]
    rows = []
    for r in status.rounds:
        if r.round == 0:
            state = "base"
            counts = ["-"] * 5
        else:
            state = "finished" if r.finished_at is not None else ("running" if status.running else "unfinished")
            f = r.funnel
            counts = [f.get("proposed", 0), f.get("accepted", 0), f.get("attempts", 0), f.get("attempts_verified", 0),
                      f.get("pairs", 0)]
        passes = [f"{r.pass_at_k[k]:.3f}" if k in r.pass_at_k else "-" for k in ks]
        rows.append([r.round, state, *counts, *passes, duration(r.seconds) if r.seconds is not None else "-"])
    if rows:
        lines.append(f"evaluation: {status.dataset}" if status.dataset else "evaluation: none yet")
        widths = [max(len(str(x)) for x in column) for column in zip(head, *rows, strict=True)]
        for row in [head, *rows]:
            lines.append("  ".join(str(x).rjust(w) if i != 1 else str(x).ljust(w) for i, (x, w) in enumerate(zip(row, widths, strict=True))))
    else:
        lines.append("no rounds yet")
    return "\n".join(lines)
