"""Prometheus metrics of a run and of the daemon working on it, served on 127.0.0.1 by stdlib http.server.

Every scrape reads the run's store afresh (its own read-only snapshot, in the server's thread) and the
daemon's live state (``DaemonState``), and renders the Prometheus text format (version 0.0.4). Counts
that only grow in the store (pairs, attempts, tokens, stage seconds) are counters: they survive daemon
restarts because the store does.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

from factory.errors import UserError

if TYPE_CHECKING:
    from factory.store.stats import IncrementalStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_HOST = "127.0.0.1"  # never on a public interface: the numbers describe a private run
DAEMON_PHASES = ("starting", "running", "waiting_for_sandbox", "stopping", "stopped")


@dataclass(frozen=True)
class MetricFamily:
    """One metric: name, type (gauge or counter), help text and samples ``(labels, value)``."""

    name: str
    type: str
    help: str
    samples: tuple[tuple[tuple[tuple[str, str], ...], float], ...] = ()

    @classmethod
    def of(cls, name: str, type: str, help: str, value: float | None = None,
           labelled: Iterable[tuple[dict[str, object], float]] = ()) -> MetricFamily:
        samples = [((), float(value))] if value is not None else []
        samples += [(tuple((k, str(v)) for k, v in labels.items()), float(v)) for labels, v in labelled]
        return cls(name, type, help, tuple(samples))


def render(families: Sequence[MetricFamily]) -> str:
    """The Prometheus text exposition format, one HELP and TYPE line per family."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for labels, value in family.samples:
            label_text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
            lines.append(f"{family.name}{{{label_text}}} {_number(value)}" if labels else f"{family.name} {_number(value)}")
    return "\n".join(lines) + "\n"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)


# ---------------------------------------------------------------------------------------------------
# the daemon's live state


@dataclass
class DaemonState:
    """What the daemon is doing now; written by the daemon's thread, read by scrapes (under ``lock``)."""

    pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.time)
    phase: str = "starting"
    round: int | None = None
    sandbox: object | None = None  # the open sandbox.backend.Sandbox, for pool health
    sandbox_kind: str | None = None
    replaced_earlier: int = 0  # containers replaced by pools already closed (earlier outages)
    outages: int = 0  # times the sandbox engine went away
    backoff_seconds: float = 0.0  # the current wait between tries; 0 when not waiting
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)  # a signal handler may update

    def update(self, **changes: object) -> None:
        with self.lock:
            for key, value in changes.items():
                if not hasattr(self, key):
                    raise AttributeError(key)
                setattr(self, key, value)

    def retire_sandbox(self) -> None:
        """The sandbox is being closed: keep its replaced-container count."""
        with self.lock:
            if self.sandbox is not None:
                self.replaced_earlier += _pool(self.sandbox).replaced if _pool(self.sandbox) else 0
            self.sandbox = None

    def families(self) -> list[MetricFamily]:
        with self.lock:
            pool = _pool(self.sandbox)
            workers = pool.size if pool else 0
            live = sum(1 for link in pool.links if link is not None) if pool else 0
            replaced = self.replaced_earlier + (pool.replaced if pool else 0)
            phase, round_, kind = self.phase, self.round, self.sandbox_kind
            outages, backoff, started, pid = self.outages, self.backoff_seconds, self.started_at, self.pid
        return [
            MetricFamily.of("factory_daemon_up", "gauge", "1 while the daemon process runs.", 1),
            MetricFamily.of("factory_daemon_pid", "gauge", "Process id of the daemon.", pid),
            MetricFamily.of("factory_daemon_start_time_seconds", "gauge", "When the daemon started (Unix time).", started),
            MetricFamily.of("factory_daemon_state", "gauge", "1 for the daemon's current phase.",
                            labelled=[({"state": p}, 1.0 if p == phase else 0.0) for p in DAEMON_PHASES]),
            MetricFamily.of("factory_daemon_round", "gauge", "The round the daemon works on (0: base evaluation).",
                            round_ if round_ is not None else -1),
            MetricFamily.of("factory_sandbox_backoff_seconds", "gauge",
                            "Current wait between tries while the sandbox engine is away (0: not waiting).", backoff),
            MetricFamily.of("factory_sandbox_outages_total", "counter",
                            "Times the sandbox engine went away during this daemon.", outages),
            MetricFamily.of("factory_sandbox_workers", "gauge", "Sandbox workers in the pool.", workers),
            MetricFamily.of("factory_sandbox_live_workers", "gauge", "Sandbox workers started and alive now.", live),
            MetricFamily.of("factory_sandbox_replaced_workers_total", "counter",
                            "Sandbox workers (containers) replaced after a job broke them.", replaced),
            MetricFamily.of("factory_sandbox_info", "gauge", "The sandbox kind in use.",
                            labelled=[({"kind": kind}, 1.0)] if kind else []),
        ]


def _pool(sandbox: object | None):
    return getattr(sandbox, "pool", None)


# ---------------------------------------------------------------------------------------------------
# the run, from its store


_SCRAPE_STATS: dict[str, IncrementalStats] = {}  # resolved run dir -> its counts, kept between scrapes
_SCRAPE_STATS_LOCK = threading.Lock()


