"""Chunks of one call spread over Ray actors, each chunk's reply delivered exactly once.

The one dispatch rule behind ``--sandbox ray`` (verifier actors) and generation replicas
(``factory.models.ray_backend``): a few chunks queued at every live worker; a chunk's reply is
delivered only when it comes back whole; a Ray error that means the worker is gone (``is_loss``) loses
that worker, and its chunk and every other chunk in flight at it go back to the front of the queue, in
order, for the live workers. Nothing of a lost chunk was delivered, so nothing is delivered twice or
made up. Any other error is raised as it is. No live worker left with chunks undone: ``none_left``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar


class Worker(Protocol):
    where: str  # the node, for messages


W = TypeVar("W", bound=Worker)

WAIT_S = 1.0


def run_chunks(
    ray,
    count: int,
    live: Callable[[], Sequence[W]],
    send: Callable[[W, int], Any],
    deliver: Callable[[W, int, Any], None],
    lose: Callable[[W, BaseException, int], None],
    none_left: Callable[[str, int], BaseException],
    *,
    in_flight_per_worker: int,
    is_loss: Callable[[BaseException], bool] = lambda error: True,
) -> int:
    """Run chunks ``0 .. count-1``: ``send(worker, chunk)`` returns the chunk's ObjectRef,
    ``deliver(worker, chunk, reply)`` takes its reply (once per chunk). A worker lost on a Ray error is
    handed to ``lose(worker, error, chunks_sent_back)`` and must drop out of ``live()``.
    ``none_left(last_loss, chunks_undone)`` is the exception raised when no worker is left. Returns how
    many chunks were sent again."""
    pending: deque[int] = deque(range(count))
    delivered = [False] * count
    in_flight: dict = {}  # ObjectRef -> (worker, chunk)
    last_loss, redispatched = "", 0
    while pending or in_flight:
        for worker in live():
            queued = sum(1 for w, _ in in_flight.values() if w is worker)
            while pending and queued < in_flight_per_worker:
                chunk = pending.popleft()
                in_flight[send(worker, chunk)] = (worker, chunk)
                queued += 1
        if not in_flight:
            raise none_left(last_loss, sum(1 for d in delivered if not d))
        ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=WAIT_S)
        for ref in ready:
            if ref not in in_flight:  # dropped with its lost worker below
                continue
            worker, chunk = in_flight.pop(ref)
            try:
                reply = ray.get(ref)
            except ray.exceptions.RayError as e:
                if not is_loss(e):
                    raise
                last_loss = f"{worker.where}: {error_line(e)}"
                back = [chunk]
                for other, (w, c) in list(in_flight.items()):
                    if w is worker:
                        del in_flight[other]
                        back.append(c)
                pending.extendleft(sorted(back, reverse=True))  # lost chunks run first, in order
                redispatched += len(back)
                lose(worker, e, len(back))
                continue
            if delivered[chunk]:  # cannot happen (a chunk is in flight once); never deliver twice
                continue
            delivered[chunk] = True
            deliver(worker, chunk, reply)
    return redispatched


def error_line(error: BaseException) -> str:
    """The telling line of a Ray error: its last (the first ones are the remote traceback's header)."""
    text = str(error).strip()
    return text.splitlines()[-1][:300] if text else type(error).__name__
