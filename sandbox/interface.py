"""What every sandbox is, whichever kind opened it: ``Sandbox``, a pool of workers behind ``run(jobs)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sandbox.pool import WorkerPool
from sandbox.verdicts import Job, Result


class Sandbox:
    """A pool of workers of one kind. Use as a context manager: closing removes every container."""

    def __init__(self, kind: str, pool: WorkerPool, note: str = ""):
        self.kind = kind
        self.pool = pool
        self.note = note  # why this kind was chosen, for summaries

    @property
    def workers(self) -> int:
        return self.pool.size

    def run(
        self, jobs: Sequence[Job], on_result: Callable[[int, Result], None] | None = None
    ) -> list[Result]:
        return self.pool.run(jobs, on_result)

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
