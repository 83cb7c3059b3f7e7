"""`transformers serve`, a real OpenAI-compatible server, serving a local model on 127.0.0.1 offline:
the OpenAI backend's tests run against what a user's server really answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerDied(RuntimeError):
    pass


class TransformersServer:
    """``transformers serve MODEL`` on a free port of 127.0.0.1 (``base_url``), pinned to ``model``;
    ``stop`` kills it (as a crash would), ``start`` brings it back on the same port."""

    def __init__(self, model: Path | str, log_path: Path):
        pytest.importorskip("fastapi", reason='transformers serve needs "transformers[serving]"')
        serve = [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve"]
        self.command = [*serve, str(model), "--host", "127.0.0.1", "--port", str(free_port())]
        self.model = str(model)
        self.base_url = f"http://127.0.0.1:{self.command[-1]}/v1"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self, tries: int = 2) -> None:
        """Start the server; one that dies while loading is started again (its model process is
        spawned with semaphores in /dev/shm, which a busy shared machine has been seen to lose)."""
        for attempt in range(tries):
            try:
                return self._start_once()
            except ServerDied:
                if attempt == tries - 1:
                    raise

    def _start_once(self) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerDied(f"transformers serve exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.base_url.removesuffix("/v1") + "/health", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer /health in {START_TIMEOUT_S:.0f}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None
