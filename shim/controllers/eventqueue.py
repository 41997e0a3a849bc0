"""Events recorded off the reconcile path: `emit` returns at once, one task writes them in order.

client-go's recorder does the same (a broadcaster goroutine behind a bounded channel that drops when full),
so a controller creating 500 pods is never slowed down by the 500 events it records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from shim.client.events import EventRecorder
from shim.client.supervise import keep_running, spawn

Obj = dict[str, Any]
MAX_QUEUED_EVENTS = 1000  # client-go's maxQueuedEvents

log = logging.getLogger("shim.controllers.events")


class EventQueue:
    """A bounded queue of events in front of an EventRecorder; `start()` before use, `stop()` to drain."""

    def __init__(self, recorder: EventRecorder, limit: int = MAX_QUEUED_EVENTS) -> None:
        self.recorder = recorder
        self._queue: asyncio.Queue[tuple[Obj, str, str, str]] = asyncio.Queue(limit)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = spawn(keep_running("event writer", self._drain), "event writer")

    async def stop(self) -> None:
        """Write what is queued (briefly), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=2.0)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def emit(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        """Queue one event about `obj` (`Normal` or `Warning`); dropped when the queue is full."""
        try:
            self._queue.put_nowait((obj, type_, reason, message))
        except asyncio.QueueFull:
            log.debug("event queue full, dropped %s: %s", reason, message)

    async def _drain(self) -> None:
        while True:
            obj, type_, reason, message = await self._queue.get()
            try:
                await self.recorder.event(obj, type_, reason, message)
            finally:
                self._queue.task_done()