def run_families(run_dir: Path | str) -> list[MetricFamily]:
    """Metrics of the run in ``run_dir``'s store; none when there is no store yet. Each scrape recounts
    only the rounds that changed since the last one (``IncrementalStats``)."""
    from factory.errors import StoreError
    from factory.models.steps import checkpoint_information_gain
    from factory.store import STORE_FILENAME, IncrementalStats, RunStore, add_up, last_activity, seed_pairs

    if not (Path(run_dir) / STORE_FILENAME).exists():
        return []
    try:
        store = RunStore.open(run_dir, create=False)
    except StoreError:
        return []
    with _SCRAPE_STATS_LOCK:
        cache = _SCRAPE_STATS.setdefault(str(Path(run_dir).resolve()), IncrementalStats())
    try:
        with store.snapshot():
            stats = [s for s in cache.rounds_stats(store) if s.round > 0]
            seeds = seed_pairs(store)
            evals = store.evals()
            activity = last_activity(store)
            checkpoints = {s.round: store.checkpoint(s.round) for s in stats}
    finally:
        store.close()
    totals = add_up(stats)
    families = [
        MetricFamily.of("factory_rounds_started", "gauge", "Self-play rounds started in this run.", totals.rounds),
        MetricFamily.of("factory_rounds_finished", "gauge", "Self-play rounds finished in this run.",
                        sum(1 for s in stats if s.finished)),
        MetricFamily.of("factory_pairs_verified_total", "counter",
                        "Verified (puzzle, solution) pairs the run generated and kept (seeds excluded).", totals.pairs),
        MetricFamily.of("factory_seed_pairs", "gauge", "Reference pairs of the seed puzzles.", seeds),
        MetricFamily.of("factory_proposals_total", "counter", "Proposed puzzles by filter outcome.",
                        labelled=[({"status": k}, v) for k, v in sorted(totals.proposals.items())]),
        MetricFamily.of("factory_attempts_total", "counter", "Sampled solutions by sandbox verdict.",
                        labelled=[({"verdict": k}, v) for k, v in sorted(totals.verdicts.items())]),
        MetricFamily.of("factory_generated_tokens_total", "counter", "Tokens generated by propose, solve and eval.", totals.tokens),
        MetricFamily.of("factory_canaries_total", "counter",
                        "Verifier canary pairs run with the solve batches, by kind and outcome (a flip stops the round).",
                        labelled=[({"kind": "cheat", "outcome": "passed"}, totals.canaries.cheats_passed),
                                  ({"kind": "cheat", "outcome": "refused"}, totals.canaries.cheats - totals.canaries.cheats_passed),
                                  ({"kind": "good", "outcome": "failed"}, totals.canaries.good_failed),
                                  ({"kind": "good", "outcome": "verified"}, totals.canaries.good - totals.canaries.good_failed)]),
        MetricFamily.of("factory_stage_seconds_total", "counter", "Seconds spent per stage, over stored batches.",
                        labelled=[({"stage": k}, round(v, 6)) for k, v in sorted(totals.timings.items())]),
        MetricFamily.of("factory_tokens_per_second", "gauge", "Generated tokens per second of generation.",
                        totals.tokens_per_second or 0.0),
        MetricFamily.of("factory_pairs_per_second", "gauge",
                        "Kept verified pairs per second of round work (propose, solve, train; eval excluded).",
                        totals.pairs_per_second or 0.0),
        MetricFamily.of("factory_pass_at_k", "gauge", "pass@k on the evaluation set by round (0: the base model).",
                        labelled=[({"round": e.round, "dataset": e.dataset, "k": e.k}, e.pass_at_k) for e in evals]),
        MetricFamily.of("factory_information_gain", "gauge",
                        "Base model's mean loss per token on a round's new verified pairs minus on seed pairs.",
                        labelled=[({"round": r}, gain) for r, c in sorted(checkpoints.items())
                                  if c is not None and (gain := checkpoint_information_gain(c.path)) is not None]),
    ]
    if activity is not None:
        families.append(MetricFamily.of("factory_last_activity_timestamp_seconds", "gauge",
                                        "When the store last recorded progress (Unix time).", activity.at))
    return families


def collect(run_dir: Path | str, state: DaemonState | None) -> str:
    families = list(state.families()) if state is not None else []
    return render(families + run_families(run_dir))


# ---------------------------------------------------------------------------------------------------
# the endpoint


class MetricsServer:
    """``GET /metrics`` on 127.0.0.1:``port`` in a background thread (``port=0`` picks a free one)."""

    def __init__(self, collect: Callable[[], str], port: int, log: Callable[[str], None] | None = None):
        self._collect = collect
        self._log = log or (lambda message: None)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?", 1)[0] != "/metrics":
                    return self._reply(404, "only /metrics is served here\n", "text/plain; charset=utf-8")
                try:
                    body = owner._collect()
                except Exception as e:  # noqa: BLE001 - a scrape must never take the daemon down
                    owner._log(f"metrics scrape failed: {type(e).__name__}: {e}")
                    return self._reply(500, f"collecting metrics failed: {e}\n", "text/plain; charset=utf-8")
                return self._reply(200, body, CONTENT_TYPE)

            def _reply(self, status: int, text: str, content_type: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        try:
            self._server = ThreadingHTTPServer((METRICS_HOST, port), Handler)
        except OSError as e:
            raise UserError(f"cannot serve metrics on {METRICS_HOST}:{port} ({e.strerror or e}): "
                            "choose another [daemon] metrics_port, or 0 for none") from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{METRICS_HOST}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
