"""Prometheus metrics of a run and of the daemon working on it, through prometheus-client, served on
127.0.0.1.

The endpoint's registry holds one collector (``ScrapeCollector``) that reads at scrape time: each scrape
reads the run's store afresh (its own read-only snapshot, in the server's thread) and the daemon's live
state (``DaemonState``); the library renders the text format (0.0.4, or OpenMetrics when asked). Counts
that only grow in the store (pairs, attempts, tokens, stage seconds) are counters: they survive daemon
restarts because the store does.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer

from factory.errors import UserError

if TYPE_CHECKING:
    from factory.store.stats import IncrementalStats

METRICS_HOST = "127.0.0.1"  # never on a public interface: the numbers describe a private run
DAEMON_PHASES = ("starting", "running", "waiting_for_sandbox", "stopping", "stopped")


def gauge(name: str, help: str, value: float | None = None,
          labelled: Iterable[tuple[dict[str, object], float]] = ()) -> GaugeMetricFamily:
    """A gauge of one ``value``, or of one sample per ``(labels, value)``."""
    return _filled(GaugeMetricFamily, name, help, value, labelled)


def counter(name: str, help: str, value: float | None = None,
            labelled: Iterable[tuple[dict[str, object], float]] = ()) -> CounterMetricFamily:
    """A counter (``name`` ends in ``_total``) of one ``value``, or of one sample per ``(labels, value)``."""
    return _filled(CounterMetricFamily, name, help, value, labelled)


def _filled(kind, name: str, help: str, value: float | None, labelled: Iterable[tuple[dict[str, object], float]]):
    labelled = list(labelled)
    if value is not None or not labelled:
        return kind(name, help, value=value)
    family = kind(name, help, labels=list(labelled[0][0]))
    for labels, sample in labelled:
        family.add_metric([str(v) for v in labels.values()], sample)
    return family


# ---------------------------------------------------------------------------------------------------
# the daemon's live state


@dataclass
class DaemonState:
    """What the daemon is doing now; written by the daemon's thread, read by scrapes (under ``lock``)."""

    pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.time)
    phase: str = "starting"
    round: int | None = None
    sandbox: object | None = None  # the open sandbox.interface.Sandbox, for pool health
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

    def families(self) -> list[Metric]:
        with self.lock:
            pool = _pool(self.sandbox)
            workers = pool.size if pool else 0
            live = sum(1 for link in pool.links if link is not None) if pool else 0
            replaced = self.replaced_earlier + (pool.replaced if pool else 0)
            phase, round_, kind = self.phase, self.round, self.sandbox_kind
            outages, backoff, started, pid = self.outages, self.backoff_seconds, self.started_at, self.pid
        return [
            gauge("factory_daemon_up", "1 while the daemon process runs.", 1),
            gauge("factory_daemon_pid", "Process id of the daemon.", pid),
            gauge("factory_daemon_start_time_seconds", "When the daemon started (Unix time).", started),
            gauge("factory_daemon_state", "1 for the daemon's current phase.",
                  labelled=[({"state": p}, 1.0 if p == phase else 0.0) for p in DAEMON_PHASES]),
            gauge("factory_daemon_round", "The round the daemon works on (0: base evaluation).",
                  round_ if round_ is not None else -1),
            gauge("factory_sandbox_backoff_seconds",
                  "Current wait between tries while the sandbox engine is away (0: not waiting).", backoff),
            counter("factory_sandbox_outages_total", "Times the sandbox engine went away during this daemon.", outages),
            gauge("factory_sandbox_workers", "Sandbox workers in the pool.", workers),
            gauge("factory_sandbox_live_workers", "Sandbox workers started and alive now.", live),
            counter("factory_sandbox_replaced_workers_total",
                    "Sandbox workers (containers) replaced after a job broke them.", replaced),
            gauge("factory_sandbox_info", "The sandbox kind in use.", labelled=[({"kind": kind}, 1.0)] if kind else []),
        ]


def _pool(sandbox: object | None):
    return getattr(sandbox, "pool", None)


# ---------------------------------------------------------------------------------------------------
# the run, from its store


_SCRAPE_STATS: dict[str, IncrementalStats] = {}  # resolved run dir -> its counts, kept between scrapes
_SCRAPE_STATS_LOCK = threading.Lock()


