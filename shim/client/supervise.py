"""Long-running loops that never die quietly: any exception is logged with its traceback, the loop waits a
capped exponential back-off and runs again (client-go's `wait.BackoffUntil`); only cancellation stops it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from shim.client.health import HealthRegistry, LoopHealth

log = logging.getLogger("shim.supervise")

STABLE_RUN = 30.0  # a loop that ran this long without failing has recovered: its back-off starts over

T = TypeVar("T")


class Backoff:
    """Delays that double from `initial` up to `cap`; `reset()` after a success."""

    def __init__(self, initial: float = 0.2, cap: float = 30.0) -> None:
        self.initial = initial
        self.cap = cap
        self._next = initial

    def next(self) -> float:
        """The delay to wait now; the following one doubles (up to the cap)."""
        delay = self._next
        self._next = min(delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.initial


async def keep_running(
    name: str,
    body: Callable[[], Awaitable[None]],
    health: HealthRegistry | None = None,
    backoff: Backoff | None = None,
) -> None:
    """Run `body()` forever. When it raises (or returns: a loop that ends is a bug too), log why with the
    traceback, back off and run it again. While it runs, `health` tracks it under `name`: a failure marks it
    failing, STABLE_RUN seconds without one mark it recovered."""
    backoff = backoff or Backoff()
    tracked = health.track(name) if health is not None else None
    loop = asyncio.get_running_loop()
    try:
        while True:
            recovered = loop.call_later(STABLE_RUN, _recovered, tracked, backoff)
            try:
                await body()
                error: Exception = RuntimeError("the loop returned")
            except Exception as exc:
                error = exc
            finally:
                recovered.cancel()
            if tracked is not None:
                tracked.failed(error)
            delay = backoff.next()
            log.error("%s failed, running it again in %.1fs", name, delay, exc_info=error)
            await asyncio.sleep(delay)
    finally:
        if health is not None and tracked is not None:
            health.untrack(tracked)


def spawn(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """`asyncio.create_task`, but a task that dies of an exception nobody awaits is logged, not lost."""
    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(_log_death)
    return task


def _log_death(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("task %s died", task.get_name(), exc_info=error)


def _recovered(health: LoopHealth | None, backoff: Backoff) -> None:
    backoff.reset()
    if health is not None:
        health.ok()
