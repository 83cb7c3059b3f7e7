"""A progress line with the time left: what a stage has done, and an estimate from its rate so far."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

UNITS = {"generate": "puzzles", "verify": "samples"}


def duration(seconds: float) -> str:
    """``75.2`` -> ``"1m15s"``; ``3725`` -> ``"1h02m"``; ``200000`` -> ``"2d07h"`` (the one way the
    factory writes a duration: progress lines and ``factory status``)."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


class EtaLine:
    """A ``factory.loop.evaluate.Progress``: one line through ``write`` as each stage starts, one at its
    first step (the first estimate), then at most every ``every_s`` seconds, and one at its end:
    "eval generate: 48/228 puzzles, 1m02s elapsed, about 3m53s left". The estimate assumes the rest goes
    at the stage's rate so far."""

    def __init__(
        self,
        write: Callable[[str], None],
        label: str = "eval",
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.write = write
        self.label = label
        self.every_s = every_s
        self.clock = clock
        self._lock = threading.Lock()  # verdicts are counted from the sandbox's threads
        self._stage: str | None = None
        self._started = 0.0
        self._shown = 0.0
        self._steps = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            now = self.clock()
            if stage != self._stage:
                self._stage, self._started, self._shown, self._steps = stage, now, now, 0
                self.write(f"{self.label} {stage}: {total} {UNITS.get(stage, 'items')}")
                return
            self._steps += 1
            if done < total and self._steps > 1 and now - self._shown < self.every_s:
                return
            self._shown = now
            self.write(self.line(stage, done, total, now - self._started))

    def line(self, stage: str, done: int, total: int, elapsed: float) -> str:
        text = f"{self.label} {stage}: {done}/{total} {UNITS.get(stage, 'items')}, {duration(elapsed)} elapsed"
        if done >= total:
            return text + ", done"
        if done == 0:
            return text
        return text + f", about {duration(elapsed / done * (total - done))} left"
