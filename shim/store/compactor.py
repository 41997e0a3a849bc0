"""Automatic compaction, as kube-apiserver runs it: every few minutes, forget history older than a window."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from shim.store.base import Store

DEFAULT_INTERVAL = 300.0
DEFAULT_KEEP_REVISIONS = 10_000

logger = logging.getLogger(__name__)


class Compactor:
    """Compacts `store` to `current_revision - keep_revisions` every `interval` seconds once started."""

    def __init__(
        self, store: Store, interval: float = DEFAULT_INTERVAL, keep_revisions: int = DEFAULT_KEEP_REVISIONS
    ) -> None:
        self._store = store
        self._interval = interval
        self._keep = keep_revisions
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin compacting in the background (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="store-compactor")

    async def stop(self) -> None:
        """Stop the background task and wait until it has ended."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def compact_now(self) -> int:
        """Compact to the window's lower edge now; returns the store's compacted revision afterwards."""
        target = await self._store.current_revision() - self._keep
        # never backwards: a smaller target than last time means there is nothing new to forget
        if target > await self._store.compacted_revision():
            await self._store.compact(target)
        return await self._store.compacted_revision()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                revision = await self.compact_now()
            except Exception:
                # a closed or failing store, or a bug: try again next round rather than dying silently
                logger.exception("store compaction failed")
            else:
                logger.debug("store compacted to revision %d", revision)
