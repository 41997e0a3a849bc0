"""A controller work queue: each key queued at most once, retried later with exponential back-off."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Worker = Callable[[str], Awaitable[None]]


class WorkQueue:
    """Keys to reconcile. A key added while it is being processed is processed again afterwards, never twice
    at once (client-go's workqueue semantics)."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 60.0) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._base = base_delay
        self._max = max_delay

    def add(self, key: str) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.put_nowait(key)

    def add_after(self, key: str, delay: float) -> None:
        """Add `key` in `delay` seconds. One timer per key, the earliest asked for (client-go's delaying queue
        keeps one entry per item), so a key re-timed on every sync holds one timer, not one per sync."""
        loop = asyncio.get_running_loop()
        at = loop.time() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending.when() <= at:
                return
            pending.cancel()
        self._timers[key] = loop.call_at(at, self._add_timed, key)

    def _add_timed(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def retry(self, key: str) -> None:
        """Re-add after a back-off that doubles with each consecutive failure of this key."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        self.add_after(key, min(self._base * 2**failures, self._max))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    async def run(self, worker: Worker, workers: int = 1) -> None:
        """Process keys forever with `workers` concurrent loops; an exception in `worker` retries the key.
        Should a loop itself fail, the others are cancelled and the error raised, so that a supervisor that
        runs this again never ends up with more than `workers` loops."""
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(self._loop(worker))

    async def _loop(self, worker: Worker) -> None:
        while True:
            key = await self._queue.get()
            self._dirty.discard(key)
            self._processing.add(key)
            try:
                await worker(key)
            except Exception:
                self.retry(key)
            else:
                self.forget(key)
            finally:
                self._processing.discard(key)
                if key in self._dirty:
                    self._queue.put_nowait(key)
