"""The self-play daemon: rounds, one after another, until a stop condition; safe to kill at any moment.

Crash safety comes from the store: every stage commits its batches with their markers, so a daemon
started again on the same run directory (after ``kill -9``, a crash or a reboot) resumes the unfinished
round exactly where the last commit left it. The daemon adds what an unattended process needs:

- one daemon per run directory: ``flock`` on ``RUN_DIR/daemon.lock``, which names its holder;
- a cooperative stop on SIGTERM/SIGINT (and at the ``[stop] hours`` limit): the flag is checked before
  every generate call and before training, so the batch in progress is committed or never started;
  a step still running ``stop_timeout_seconds`` after the signal (or a second signal) is interrupted,
  which abandons its batch: nothing of it was stored. Containers are removed on the way out;
- the Docker engine going away: the batch that needed it is abandoned (the pool raises
  ``SandboxUnavailable`` and stores nothing), and the daemon waits with capped exponential backoff,
  says so in its log, opens a fresh sandbox when the engine is back and redoes that batch;
- one JSON object per log line, and Prometheus metrics on 127.0.0.1 (``factory.daemon.metrics``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from factory.daemon.config import DaemonConfig
from factory.daemon.metrics import DaemonState, MetricsServer, metrics_registry
from factory.errors import UserError
from factory.loop.context import RunContext, prepare_run
from factory.loop.rounds import RoundEvents, run_rounds
from factory.store.lock import RunLock
from factory.store.stats import generated_pairs, run_usage, usage_cost
from sandbox.engine import SandboxUnavailable


class StopRequested(BaseException):
    """Unwinds the daemon's work to a clean stop. A BaseException, so no ``except Exception`` keeps it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class StopDeadline(StopRequested):
    """The current step did not reach a stop point in time (or a second signal came): interrupted."""


class StopFlag:
    """Set by a signal handler or by the wall-time limit; checked at the daemon's stop points."""

    def __init__(self, hours: float | None = None):
        self._event = threading.Event()
        self._deadline = time.monotonic() + hours * 3600 if hours is not None else None
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def requested(self) -> bool:
        if not self._event.is_set() and self._deadline is not None and time.monotonic() >= self._deadline:
            self.request("the wall-time limit ([stop] hours) was reached")
        return self._event.is_set()

    def check(self) -> None:
        if self.requested:
            raise StopRequested(self.reason or "stop requested")

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True as soon as a stop is requested."""
        if self._deadline is not None:
            seconds = min(seconds, max(0.0, self._deadline - time.monotonic()))
        self._event.wait(seconds)
        return self.requested


# ---------------------------------------------------------------------------------------------------
# the log


class JsonLog:
    """One JSON object per line: ts (UTC, ISO 8601), level, event, round, pid, then the event's fields."""

    def __init__(self, stream: TextIO, close_stream: bool = False):
        self._stream = stream
        self._close_stream = close_stream
        self._lock = threading.RLock()  # re-entrant: a signal handler may log while the main thread does
        self.round: int | None = None

    @classmethod
    def open(cls, path: Path | None) -> JsonLog:
        if path is None:
            return cls(sys.stderr)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return cls(open(path, "a", encoding="utf-8", buffering=1), close_stream=True)
        except OSError as e:
            raise UserError(f"cannot open the log file {path}: {e.strerror or e}") from None

    def __call__(self, event: str, level: str = "info", **fields: object) -> None:
        record = {
            "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": level,
            "event": event,
            "round": fields.pop("round", self.round),
            "pid": os.getpid(),
            **fields,
        }
        line = json.dumps(record, default=str, ensure_ascii=False)
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                pass  # a full disk or a closed stderr must not stop the work

    def close(self) -> None:
        if self._close_stream:
            self._stream.close()


class _JsonLogHandler(logging.Handler):
    def __init__(self, log: JsonLog):
        super().__init__(logging.WARNING)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        self.log("library.log", level=record.levelname.lower(), logger=record.name, message=record.getMessage())


# ---------------------------------------------------------------------------------------------------
# the lock


# ---------------------------------------------------------------------------------------------------
# the rounds, logged


