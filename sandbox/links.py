"""Links to one running worker: a local process, or a worker exec'd inside a hardened container.

A link sends one job and waits for its result line under a deadline. A link that breaks (EOF,
garbage, deadline passed) is dead for good: the pool closes it and starts a new one.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass

from sandbox.engine import OWNER_LABEL, SANDBOX_LABEL, SandboxUnavailable, owner_id
from sandbox.image import WORKER_PATH
from sandbox.installation import HashSeeds
from sandbox.worker import F_HASH_SEEDS

MAX_LINE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class WorkerLimits:
    """Per-job limits inside the worker, and per-container limits for the Docker backend."""

    job_memory_mb: int = 512
    output_bytes: int = 64 * 1024
    answer_bytes: int = 16 * 1024 * 1024  # P3's own Fibonacci answers are 5 MB of JSON
    container_memory_mb: int = 1024
    container_pids: int = 128
    container_cpus: float = 1.0
    scratch_mb: int = 64

    def worker_args(self) -> list[str]:
        return [
            f"--memory-mb={self.job_memory_mb}",
            f"--output-bytes={self.output_bytes}",
            f"--answer-bytes={self.answer_bytes}",
        ]


class LinkBroken(Exception):
    """The worker behind a link is gone or misbehaved; the job in flight is lost."""


class WorkerLink:
    """Line-based request/response over a byte channel; subclasses provide the channel."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def send(self, job: dict) -> None:
        """Queue a job; the worker runs jobs one at a time, in the order sent."""
        self._send(json.dumps(job).encode() + b"\n")

    def receive(self, job_id: object, deadline_s: float) -> dict:
        """The reply to the oldest job sent, which must be ``job_id``."""
        reply = self._read_line(time.monotonic() + deadline_s)
        if reply.get("id") != job_id:
            raise LinkBroken(f"reply for job {reply.get('id')!r} while waiting for {job_id!r}")
        return reply

    def _read_line(self, deadline: float) -> dict:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LinkBroken("worker did not answer in time")
            chunk = self._receive(remaining)
            if chunk is None:
                continue
            if not chunk:
                raise LinkBroken("worker exited")
            self._buffer += chunk
            if len(self._buffer) > MAX_LINE_BYTES:
                raise LinkBroken("worker reply too long")
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        try:
            reply = json.loads(line)
        except ValueError as e:
            raise LinkBroken("worker sent a malformed reply") from e
        if not isinstance(reply, dict):
            raise LinkBroken("worker sent a malformed reply")
        return reply

    def handshake(self, hash_seeds: HashSeeds, deadline_s: float) -> None:
        """Send the worker f's hash seeds (its first line: never a command line or an environment, which
        a job could read), then wait until it says it is ready."""
        self._send(json.dumps({F_HASH_SEEDS: [hash_seeds.first, hash_seeds.recheck]}).encode() + b"\n")
        if not self._read_line(time.monotonic() + deadline_s).get("ready"):
            raise LinkBroken("worker did not start")

    def _send(self, data: bytes) -> None:
        raise NotImplementedError

    def _receive(self, timeout: float) -> bytes | None:
        """Bytes, b'' at end of stream, or None when nothing arrived within ``timeout``."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class ProcessLink(WorkerLink):
    """The worker as a local child process: no isolation boundary at all."""

    def __init__(self, limits: WorkerLimits, hash_seeds: HashSeeds, start_timeout_s: float = 30.0):
        super().__init__()
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(WORKER_PATH), *limits.worker_args()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for us does not reach jobs half-way
        )
        try:
            self.handshake(hash_seeds, start_timeout_s)
        except LinkBroken:
            self.close()
            raise

    def _send(self, data: bytes) -> None:
        try:
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as e:
            raise LinkBroken("worker exited") from e

    def _receive(self, timeout: float) -> bytes | None:
        fd = self.process.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        return os.read(fd, 65536) if ready else None

    def close(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except OSError:
            pass
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


# Inside the container the worker runs as root with only CAP_SETUID and CAP_SETGID, and each job as
# JOB_UID, which can signal neither the worker nor the zygote (and gets one process: no fork). The
# idle main process (sleep) runs as root too, with the same two capabilities.
WORKER_USER = "0:0"
JOB_UID = 10001
WORKER_CAPABILITIES = ["SETUID", "SETGID"]


class DockerLink(WorkerLink):
    """One hardened container with the worker exec'd in it, talking over the exec's attached stdio."""

    def __init__(
        self, client, image: str, limits: WorkerLimits, hash_seeds: HashSeeds, start_timeout_s: float = 60.0
    ):
        super().__init__()
        from docker.types import LogConfig

        self.client = client
        self._frames = bytearray()
        self.container = client.containers.run(
            image,
            detach=True,
            init=True,
            user=WORKER_USER,  # Docker gives an exec its capabilities only when the container's user has them
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,noexec,size={limits.scratch_mb}m,mode=1777"},
            ipc_mode="none",
            mem_limit=f"{limits.container_memory_mb}m",
            memswap_limit=f"{limits.container_memory_mb}m",
            pids_limit=limits.container_pids,
            nano_cpus=int(limits.container_cpus * 1e9),
            cap_drop=["ALL"],
            cap_add=WORKER_CAPABILITIES,
            security_opt=["no-new-privileges"],
            log_config=LogConfig(type=LogConfig.types.NONE),
            labels={SANDBOX_LABEL: "1", OWNER_LABEL: owner_id()},
            environment={"PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp"},
        )
        try:
            exec_id = client.api.exec_create(
                self.container.id,
                [
                    "python3",
                    "-I",
                    "-S",
                    "/opt/factory/worker.py",
                    f"--job-uid={JOB_UID}",
                    "--scratch=/tmp",
                    *limits.worker_args(),
                ],
                stdin=True,
                stdout=True,
                stderr=True,
                user=WORKER_USER,
                workdir="/tmp",
            )["Id"]
            raw = client.api.exec_start(exec_id, socket=True)
            self.sock = getattr(raw, "_sock", raw)
            self.handshake(hash_seeds, start_timeout_s)
        except Exception:
            self.close()
            raise

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise LinkBroken("worker connection closed") from e

    def _receive(self, timeout: float) -> bytes | None:
        """Demultiplexes Docker's stream frames (8-byte header: stream id, size) and keeps stdout."""
        deadline = time.monotonic() + timeout
        while True:
            payload = self._take_frame()
            if payload is not None:
                return payload
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                return None
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                return b""
            self._frames += chunk

    def _take_frame(self) -> bytes | None:
        while len(self._frames) >= 8:
            stream, size = struct.unpack(">BxxxL", self._frames[:8])
            if len(self._frames) < 8 + size:
                return None
            payload = bytes(self._frames[8 : 8 + size])
            del self._frames[: 8 + size]
            if stream == 1 and payload:
                return payload
            # stderr of the worker itself: nothing decides on it; drop it.
        return None

    def close(self) -> None:
        import docker.errors

        sock = getattr(self, "sock", None)
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        try:
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if "already in progress" not in str(e):
                raise SandboxUnavailable(f"cannot remove container {self.container.short_id}: {e}") from e
