"""One working process per run directory: an exclusive ``flock`` on ``RUN_DIR/daemon.lock``.

The daemon and `factory round`/`run` take it before they write; ``factory status`` only probes it.
The lock file names its holder (pid, host, start; ``stopped_at`` after a clean stop), so a refusal can
say who works on the run, and the kernel drops the lock however its holder dies.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from factory.errors import StoreError

LOCK_WAIT_S = 1.0  # a `factory status` probe holds the lock for microseconds: retry that long
LOCK_FILENAME = "daemon.lock"


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a run directory's daemon lock, as written in the lock file."""

    pid: int
    host: str
    started_at: float
    stopped_at: float | None = None  # written by a daemon that stopped cleanly

    def to_text(self) -> str:
        data = {"pid": self.pid, "host": self.host, "started_at": self.started_at, "started": utc_text(self.started_at)}
        if self.stopped_at is not None:
            data.update(stopped_at=self.stopped_at, stopped=utc_text(self.stopped_at))
        return json.dumps(data) + "\n"

    @classmethod
    def parse(cls, text: str) -> LockHolder | None:
        try:
            data = json.loads(text)
            stopped = data.get("stopped_at")
            return cls(int(data["pid"]), str(data["host"]), float(data["started_at"]),
                       float(stopped) if stopped is not None else None)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def stopped(self) -> LockHolder:
        return dataclasses.replace(self, stopped_at=time.time())

    def describe(self) -> str:
        text = f"pid {self.pid} on {self.host}, started {utc_text(self.started_at)}"
        return text + (f", stopped {utc_text(self.stopped_at)}" if self.stopped_at is not None else "")


def lock_state(run_dir: Path | str) -> tuple[bool, LockHolder | None]:
    """(a live daemon holds the lock now, the holder written in the lock file)."""
    path = Path(run_dir) / LOCK_FILENAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False, None
    try:
        holder = LockHolder.parse(os.read(fd, 4096).decode(errors="replace"))
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True, holder
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False, holder
    finally:
        os.close(fd)


def utc_text(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class RunLock:
    """An exclusive ``flock`` on ``RUN_DIR/daemon.lock``; the file names its holder (pid, host, start).

    The kernel drops the lock when its holder dies, however it dies: a lock left by a killed daemon is
    simply taken, and ``acquire`` returns who held it before (for the log).
    """

    def __init__(self, run_dir: Path | str):
        self.path = Path(run_dir) / LOCK_FILENAME
        self._fd: int | None = None
        self.holder: LockHolder | None = None

    def acquire(self, wait_s: float = LOCK_WAIT_S) -> LockHolder | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(f"cannot create the lock file {self.path}: {e.strerror or e}") from None
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                holder = LockHolder.parse(_read_all(fd))
                os.close(fd)
                who = holder.describe() if holder else "a process that has not written its name yet"
                stop = f" (stop it with `kill -TERM {holder.pid}` on {holder.host})" if holder else ""
                raise StoreError(
                    f"{self.path.parent} is in use by another factory process: {who}{stop}; "
                    "two processes must not work on one run directory"
                ) from None
        previous = LockHolder.parse(_read_all(fd))
        self._fd = fd
        self.holder = LockHolder(os.getpid(), socket.gethostname(), time.time())
        self._write(self.holder)
        return previous

    def _write(self, holder: LockHolder) -> None:
        assert self._fd is not None
        data = holder.to_text().encode()
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))

    def release(self) -> None:
        """Unlock, leaving the holder in the file with ``stopped_at`` (a clean stop, not a crash)."""
        if self._fd is None:
            return
        try:
            if self.holder is not None:
                self._write(self.holder.stopped())
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        """``with RunLock(run_dir):`` holds the lock for the block (``acquire``'s refusal included)."""
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_all(fd: int) -> str:
    return os.pread(fd, 65536, 0).decode(errors="replace")