class LoggedRounds(RoundEvents):
    """``run_rounds``' events as JSON log lines and metrics state."""

    def __init__(self, daemon: Daemon):
        self.daemon = daemon

    def round_started(self, round: int, model: str) -> None:
        self.daemon.log.round = round
        self.daemon.state.update(round=round)
        if round > 0:
            self.daemon.log("round.start", model=model)

    def base_evaluated(self, pass_at_k: dict[int, float]) -> None:
        self.daemon.log("eval.base", pass_at_k={str(k): v for k, v in pass_at_k.items()})

    def round_finished(self, summary: dict) -> None:
        self.daemon.log("round.finish", seconds=summary.get("seconds"), funnel=summary.get("funnel"),
                        verdicts={k: v for k, v in summary.get("verdicts", {}).items() if v},
                        tokens_per_second=summary.get("tokens_per_second"),
                        pass_at_k=summary.get("eval", {}).get("pass_at_k"))


# ---------------------------------------------------------------------------------------------------
# the daemon


def quiet_libraries() -> None:
    """No progress bars or chatter from model libraries: a daemon's stderr may be its JSON log.
    Call before the model libraries are imported."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Daemon:
    """Runs ``config``'s rounds until a stop condition, a signal, or forever. ``run()`` returns 0 on every
    requested stop; a UserError (a bad config, a run directory in use) propagates with its message."""

    def __init__(self, config: DaemonConfig, log: JsonLog | None = None, state: DaemonState | None = None):
        self.config = config
        self.log = log or JsonLog.open(config.daemon.log_file)
        self._own_log = log is None
        self.state = state or DaemonState()
        self.stop = StopFlag(config.stop.hours)
        self.kind = config.placement.sandbox  # pinned to the kind actually opened: "auto" never changes mid-run
        self.sandbox = None
        self.metrics: MetricsServer | None = None
        self.stop_reason: str | None = None
        self._signals = 0
        self._deadline: threading.Timer | None = None
        self._deadline_due = False
        self._handling_signals = False  # our SIGTERM/SIGINT handlers are installed (main thread only)
        self._cleaning_up = False
        self._started = time.monotonic()

    # -- the whole life ------------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self._run()
        except StopRequested as e:  # a deadline that fired while the work was already unwinding
            self.stop_reason = self.stop_reason or e.reason
        return 0

    def _run(self) -> None:
        c = self.config
        self.log("daemon.start", host=socket.gethostname(), config=str(c.source) if c.source else None,
                 run_dir=str(c.run_dir), sandbox=c.placement.sandbox, stop=c.stop.describe(),
                 metrics_port=c.daemon.metrics_port or None)
        lock = RunLock(c.run_dir)
        try:
            previous = lock.acquire()
        except UserError as e:
            self.log("daemon.refused", level="error", error=str(e))
            self._close_log()
            raise
        try:
            if previous is not None and previous.stopped_at is None:
                self.log("lock.taken_over", level="warning", previous=previous.describe(),
                         message="the previous daemon died without stopping cleanly; resuming its work")
            elif previous is not None:
                self.log("lock.acquired", previous=previous.describe())
            restore = self._install_handlers()
            try:
                if c.daemon.metrics_port:
                    self.metrics = MetricsServer(metrics_registry(c.run_dir, self.state), c.daemon.metrics_port,
                                                 log=lambda m: self.log("metrics.error", level="warning", error=m))
                    self.log("metrics.serving", url=self.metrics.url)
                self.stop_reason = self._work()
            except UserError as e:
                self.log("daemon.error", level="error", error=str(e))
                raise
            except StopRequested:
                raise
            except BaseException as e:
                if not isinstance(e, (KeyboardInterrupt, SystemExit)):
                    self.log("daemon.crash", level="error", error=f"{type(e).__name__}: {e}",
                             traceback=traceback.format_exc())
                raise
            finally:
                self._cleaning_up = True
                self._cancel_deadline()
                self.state.update(phase="stopping")
                self._close_sandbox()
                self._remove_own_containers()
                if self.metrics is not None:
                    self.metrics.close()
                restore()
        finally:
            lock.release()
            self.state.update(phase="stopped")
            self.log("daemon.stop", reason=self.stop_reason or "error",
                     uptime_s=round(time.monotonic() - self._started, 3))
            self._close_log()

    def _work(self) -> str:
        try:
            self._ensure_sandbox(None)
            with prepare_run(self.config.run_dir, self.config.run, self.sandbox, log=self._library_log,
                             show_progress=False, before_step=self.stop.check,
                             generation=self.config.generation_options()) as ctx:
                self.state.update(phase="running")
                return run_rounds(ctx, self._stop_condition, LoggedRounds(self),
                                  functools.partial(self._with_sandbox, ctx))
        except StopRequested as e:
            self.log("stop", reason=e.reason, interrupted=isinstance(e, StopDeadline))
            return e.reason

    def _stop_condition(self, run: RunContext) -> str | None:
        """A [stop] condition met (logged), else None; raises StopRequested once a stop was asked for."""
        stop = self.config.stop
        reason = None
        if stop.rounds is not None and (done := run.finished_rounds()) >= stop.rounds:
            reason = f"{done} rounds are finished ([stop] rounds = {stop.rounds})"
        elif stop.pairs is not None and (pairs := generated_pairs(run.store)) >= stop.pairs:
            reason = f"{pairs} verified pairs are stored ([stop] pairs = {stop.pairs})"
        elif stop.cost is not None and (cost := usage_cost(run_usage(run.store), run.config.prices() or (0, 0))) >= stop.cost:
            reason = f"the run's tokens cost {cost:.4f} ([stop] cost = {stop.cost:g})"
        if reason is not None:
            self.log("stop.condition", reason=reason)
            return reason
        self.stop.check()
        return None

    # -- the sandbox, and waiting for it ---------------------------------------------------------------

    def _with_sandbox(self, run: RunContext, action: Callable[[], object]):
        """``action()``, redone after each outage of the sandbox engine once it is back."""
        while True:
            try:
                return action()
            except SandboxUnavailable as e:
                self.log("sandbox.unavailable", level="warning", error=str(e),
                         message="the batch in progress is abandoned (nothing of it was stored)")
                self.state.update(outages=self.state.outages + 1)
                self._close_sandbox()
                run.sandbox = self._ensure_sandbox(e)

    def _ensure_sandbox(self, error: SandboxUnavailable | None):
        """An open sandbox; while the engine is unreachable, waits with capped exponential backoff."""
        settings = self.config.daemon
        delay = settings.backoff_initial_seconds
        since = time.monotonic()
        while True:
            if error is None:
                try:
                    sandbox = self._open_sandbox()
                except SandboxUnavailable as e:
                    error = e
                else:
                    if self.state.backoff_seconds:
                        self.log("sandbox.back", outage_s=round(time.monotonic() - since, 3))
                        # The engine stopped the old pool's containers but keeps them; they are ours and
                        # unused (the new pool starts its workers on its first jobs): remove them now.
                        self._remove_own_containers()
                    self.state.update(phase="stopping" if self.stop.requested else "running", backoff_seconds=0.0)
                    return sandbox
            self.state.update(phase="waiting_for_sandbox", backoff_seconds=delay)
            self.log("sandbox.waiting", level="warning", error=str(error), retry_in_s=delay,
                     waited_s=round(time.monotonic() - since, 3))
            if self.stop.wait(delay):
                raise StopRequested(self.stop.reason or "stop requested")
            delay = min(delay * 2, settings.backoff_max_seconds)
            error = None

    def _open_sandbox(self):
        from sandbox.backend import open_sandbox

        try:
            placement = self.config.placement
            sandbox = open_sandbox(self.kind, workers=placement.workers, log=self._sandbox_log,
                                   ray_address=placement.ray_address)
        except SandboxUnavailable:
            raise
        except Exception as e:
            if _is_engine_error(e):  # the engine went away between the ping and the next call
                raise SandboxUnavailable(f"{type(e).__name__}: {e}") from e
            raise
        self.kind = sandbox.kind
        self.sandbox = sandbox
        self.state.update(sandbox=sandbox, sandbox_kind=sandbox.kind)
        self.log("sandbox.open", kind=sandbox.kind, workers=sandbox.workers, note=sandbox.note)
        return sandbox

    def _close_sandbox(self) -> None:
        sandbox, self.sandbox = self.sandbox, None
        if sandbox is None:
            return
        self.state.retire_sandbox()
        try:
            sandbox.close()
        except Exception as e:  # noqa: BLE001 - leftovers are swept by owner below and at the next start
            self.log("sandbox.close_failed", level="warning", error=f"{type(e).__name__}: {e}")

    def _remove_own_containers(self) -> None:
        """Remove any container this process still owns (one a worker thread started late, say)."""
        if self.kind not in ("docker", "auto"):
            return
        try:
            from sandbox.engine import (
                OWNER_LABEL,
                docker_client,
                owner_id,
                remove_containers,
                sandbox_containers,
            )

            client = docker_client(timeout_s=10)
            mine = [c for c in sandbox_containers(client) if c.labels.get(OWNER_LABEL) == owner_id()]
            removed = remove_containers(mine)
        except Exception as e:  # noqa: BLE001 - the engine may be gone; the next start sweeps
            self.log("sandbox.sweep_skipped", level="warning", error=f"{type(e).__name__}: {e}",
                     message="containers left behind are removed when a sandbox next opens")
            return
        if removed:
            self.log("sandbox.swept", removed=removed)

    # -- signals ---------------------------------------------------------------------------------------

    def _install_handlers(self) -> Callable[[], None]:
        """SIGTERM/SIGINT handlers and library warnings into the JSON log; returns the undo.

        The hard deadline is a timer thread that sends SIGTERM to the main thread (a signal wakes it from
        a blocking wait, where a flag would not): no SIGALRM, so an embedding program's alarms (pytest-
        timeout's, say) are left alone.
        """
        handler = _JsonLogHandler(self.log)
        logging.getLogger().addHandler(handler)
        previous_showwarning = warnings.showwarning

        def showwarning(message, category, filename, lineno, file=None, line=None):
            self.log("library.warning", level="warning", category=category.__name__, message=str(message),
                     where=f"{filename}:{lineno}")

        warnings.showwarning = showwarning
        signals = (signal.SIGTERM, signal.SIGINT)
        in_main = threading.current_thread() is threading.main_thread()
        previous = {s: signal.getsignal(s) for s in signals} if in_main else {}
        for s in previous:
            signal.signal(s, self._on_signal)
        self._handling_signals = in_main

        def restore() -> None:
            self._cancel_deadline()  # its SIGTERM after the handler is gone would kill the process
            self._handling_signals = False
            logging.getLogger().removeHandler(handler)
            warnings.showwarning = previous_showwarning
            for s, h in previous.items():
                signal.signal(s, h)

        return restore

    def request_stop(self, reason: str) -> None:
        """Stop at the next stop point; where the daemon handles signals (it runs in the main thread),
        interrupt the current step after ``stop_timeout_seconds``."""
        self.stop.request(reason)
        self.state.update(phase="stopping")
        timeout = self.config.daemon.stop_timeout_seconds
        self.log("stop.requested", reason=reason, timeout_s=timeout)
        if self._handling_signals and self._deadline is None and not self._cleaning_up:
            self._deadline = threading.Timer(timeout, self._deadline_passed)
            self._deadline.daemon = True
            self._deadline.start()

    def _deadline_passed(self) -> None:
        if not self._cleaning_up:
            self._deadline_due = True
            signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)

    def _on_signal(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self._cleaning_up:
            return
        if self._deadline_due:
            self._deadline_due = False
            timeout = self.config.daemon.stop_timeout_seconds
            self.log("stop.deadline", level="warning", timeout_s=timeout,
                     message="the current step did not reach a stop point in time: interrupting it")
            raise StopDeadline(f"{self.stop.reason}; the step in progress was interrupted after {timeout:g}s")
        self._signals += 1
        if self._signals == 1:
            self.request_stop(f"{name} received")
        else:
            raise StopDeadline(f"a second {name}: stopping now")

    def _cancel_deadline(self) -> None:
        deadline = self._deadline
        if deadline is not None:
            deadline.cancel()
            if deadline is not threading.current_thread():
                deadline.join()  # a callback already running finishes (and sees _cleaning_up) first

    # -- logging of library messages -----------------------------------------------------------------

    def _library_log(self, message: str) -> None:
        self.log("message", message=message)

    def _sandbox_log(self, message: str) -> None:
        self.log("sandbox.message", level="warning" if message.startswith("WARNING") else "info", message=message)

    def _close_log(self) -> None:
        if self._own_log:
            self.log.close()


def _is_engine_error(error: Exception) -> bool:
    try:
        import docker.errors
        import requests.exceptions
    except ImportError:  # pragma: no cover - docker is a core dependency
        return isinstance(error, ConnectionError)
    return isinstance(error, (docker.errors.DockerException, requests.exceptions.RequestException, ConnectionError))


def run_daemon(config: DaemonConfig, log: JsonLog | None = None) -> int:
    return Daemon(config, log=log).run()