def run_families(run_dir: Path | str) -> list[Metric]:
    """Metrics of the run in ``run_dir``'s store; none when there is no store yet. Each scrape recounts
    only the rounds that changed since the last one (``IncrementalStats``)."""
    from factory.config import prices_of
    from factory.errors import StoreError
    from factory.models.steps import checkpoint_information_gain
    from factory.store import (
        STORE_FILENAME,
        IncrementalStats,
        RunStore,
        add_up,
        add_usage,
        last_activity,
        seed_pairs,
        usage_cost,
    )

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
            prices = prices_of(store.config())
    finally:
        store.close()
    totals = add_up(stats)
    canaries = totals.canaries
    families = [
        gauge("factory_rounds_started", "Self-play rounds started in this run.", totals.rounds),
        gauge("factory_rounds_finished", "Self-play rounds finished in this run.", sum(1 for s in stats if s.finished)),
        counter("factory_pairs_verified_total",
                "Verified (puzzle, solution) pairs the run generated and kept (seeds excluded).", totals.pairs),
        gauge("factory_seed_pairs", "Reference pairs of the seed puzzles.", seeds),
        counter("factory_proposals_total", "Proposed puzzles by filter outcome.",
                labelled=[({"status": k}, v) for k, v in sorted(totals.proposals.items())]),
        counter("factory_attempts_total", "Sampled solutions by sandbox verdict.",
                labelled=[({"verdict": k}, v) for k, v in sorted(totals.verdicts.items())]),
        counter("factory_generated_tokens_total", "Tokens generated by propose, solve and eval.", totals.tokens),
        counter("factory_canaries_total",
                "Verifier canary pairs run with the solve batches, by kind and outcome (a flip stops the round).",
                labelled=[({"kind": "cheat", "outcome": "passed"}, canaries.cheats_passed),
                          ({"kind": "cheat", "outcome": "refused"}, canaries.cheats - canaries.cheats_passed),
                          ({"kind": "good", "outcome": "failed"}, canaries.good_failed),
                          ({"kind": "good", "outcome": "verified"}, canaries.good - canaries.good_failed)]),
        counter("factory_stage_seconds_total", "Seconds spent per stage, over stored batches.",
                labelled=[({"stage": k}, round(v, 6)) for k, v in sorted(totals.timings.items())]),
        gauge("factory_tokens_per_second", "Generated tokens per second of generation.", totals.tokens_per_second or 0.0),
        gauge("factory_pairs_per_second",
              "Kept verified pairs per second of round work (propose, solve, train; eval excluded).",
              totals.pairs_per_second or 0.0),
        gauge("factory_pass_at_k", "pass@k on the evaluation set by round (0: the base model).",
              labelled=[({"round": e.round, "dataset": e.dataset, "k": e.k}, e.pass_at_k) for e in evals]),
        gauge("factory_information_gain",
              "Base model's mean loss per token on a round's new verified pairs minus on seed pairs.",
              labelled=[({"round": r}, gain) for r, c in sorted(checkpoints.items())
                        if c is not None and (gain := checkpoint_information_gain(c.path)) is not None]),
    ]
    if prices is not None:
        families.append(gauge("factory_token_cost", "What the run's prompt and completion tokens cost at its "
                              "price_per_mtok.", usage_cost(add_usage(s.usage for s in stats), prices)))
    if activity is not None:
        families.append(gauge("factory_last_activity_timestamp_seconds",
                              "When the store last recorded progress (Unix time).", activity.at))
    return families


class ScrapeCollector:
    """Everything ``/metrics`` shows, read when it is scraped: the daemon's live state (none without a
    daemon) and the run's store."""

    def __init__(self, run_dir: Path | str, state: DaemonState | None = None):
        self.run_dir = run_dir
        self.state = state

    def collect(self) -> Iterator[Metric]:
        if self.state is not None:
            yield from self.state.families()
        yield from run_families(self.run_dir)


def metrics_registry(run_dir: Path | str, state: DaemonState | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ScrapeCollector(run_dir, state))
    return registry


# ---------------------------------------------------------------------------------------------------
# the endpoint


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class MetricsServer:
    """``GET /metrics`` of ``registry`` on 127.0.0.1:``port`` in a background thread (``port=0`` picks a
    free one). A scrape that fails answers 500 and is logged; the server lives on."""

    def __init__(self, registry: CollectorRegistry, port: int, log: Callable[[str], None] | None = None):
        serve_metrics = make_wsgi_app(registry)
        log = log or (lambda message: None)

        def app(environ: dict, start_response: Callable) -> list[bytes]:
            if environ["PATH_INFO"] != "/metrics":
                start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
                return [b"only /metrics is served here\n"]
            try:
                return serve_metrics(environ, start_response)
            except Exception as e:  # noqa: BLE001 - a scrape must never take the daemon down
                log(f"metrics scrape failed: {type(e).__name__}: {e}")
                start_response("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")])
                return [f"collecting metrics failed: {e}\n".encode()]

        try:
            self._server = make_server(METRICS_HOST, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
        except OSError as e:
            raise UserError(f"cannot serve metrics on {METRICS_HOST}:{port} ({e.strerror or e}): "
                            "choose another [daemon] metrics_port, or 0 for none") from None
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
