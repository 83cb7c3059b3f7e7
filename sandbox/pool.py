"""A warm pool of worker links that streams jobs to them and replaces any link a job breaks."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from sandbox.engine import SandboxUnavailable
from sandbox.links import LinkBroken, WorkerLink
from sandbox.verdicts import CRASHED, Job, Result
from sandbox.worker import ANSWER_DIGEST

# Host-side deadline for one job beyond its own two time limits (g, then f): worker overhead.
HOST_GRACE_S = 10.0
SALVAGE_S = 1.0  # how long a broken link is read for the replies a dead worker had already written
# How long close() waits for links still starting (a container being created) so none outlives it.
CLOSE_WAIT_S = 90.0


class JobQueue:
    """Indices of jobs still to run; jobs handed back by a broken link run again first."""

    def __init__(self, count: int):
        self._next = iter(range(count))
        self._returned: deque[int] = deque()
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self._returned:
                return self._returned.popleft()
            return next(self._next, None)

    def give_back(self, indices) -> None:
        with self._lock:
            self._returned.extendleft(reversed(list(indices)))


class WorkerPool:
    """``size`` links started by ``start_link``, each driven by one thread pulling from a shared queue.

    A job whose link breaks gets the verdict ``crashed`` and the link is replaced. If no replacement
    can be started (the engine went away), ``run`` raises SandboxUnavailable instead of inventing
    verdicts for the jobs it could not run.
    """

    def __init__(
        self,
        start_link: Callable[[], WorkerLink],
        size: int,
        log: Callable[[str], None] | None = None,
        depth: int = 4,
    ):
        if size < 1:
            raise ValueError("a sandbox needs at least one worker")
        self.start_link = start_link
        self.size = size
        self.log = log or (lambda message: None)
        self.links: list[WorkerLink | None] = [None] * size
        self.replaced = 0
        self.depth = depth
        self._closed = False
        self._starting = 0  # links being started by driver threads right now
        self._starts = threading.Condition()

    def run(
        self, jobs: Sequence[Job], on_result: Callable[[int, Result], None] | None = None
    ) -> list[Result]:
        if self._closed:
            raise RuntimeError("the sandbox is closed")
        results: list[Result | None] = [None] * len(jobs)
        queue = JobQueue(len(jobs))
        failures: list[BaseException] = []
        lock = threading.Lock()

        def deliver(index: int, result: Result) -> None:
            results[index] = result
            if on_result is not None:
                with lock:
                    on_result(index, result)

        def drive(slot: int) -> None:
            try:
                self._drive(slot, jobs, queue, deliver, failures)
            except BaseException as e:  # noqa: BLE001 - handed to the caller below
                failures.append(e)

        threads = [
            threading.Thread(target=drive, args=(slot,), daemon=True)
            for slot in range(min(self.size, len(jobs)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        return results  # type: ignore[return-value]

    def _drive(self, slot: int, jobs: Sequence[Job], queue: JobQueue, deliver, failures: list) -> None:
        """Keep up to ``depth`` jobs queued at this slot's worker so it never waits for the host."""
        in_flight: deque[int] = deque()
        while not failures:
            link = self._link(slot)
            sending = None
            try:
                while len(in_flight) < self.depth and (index := queue.take()) is not None:
                    sending = index
                    link.send(jobs[index].to_wire())
                    in_flight.append(index)
                    sending = None
                if not in_flight:
                    return
                job = jobs[in_flight[0]]
                reply = link.receive(job.id, 2 * job.timeout_s + HOST_GRACE_S)
            except LinkBroken as e:
                # Replies the worker wrote before it died still stand (a send finds it dead while the
                # reply of a job before the one that killed it waits unread in the pipe): read them.
                while in_flight:
                    try:
                        reply = link.receive(jobs[in_flight[0]].id, SALVAGE_S)
                    except LinkBroken:
                        break
                    deliver(in_flight.popleft(), result_of(reply))
                # The worker runs jobs in order: the oldest unanswered job broke it; the rest never ran.
                # With none in flight, the worker was gone before this run sent it anything (it died
                # idle): no job to blame.
                culprit = in_flight.popleft() if in_flight else None
                unsent = [sending] if sending is not None else []  # never reached the worker
                queue.give_back([*in_flight, *unsent])
                in_flight.clear()
                self._drop(slot)
                self.replaced += 1
                lost = f"lost job {jobs[culprit].id}" if culprit is not None else "was gone"
                self.log(f"sandbox worker {slot} {lost} ({e}); replacing it")
                if culprit is not None:
                    self._link(slot)  # no replacement means the sandbox itself is gone: raises
                    deliver(culprit, Result(CRASHED, 0.0, f"the sandbox lost the job: {e}"))
                continue
            index = in_flight.popleft()
            deliver(index, result_of(reply))
            if reply.get("retire"):
                # The job got its verdict, but the worker cannot restore a clean state and exits:
                # the jobs queued behind it never ran there, so they go back to the queue.
                queue.give_back(in_flight)
                in_flight.clear()
                self._drop(slot)
                self.replaced += 1
                self.log(
                    f"sandbox worker {slot} retired after job {jobs[index].id} ({reply['retire']}); replacing it"
                )

    def _link(self, slot: int) -> WorkerLink:
        link = self.links[slot]
        if link is None:
            with self._starts:
                self._starting += 1
            try:
                link = self._start(slot)
            finally:
                with self._starts:
                    self._starting -= 1
                    self._starts.notify_all()
        return link

    def _start(self, slot: int) -> WorkerLink:
        """A new link in ``slot``; a pool closed meanwhile gets it closed at once, never leaked."""
        error: BaseException | None = None
        for attempt in range(3):
            if self._closed:  # a driver thread outliving an interrupted run() starts nothing new
                raise SandboxUnavailable("the sandbox is closed")
            try:
                link = self.start_link()
                break
            except Exception as e:  # noqa: BLE001 - docker SDK errors come in many classes
                error = e
            time.sleep(0.5 * (attempt + 1))
        else:
            raise SandboxUnavailable(f"cannot start a sandbox worker: {error}") from error
        if self._closed:  # closed while this link started: it must not outlive the pool
            self.links[slot] = link
            self._drop(slot)
            raise SandboxUnavailable("the sandbox is closed")
        self.links[slot] = link
        return link

    def _drop(self, slot: int) -> None:
        link, self.links[slot] = self.links[slot], None
        if link is not None:
            try:
                link.close()
            except Exception as e:  # noqa: BLE001 - closing is best effort; removal is retried at close()
                self.log(f"closing sandbox worker {slot} failed: {e}")

    def close(self) -> None:
        self._closed = True
        with self._starts:  # a driver thread half-way through starting a container finishes and drops it
            self._starts.wait_for(lambda: self._starting == 0, timeout=CLOSE_WAIT_S)
        for slot in range(self.size):
            self._drop(slot)


def result_of(reply: dict) -> Result:
    """The verdict a worker's reply gives (``crashed`` where it names none)."""
    return Result(
        str(reply.get("status", CRASHED)),
        float(reply.get("seconds", 0.0)),
        str(reply.get("detail", "")),
        str(reply.get(ANSWER_DIGEST, "")),
    )
